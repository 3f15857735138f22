"""`dump_yaml`: a spec written back as YAML loads back equal, and any YAML parser reads it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from model_constructor import ModelSpec, dump_yaml, load_spec
from model_constructor.load import load_tree
from model_constructor.source import load_yaml_text

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed"
SEED_YAML = SEED / "configs" / "models" / "my_model.yaml"
EXAMPLES = sorted(p for pattern in ("*.yaml", "*.yml") for p in (ROOT / "examples").rglob(pattern))


@pytest.fixture(autouse=True)
def seed_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The seed's `my_project` importable, and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(SEED))
    yield
    for name in [n for n in sys.modules if n == "my_project" or n.startswith("my_project.")]:
        del sys.modules[name]


def _standard(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dump_resolved_spec_round_trips(path: Path, tmp_path: Path) -> None:
    spec = load_spec(path)
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_yaml(spec))

    assert load_spec(dumped) == spec
    # Standard YAML: no pre-pass needed, and the same data.
    assert ModelSpec.model_validate(_standard(dumped.read_text())) == spec


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dump_written_tree_round_trips(path: Path, tmp_path: Path) -> None:
    tree = load_tree(path)[0]
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_yaml(tree))

    assert _standard(dumped.read_text()) == tree
    assert load_spec(dumped) == load_spec(path)


def test_dump_seed_layout() -> None:
    assert dump_yaml(load_tree(SEED_YAML)[0]) == (
        "schema_version: 1\n"
        "settings: {allowed_import_prefixes: [model_constructor., my_project.]}\n"
        "imports: [my_project.model_blocks]\n"
        "params: {width: 128, dropout: 0.1}\n"
        "model:\n"
        "  graph:\n"
        "    inputs: [x]\n"
        "    modules:\n"
        "      proj:\n"
        "        _type_: nn.Linear\n"
        '        in_features: "${params.width}"\n'
        '        out_features: "${params.width}"\n'
        "      mix:\n"
        "        _type_: my_project.token_mixer\n"
        '        width: "${params.width}"\n'
        '        dropout: "${params.dropout}"\n'
        "    nodes:\n"
        "      h1: {call: module:proj, args: [$x]}\n"
        "      h2: {call: module:mix, args: [$h1]}\n"
        "    order: [h1, h2]\n"
        "    outputs: [$h2]\n"
        "    return: single\n"
    )


def test_dump_resolved_seed_has_no_interpolations() -> None:
    text = dump_yaml(load_spec(SEED_YAML))

    assert "${" not in text
    assert "      proj: {_type_: nn.Linear, in_features: 128, out_features: 128}\n" in text


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        "yes",
        "off",
        "1",
        "1.5",
        "",
        "a: b",
        "# not a comment",
        "$$literal",
        "${params.a} and text",
        1e-05,
        2.5e20,
        -0.0,
        float("inf"),
        [1, [2, {"k": None}]],
        {"nested": {"deeper": ["x", 1.0]}},
        "x" * 200,
    ],
    ids=repr,
)
def test_dump_scalars_read_back_the_same(value: Any) -> None:
    data = {"schema_version": 1, "params": {"value": value}}

    text = dump_yaml(data)

    assert load_yaml_text(text, "dump.yaml").tree == data
    assert _standard(text) == data


def test_dump_floats_keep_a_decimal_point() -> None:
    # YAML 1.1 readers such as PyYAML read `1e-05` as a string.
    assert dump_yaml({"a": 1e-05, "b": 3e20}) == "a: 1.0e-05\nb: 3.0e+20\n"


def test_dump_mapping_is_not_mutated() -> None:
    data: dict[str, Any] = {"schema_version": 1, "params": {"w": "${params.x}", "l": [1, 2]}}
    before = repr(data)
    dump_yaml(data)
    assert repr(data) == before
