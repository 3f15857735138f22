"""Overrides: `build_model(path, overrides={"params.width": 256})`, applied before interpolation."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from model_constructor import SpecError, build_model, load_spec
from model_constructor.errors import Location
from model_constructor.overrides import parse_assignment

SPEC = """\
schema_version: 1
params:
  width: 8
  hidden: ${params.width * 4}
model:
  graph:
    inputs: [x]
    modules:
      up: {_type_: nn.Linear, in_features: "${params.width}", out_features: "${params.hidden}"}
      down:
        _type_: nn.Linear
        in_features: ${params.hidden}
        out_features: ${params.width}
    nodes:
      h: {call: module:up, args: [$x]}
      y: {call: module:down, args: [$h]}
    outputs: [$y]
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(SPEC)
    return path


def _error(path: Path | dict[str, Any], overrides: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides=overrides)
    return caught.value


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def test_overrides_change_the_built_model(spec_path: Path) -> None:
    model = build_model(spec_path, overrides={"params.width": 16})

    # `hidden` is `${params.width * 4}`: it follows the overridden width.
    assert _shapes(model) == {
        "up.weight": (64, 16),
        "up.bias": (64,),
        "down.weight": (16, 64),
        "down.bias": (16,),
    }
    assert model.spec.params == {"width": 16, "hidden": 64}


def test_overrides_without_overrides_the_file_stands(spec_path: Path) -> None:
    assert _shapes(build_model(spec_path))["up.weight"] == (32, 8)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"model.graph.modules.up.out_features": 5, "model.graph.modules.down.in_features": 5}, (5, 8)),
        ({"+model.graph.modules.up.bias": False}, (32, 8)),
        ({"params": {"width": 2, "hidden": 3}}, (3, 2)),
        ({"model.graph.inputs.0": "z", "model.graph.nodes.h.args": ["$z"]}, (32, 8)),
    ],
    ids=["module-arguments", "plus-adds-key", "whole-mapping", "list-item"],
)
def test_overrides_paths(spec_path: Path, overrides: dict[str, Any], expected: tuple[int, int]) -> None:
    model = build_model(spec_path, overrides=overrides)

    assert _shapes(model)["up.weight"] == expected


def test_overrides_plus_adds_key_that_is_used(spec_path: Path) -> None:
    model = build_model(spec_path, overrides={"+model.graph.modules.up.bias": False})

    assert "up.bias" not in model.state_dict()


def test_overrides_do_not_change_the_callers_data(spec_path: Path) -> None:
    args = ["$x"]
    build_model(spec_path, overrides={"model.graph.nodes.h.args": args})
    assert args == ["$x"]


def test_overrides_unknown_path_points_at_the_parent_mapping(spec_path: Path) -> None:
    error = _error(spec_path, {"params.widht": 16})

    (diagnostic,) = error.diagnostics
    assert diagnostic.location == Location(str(spec_path), 2, 1)
    assert diagnostic.message == "override 'params.widht': no key 'widht' in params"
    assert diagnostic.hint == "did you mean 'params.width'?"
    assert diagnostic.related == (("set by override", Location("<overrides>", 1, 1)),)
    assert str(error) == (
        f"{spec_path}:2:1: error: params: override 'params.widht': no key 'widht' in params"
        " (did you mean 'params.width'?)\n"
        " 2 | params:\n"
        "   | ^~~~~~\n"
        "  note: set by override at <overrides>:1:1"
    )


@pytest.mark.parametrize(
    ("overrides", "line", "col", "message", "hint"),
    [
        (
            {"parms.width": 1},
            1,
            1,
            "override 'parms.width': no key 'parms' in the top level",
            "did you mean 'params'?",
        ),
        (
            {"model.graph.modules.up.out_featres": 1},
            9,
            7,
            "override 'model.graph.modules.up.out_featres': no key 'out_featres' in model.graph.modules.up",
            "did you mean 'model.graph.modules.up.out_features'?",
        ),
        (
            {"params.zzz": 1},
            2,
            1,
            "override 'params.zzz': no key 'zzz' in params",
            "write +params.zzz to add a new key; keys there: width, hidden",
        ),
        (
            {"model.graph.inputs.3": "y"},
            7,
            5,
            "override 'model.graph.inputs.3': model.graph.inputs is a list of 1, which has no item '3'",
            None,
        ),
        (
            {"params.width.x": 1},
            3,
            3,
            "override 'params.width.x': params.width is int, which has no item 'x'",
            None,
        ),
    ],
    ids=["top-level", "module-argument", "no-close-match", "list-index", "into-scalar"],
)
def test_overrides_invalid_path_is_located(
    spec_path: Path, overrides: dict[str, Any], line: int, col: int, message: str, hint: str | None
) -> None:
    (diagnostic,) = _error(spec_path, overrides).diagnostics

    assert (diagnostic.location, diagnostic.message, diagnostic.hint) == (
        Location(str(spec_path), line, col),
        message,
        hint,
    )


def test_overrides_every_unknown_path_reported_at_once(spec_path: Path) -> None:
    error = _error(spec_path, {"params.a": 1, "params.width": 3, "params.b": 2})

    assert [d.message for d in error.diagnostics] == [
        "override 'params.a': no key 'a' in params",
        "override 'params.b': no key 'b' in params",
    ]
    assert [d.related for d in error.diagnostics] == [
        (("set by override", Location("<overrides>", 1, 1)),),
        (("set by override", Location("<overrides>", 3, 1)),),
    ]


def test_overrides_bad_value_points_at_the_override(spec_path: Path) -> None:
    error = _error(spec_path, {"params.width": 8, "model.graph.modules.down.out_features": "8"})

    assert str(error) == (
        "<overrides>:2:39: error: model.graph.modules.down.out_features: argument 'out_features' of "
        "block 'nn.Linear': Input should be a valid integer, got '8' "
        "(strict blocks take numbers and booleans unquoted)\n"
        ' 2 | model.graph.modules.down.out_features="8"\n'
        "   |                                       ^~~"
    )


def test_overrides_on_a_mapping_spec_point_at_the_override() -> None:
    spec = {
        "schema_version": 1,
        "params": {"width": 4},
        "model": {"graph": {"inputs": ["x"], "nodes": {"y": {"call": "method:relu", "args": ["$x"]}}}},
    }

    error = _error(spec, {"params.wdth": 1})

    (diagnostic,) = error.diagnostics
    assert diagnostic.location == Location("<overrides>", 1, 1)
    assert diagnostic.hint == "did you mean 'params.width'?"


@pytest.mark.parametrize("written", ["", "params..width", "."])
def test_overrides_malformed_path(spec_path: Path, written: str) -> None:
    (diagnostic,) = _error(spec_path, {written: 1}).diagnostics

    assert diagnostic.message == f"invalid override path {written!r}"
    assert diagnostic.location == Location("<overrides>", 1, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.width=256", ("params.width", 256)),
        ("params.rate = 0.5", ("params.rate", 0.5)),
        ("params.flag=false", ("params.flag", False)),
        ("params.name=gelu", ("params.name", "gelu")),
        ("params.shape=[1, 2]", ("params.shape", [1, 2])),
        ("params.width=${params.depth * 2}", ("params.width", "${params.depth * 2}")),
        ("params.empty=", ("params.empty", None)),
        ("params.eq=a=b", ("params.eq", "a=b")),
    ],
)
def test_overrides_parse_assignment(text: str, expected: tuple[str, Any]) -> None:
    assert parse_assignment(text) == expected


def test_overrides_parse_assignment_needs_equals() -> None:
    with pytest.raises(ValueError, match=r"'params\.width' is not PATH=VALUE"):
        parse_assignment("params.width")


def test_overrides_parse_assignment_bad_yaml_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        parse_assignment("params.width=[1,")
    assert caught.value.diagnostics[0].location is not None
    assert caught.value.diagnostics[0].location.file == "--set params.width"


def test_overrides_file_spec_is_unchanged_on_disk(spec_path: Path) -> None:
    build_model(spec_path, overrides={"params.width": 2})
    assert spec_path.read_text() == textwrap.dedent(SPEC)


def test_overrides_deeply_nested_value_is_refused_not_recursed(spec_path: Path) -> None:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(SpecError) as info:
        load_spec(spec_path, overrides={"params.width": value})
    assert [d.message for d in info.value.diagnostics] == ["spec too large: nesting deeper than 64 levels"]


def test_overrides_deeply_nested_path_is_refused_not_recursed(spec_path: Path) -> None:
    written = "+params.x." + ".".join(["a"] * 100_000)
    (diagnostic,) = _error(spec_path, {"params.width": 2, written: 1}).diagnostics
    assert diagnostic.message == "spec too large: override path nested deeper than 64 levels"
    assert diagnostic.location == Location("<overrides>", 2, 1)


def test_overrides_path_64_levels_deep_is_added(spec_path: Path) -> None:
    written = "+params.x." + ".".join(["a"] * 62)
    value = load_spec(spec_path, overrides={written: 1}).params["x"]
    for _ in range(62):
        value = value["a"]
    assert value == 1
