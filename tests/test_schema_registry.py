"""The registry-aware JSON schema: each module spec checked against its own block's arguments."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from ruamel.yaml import YAML

from model_constructor import Registry, SpecError, json_schema, spec_schema
from model_constructor.fmt import format_spec_text
from model_constructor.source import load_yaml_file

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed"
SEED_YAML = SEED / "configs" / "models" / "my_model.yaml"
EXAMPLES = sorted(p for pattern in ("*.yaml", "*.yml") for p in (ROOT / "examples").rglob(pattern))
PROJ = ["model", "graph", "modules", "proj"]
MIX = ["model", "graph", "modules", "mix"]


@pytest.fixture(autouse=True, scope="module")
def seed_blocks() -> Iterator[None]:
    """The seed's `my_project` importable for this module's tests, and forgotten afterwards."""
    sys.path.insert(0, str(SEED))
    yield
    sys.path.remove(str(SEED))
    for name in [n for n in sys.modules if n == "my_project" or n.startswith("my_project.")]:
        del sys.modules[name]


@functools.cache
def _validator(imports: tuple[str, ...] = ("my_project.model_blocks",)) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema(imports=list(imports)))


def _errors(
    tree: Any, validator: jsonschema.Draft202012Validator | None = None
) -> list[tuple[list[Any], str]]:
    found = (validator or _validator()).iter_errors(tree)
    return sorted((list(error.absolute_path), error.message) for error in found)


def _seed(**changes: Any) -> Any:
    """The seed's tree, with the module `proj` or `mix` changed: `proj={"bias": "yes"}`."""
    tree = load_yaml_file(SEED_YAML).tree
    for module, arguments in changes.items():
        tree["model"]["graph"]["modules"][module] = arguments
    return tree


def test_schema_registry_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema(imports=["my_project.model_blocks"]))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_schema_registry_accepts_example(path: Path) -> None:
    tree = load_yaml_file(path).tree
    validator = _validator(tuple(tree.get("imports", [])))

    assert _errors(tree, validator) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_schema_registry_accepts_example_read_by_a_standard_parser(path: Path) -> None:
    # What an editor sees: the file after `fmt`, read without our pre-pass.
    tree = YAML(typ="safe", pure=True).load(format_spec_text(path.read_text(), str(path)))
    validator = _validator(tuple(tree.get("imports", [])))

    assert _errors(tree, validator) == []


def test_schema_registry_rejects_misspelled_custom_block_argument() -> None:
    tree = _seed(mix={"_type_": "my_project.token_mixer", "widht": 128, "dropout": 0.1})

    assert _errors(tree) == [
        (MIX, "'width' is a required property"),
        (MIX, "Additional properties are not allowed ('widht' was unexpected)"),
    ]


@pytest.mark.parametrize(
    ("argument", "value"),
    [("in_features", "abc"), ("in_features", 1.5), ("in_features", True), ("bias", "yes")],
)
def test_schema_registry_rejects_wrongly_typed_linear_argument(argument: str, value: Any) -> None:
    proj = {"_type_": "nn.Linear", "in_features": 128, "out_features": 128, argument: value}

    errors = _errors(_seed(proj=proj))

    assert [path for path, _ in errors] == [[*PROJ, argument]]


def test_schema_registry_rejects_misspelled_linear_argument() -> None:
    proj = {"_type_": "nn.Linear", "in_features": 128, "out_features": 128, "bais": False}

    assert _errors(_seed(proj=proj)) == [
        (PROJ, "Additional properties are not allowed ('bais' was unexpected)"),
    ]


def test_schema_registry_rejects_unknown_block_type() -> None:
    errors = _errors(_seed(proj={"_type_": "nn.Lnear", "in_features": 128}))

    assert [path for path, _ in errors] == [[*PROJ, "_type_"]]


def test_schema_registry_rejects_missing_required_argument() -> None:
    assert _errors(_seed(proj={"_type_": "nn.Linear", "in_features": 128})) == [
        (PROJ, "'out_features' is a required property"),
    ]


@pytest.mark.parametrize(
    "proj",
    [
        {"_type_": "nn.Linear", "in_features": "${params.width}", "out_features": "${params.width * 2}"},
        {"_type_": "nn.Linear", "in_features": 1, "out_features": 1, "bias": "${params.bias}"},
        {"_type_": "nn.Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": [3, "${params.k}"]},
        {"_type_": "${params.block}", "anything": 1},
        {"_type_": "graph:${params.layer}", "width": 3},
        {"_type_": "graph:encoder_layer", "width": 3, "_repeat_": "${params.depth}"},
        {"_type_": "nn.Linear", "in_features": 1, "out_features": 1, "_repeat_": 4},
        {"_type_": "nn.Linear", "in_features": 1, "out_features": 1, "device": "cpu"},
        {"_type_": "nn.GELU", "approximate": "tanh"},
        {"_type_": "nn.Sequential"},
    ],
    ids=[
        "whole-value",
        "bool",
        "inside-a-list",
        "type",
        "graph-type",
        "subgraph",
        "repeat",
        "factory-kwarg",
        "string",
        "no-arguments",
    ],
)
def test_schema_registry_accepts(proj: dict[str, Any]) -> None:
    assert _errors(_seed(proj=proj)) == []


def test_schema_registry_checks_nested_block_specs() -> None:
    encoder = {
        "_type_": "nn.TransformerEncoder",
        "num_layers": 2,
        "encoder_layer": {"_type_": "nn.TransformerEncoderLayer", "d_model": 8, "nhead": 2, "nheads": 2},
        "norm": {"_type_": "nn.LayerNorm", "normalized_shape": 8},
    }

    (error,) = _validator().iter_errors(_seed(proj=encoder))

    assert list(error.absolute_path) == [*PROJ, "encoder_layer"]
    # Inside the union (a block spec, or a ${...}), the fault of the block-spec branch:
    while error.context:
        error = max(error.context, key=lambda e: len(e.absolute_path))
    assert list(error.absolute_path) == [*PROJ, "encoder_layer"]
    assert error.message == "Additional properties are not allowed ('nheads' was unexpected)"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["model", "graph", "return"], "${params.return_kind}"),
        (["model", "graph", "nodes", "h1", "call"], "module:${params.first}"),
        (["schema_version"], "${params.version}"),
    ],
)
def test_schema_registry_sections_accept_interpolated_scalars(path: list[str], value: str) -> None:
    tree = _seed()
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value

    assert _errors(tree) == []


def test_schema_registry_describes_blocks_from_docstrings() -> None:
    linear = json_schema()["$defs"]["block:nn.Linear"]

    assert linear["description"].startswith("Applies an affine linear transformation to the incoming data")
    assert "torch.nn.modules.linear.Linear" in linear["description"]
    assert linear["properties"]["in_features"]["description"] == "size of each input sample"
    assert linear["properties"]["bias"]["default"] is True
    assert linear["required"] == ["in_features", "out_features"]
    assert linear["additionalProperties"] is False


class _Documented(torch.nn.Module):
    """A block with documented arguments.

    More prose.

    Args:
        width (int): how wide
            it is.
        mode: one of 'a', 'b'.

    Shape:
        width: not an argument.
    """

    def __init__(self, width: int, mode: str = "a", *, scale: tuple[int, int] = (1, 2)) -> None:
        super().__init__()


class _Open(torch.nn.Module):
    def __init__(self, width: int, **extra: Any) -> None:
        super().__init__()


def _registry_schema(policy: Any = "strict") -> dict[str, Any]:
    registry = Registry()
    registry.register_module("test.documented", _Documented, signature_policy=policy)
    registry.register_module("test.open", _Open)
    return json_schema(imports=["my_project.model_blocks"], registry=registry)


def test_schema_registry_custom_block_from_signature_and_docstring() -> None:
    block = _registry_schema()["$defs"]["block:test.documented"]

    assert block["description"].startswith("A block with documented arguments.\n\n")
    assert block["required"] == ["width"]
    assert block["additionalProperties"] is False
    assert block["properties"]["width"] == {
        "description": "how wide it is.",
        "anyOf": [{"type": "integer"}, {"$ref": "#/$defs/Interpolation"}],
    }
    assert block["properties"]["mode"]["description"] == "one of 'a', 'b'."
    assert block["properties"]["mode"]["default"] == "a"
    assert block["properties"]["scale"]["default"] == [1, 2]


def test_schema_registry_kwargs_admit_extra_arguments() -> None:
    block = _registry_schema()["$defs"]["block:test.open"]

    assert "additionalProperties" not in block
    assert block["description"].startswith("Block 'test.open'.")


@pytest.mark.parametrize(
    ("policy", "value", "value_accepted", "other_accepted"),
    [
        ("strict", "8", False, False),
        ("lax", "8", True, False),  # lax coerces '8' to 8
        ("none", "8", True, True),
        ("none", {"x": 1}, True, True),
    ],
)
def test_schema_registry_follows_signature_policy(
    policy: str, value: Any, value_accepted: bool, other_accepted: bool
) -> None:
    validator = jsonschema.Draft202012Validator(_registry_schema(policy))

    errors = _errors(_seed(proj={"_type_": "test.documented", "width": value, "other": 1}), validator)

    assert ([*PROJ, "width"] not in [path for path, _ in errors]) == value_accepted
    unexpected = (PROJ, "Additional properties are not allowed ('other' was unexpected)")
    assert (unexpected not in errors) == other_accepted


def test_schema_registry_only_the_imports_blocks() -> None:
    assert "block:my_project.token_mixer" not in json_schema()["$defs"]
    assert "block:my_project.token_mixer" in json_schema(imports=["my_project.model_blocks"])["$defs"]


def test_schema_registry_import_failure_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="imports\\[0\\]: cannot import 'no_such_module'"):
        json_schema(imports=["no_such_module"])


def test_schema_registry_imports_held_to_prefixes_when_given() -> None:
    with pytest.raises(SpecError, match=r"import 'my_project\.model_blocks' is outside the allowed"):
        json_schema(imports=["my_project.model_blocks"], allowed_import_prefixes=["other."])


def test_schema_registry_size_stays_reasonable() -> None:
    # 160-odd nn.* blocks, each written once under $defs: about 250 kB of compact JSON.
    assert len(json.dumps(json_schema())) < 400_000


def test_schema_registry_type_completion_lists_every_key() -> None:
    # yaml-language-server completes `_type_` from an enum of every key (NOTE: [Editor schema shape]).
    schema = json_schema(imports=["my_project.model_blocks"])
    type_ = schema["$defs"]["ModuleSpec"]["properties"]["_type_"]

    keys = type_["anyOf"][0]["enum"]
    assert {"nn.Linear", "nn.GELU", "my_project.token_mixer"} <= set(keys)
    branches = schema["$defs"]["ModuleSpec"]["allOf"]
    assert {b["if"]["properties"]["_type_"].get("const") for b in branches} >= set(keys)


# ---- a spec's own sub-graphs -------------------------------------------------------------------

SUBGRAPH_SPEC = """\
schema_version: 1
model:
  graphs:
    ffn:
      args:
        width: int
        hidden: {type: int, default: 32, description: inner width}
      inputs: [x]
      modules:
        up: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.hidden}"}
      nodes:
        h: {call: module:up, args: [$x]}
      outputs: [$h]
  graph:
    inputs: [x]
    modules:
      one: {_type_: "graph:ffn", width: 8}
    nodes:
      y: {call: module:one, args: [$x]}
    outputs: [$y]
"""


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"widht": 8}, ["model", "graph", "modules", "one"], "Additional properties are not allowed"),
        ({"hidden": "big"}, ["model", "graph", "modules", "one", "hidden"], "is not valid under any"),
    ],
    ids=["misspelled-arg", "mistyped-arg"],
)
def test_schema_registry_spec_checks_subgraph_arguments(
    tmp_path: Path, change: dict[str, Any], where: list[str], message: str
) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(SUBGRAPH_SPEC)
    validator = jsonschema.Draft202012Validator(spec_schema(path))
    tree = load_yaml_file(path).tree
    assert list(validator.iter_errors(tree)) == []
    tree["model"]["graph"]["modules"]["one"].update(change)
    errors = list(validator.iter_errors(tree))
    assert [(list(e.absolute_path), message in e.message) for e in errors] == [(where, True)]


def test_schema_registry_spec_describes_subgraph_arguments(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(SUBGRAPH_SPEC)
    definition = spec_schema(path)["$defs"]["block:graph:ffn"]
    assert definition["required"] == ["width"]
    assert definition["properties"]["hidden"]["description"] == "inner width"
    assert definition["properties"]["hidden"]["default"] == 32
