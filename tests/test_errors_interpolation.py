"""`${...}` interpolation: typed values, params that use params, safe arithmetic, and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import load_error, located, write_spec

from model_constructor import SpecError, load_spec

ONLY_ARITHMETIC = "only params paths, numbers, strings and + - * / // % ** are allowed"


def spec_text(params: str, value: str = "1") -> str:
    """A valid spec whose params are `params` (one flow mapping, on line 2) and that uses
    `value` on line 7, at column 60, as a keyword argument of a node."""
    return (
        "schema_version: 1\n"
        f"params: {params}\n"
        "model:\n"
        "  graph:\n"
        "    inputs: [x]\n"
        "    nodes:\n"
        f"      h1: {{call: fn:torch.clamp, args: [$x], kwargs: {{min: {value}}}}}\n"
        "    outputs: [$h1]\n"
    )


USE_COL = 60  # where `value` starts on line 7


def notes(exc: SpecError) -> list[list[tuple[str, str]]]:
    return [[(what, where.format()) for what, where in d.related] for d in exc.diagnostics]


def resolved(tmp_path: Path, params: str) -> dict[str, Any]:
    return load_spec(write_spec(tmp_path, spec_text(params))).params


# ---- values and types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("${params.a}", 7),
        ("${params.f}", 1.5),
        ("${params.flag}", True),
        ("${params.name}", "gelu"),
        ("${params.shape}", [2, 3]),
        ("${params.block}", {"depth": 4}),
        ("${params.block.depth}", 4),
        ("${params.shape[1]}", 3),
        ("${params.a + params.b}", 9),
        ("${params.a - params.b}", 5),
        ("${params.a * params.b}", 14),
        ("${params.a / 2}", 3.5),
        ("${params.b / 2}", 1.0),
        ("${params.a // params.b}", 3),
        ("${params.a % params.b}", 1),
        ("${params.a ** params.b}", 49),
        ("${params.b ** -1}", 0.5),
        ("${-params.a}", -7),
        ("${+params.a}", 7),
        ("${(params.a + 1) * 2}", 16),
        ("${params.a + 1 * 2}", 9),
        ("${-(params.a - 10) // 2}", 1),
        ("${params.f * 2}", 3.0),
        ("${params.a * params.f}", 10.5),
        ("${ params.a }", 7),
        ("${params.name + '_tanh'}", "gelu_tanh"),
        ("${'ab' * params.b}", "abab"),
    ],
)
def test_interpolation_value_keeps_type(tmp_path: Path, expression: str, expected: Any) -> None:
    params = resolved(
        tmp_path,
        "{a: 7, b: 2, f: 1.5, flag: true, name: gelu, shape: [2, 3], block: {depth: 4}, "
        f"out: {expression}}}",
    )
    assert params["out"] == expected
    assert type(params["out"]) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"layer_${params.a}"', "layer_7"),
        ('"w${params.a}x${params.f}"', "w7x1.5"),
        ('"h${params.a * 2}"', "h14"),
        ('"${params.name}-${params.flag}"', "gelu-True"),
        ("run ${params.a}", "run 7"),
        ('"${params.a}${params.a}"', "77"),
    ],
)
def test_interpolation_formatted_into_longer_string(tmp_path: Path, text: str, expected: str) -> None:
    params = resolved(tmp_path, f"{{a: 7, f: 1.5, flag: true, name: gelu, out: {text}}}")
    assert params["out"] == expected


def test_interpolation_param_used_twice_is_two_copies(tmp_path: Path) -> None:
    # Each use is a copy of its own: a module that changed its list would change no other.
    written = "{shape: [2, 3], a: '${params.shape}', b: ['${params.shape}', '${params.a}']}"
    params = resolved(tmp_path, written)
    assert params["a"] == params["b"][0] == params["b"][1] == params["shape"] == [2, 3]
    used = [params["shape"], params["a"], *params["b"]]
    assert len({id(value) for value in used}) == len(used)


def test_interpolation_params_refer_to_params(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        params:
          later: ${params.hidden}
          width: 8
          hidden: ${params.width * 4}
          heads: 2
          head_dim: ${params.hidden // params.heads}
          label: "d${params.head_dim}"
        model:
          graph:
            inputs: [x]
            modules:
              proj: {_type_: nn.Linear, in_features: ${params.width}, out_features: ${params.later}}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
    )
    spec = load_spec(path)
    assert spec.params == {"later": 32, "width": 8, "hidden": 32, "heads": 2, "head_dim": 16, "label": "d16"}
    assert spec.model.graph.modules["proj"].kwargs == {"in_features": 8, "out_features": 32}


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "value", "message", "hint"),
    [
        pytest.param(
            "{width: 8}",
            "${params.widht}",
            "unknown param 'params.widht'",
            "did you mean 'params.width'?",
            id="unknown-param",
        ),
        pytest.param(
            "{width: 8, depth: 2}",
            "${params.width * params.depht}",
            "unknown param 'params.depht'",
            "did you mean 'params.depth'?",
            id="unknown-param-in-arithmetic",
        ),
        pytest.param(
            "{width: 8}",
            "${width}",
            "'width' in '${width}' is not a params path",
            "did you mean 'params.width'?",
            id="bare-name",
        ),
        pytest.param(
            "{width: 8}",
            "${params.x +}",
            "invalid interpolation '${params.x +}'",
            "write a params path such as ${params.width}, optionally with + - * / // % **",
            id="syntax-error",
        ),
        pytest.param(
            "{width: 8}",
            "${}",
            "invalid interpolation '${}'",
            "write a params path such as ${params.width}, optionally with + - * / // % **",
            id="empty",
        ),
        pytest.param(
            "{width: 8}",
            "${" + "1 + " * 300 + "1}",
            "interpolation is 1201 characters long, over the limit of 1000",
            "split it into several params",
            id="too-long",
        ),
    ],
)
def test_interpolation_error(tmp_path: Path, params: str, value: str, message: str, hint: str) -> None:
    path = write_spec(tmp_path, spec_text(params, value))
    exc = load_error(path)
    assert located(exc) == [(7, USE_COL, message, hint)]
    assert str(exc).startswith(f"{path}:7:{USE_COL}: error: model.graph.nodes.h1.kwargs.min: {message}")


def test_interpolation_unknown_param_renders_caret_under_interpolation(tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec_text("{width: 8}", "${params.widht}"))
    assert str(load_error(path)) == (
        f"{path}:7:60: error: model.graph.nodes.h1.kwargs.min: unknown param 'params.widht' "
        "(did you mean 'params.width'?)\n"
        " 7 |       h1: {call: fn:torch.clamp, args: [$x], kwargs: {min: ${params.widht}}}\n"
        "   |                                                            ^~~~~~~~~~~~~~~"
    )


def test_interpolation_unknown_nested_param_names_parent_definition(tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec_text("{block: {depth: 4}}", "${params.block.dpeth}"))
    exc = load_error(path)
    assert located(exc) == [
        (7, USE_COL, "unknown param 'params.block.dpeth'", "did you mean 'params.block.depth'?")
    ]
    assert notes(exc) == [[("params.block is defined", f"{path}:2:17")]]
    assert str(exc).endswith(f"\n  note: params.block is defined at {path}:2:17")


def test_interpolation_error_inside_string_points_at_interpolation(tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec_text("{width: 8}", '"w${params.widht}"'))
    assert located(load_error(path)) == [
        (7, USE_COL + 2, "unknown param 'params.widht'", "did you mean 'params.width'?")
    ]


def test_interpolation_unknown_param_in_params(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        params:
          width: 8
          hidden: ${params.widht * 4}
        model:
          graph:
            inputs: [x]
            modules:
              proj: {_type_: nn.Linear, in_features: ${params.hidden}, out_features: 4}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
    )
    exc = load_error(path)
    # Reported once, where the bad name is written; not again where `hidden` is used.
    assert located(exc) == [(4, 11, "unknown param 'params.widht'", "did you mean 'params.width'?")]


def test_interpolation_cycle(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        params:
          a: ${params.b + 1}
          b: ${params.c * 2}
          c: ${params.a}
          d: 4
        model:
          graph:
            inputs: [x]
            modules:
              proj: {_type_: nn.Linear, in_features: ${params.a}, out_features: ${params.d}}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
    )
    exc = load_error(path)
    message = "interpolation cycle: params.a -> params.b -> params.c -> params.a"
    assert located(exc) == [(5, 6, message, None)]
    assert notes(exc) == [
        [
            ("params.a is defined", f"{path}:3:6"),
            ("params.b is defined", f"{path}:4:6"),
            ("params.c is defined", f"{path}:5:6"),
        ]
    ]
    assert str(exc) == (
        f"{path}:5:6: error: params.c: {message}\n"
        " 5 |   c: ${params.a}\n"
        "   |      ^~~~~~~~~~~\n"
        f"  note: params.a is defined at {path}:3:6\n"
        f"  note: params.b is defined at {path}:4:6\n"
        f"  note: params.c is defined at {path}:5:6"
    )


def test_interpolation_self_cycle(tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec_text("{a: '${params.a}'}", "${params.a}"))
    exc = load_error(path)
    assert located(exc) == [(2, 14, "interpolation cycle: params.a -> params.a", None)]
    assert notes(exc) == [[("params.a is defined", f"{path}:2:13")]]


def test_interpolation_huge_power_refused(tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec_text("{n: 2}", "${params.n ** 10 ** 10}"))
    exc = load_error(path)
    assert located(exc) == [(7, USE_COL, "'${params.n ** 10 ** 10}' is too large (over 64 bits)", None)]
    assert notes(exc) == [[("params.n is defined", f"{path}:2:13")]]


@pytest.mark.parametrize(
    ("params", "value", "message"),
    [
        ("{x: 4611686018427387904}", "${params.x * params.x * params.x}", "is too large (over 64 bits)"),
        ("{x: 2.0}", "${params.x ** 1e10}", "overflows"),
        ("{x: -8}", "${params.x ** 0.5}", "has no real result"),
        ("{s: ab}", "${params.s * 100000}", "makes a string over 10000 characters"),
    ],
)
def test_interpolation_result_bounded(tmp_path: Path, params: str, value: str, message: str) -> None:
    path = write_spec(tmp_path, spec_text(params, value))
    assert located(load_error(path)) == [(7, USE_COL, f"'{value}' {message}", None)]


def test_interpolation_deep_nesting_refused(tmp_path: Path) -> None:
    # Within the length limit, but nested deeper than Python's default recursion limit.
    value = "${" + "-" * 990 + "params.x}"
    path = write_spec(tmp_path, spec_text("{x: 1}", value))
    assert located(load_error(path)) == [(7, USE_COL, f"'{value}' is nested too deeply", None)]


@pytest.mark.parametrize(
    "value",
    [
        "${params.x // 0}",
        "${params.x / (params.x - 2)}",
        "${params.x % 0}",
        "${params.f / 0.0}",
    ],
)
def test_interpolation_division_by_zero(tmp_path: Path, value: str) -> None:
    path = write_spec(tmp_path, spec_text("{x: 2, f: 1.5}", value))
    assert located(load_error(path)) == [(7, USE_COL, f"division by zero in '{value}'", None)]


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("${__import__('os')}", "__import__('os')"),
        ("${__import__('os').system('touch ran')}", "__import__('os').system('touch ran')"),
        ("${abs(params.x)}", "abs(params.x)"),
        ("${params.name.upper()}", "params.name.upper()"),
        ("${(lambda: 1)()}", "(lambda: 1)()"),
        ("${params.x > 1}", "params.x > 1"),
        ("${params.x if params.x else 0}", "params.x if params.x else 0"),
        ("${[params.x, 1]}", "[params.x, 1]"),
        ("${params.x and 1}", "params.x and 1"),
        ("${not params.x}", "not params.x"),
        ("${~params.x}", "~params.x"),
        ("${params.x << 2}", "params.x << 2"),
        ("${params.x[0:1]}", "params.x[0:1]"),
        ("${params[params.x]}", "params[params.x]"),
    ],
)
def test_interpolation_only_arithmetic_allowed(tmp_path: Path, value: str, refused: str) -> None:
    path = write_spec(tmp_path, spec_text("{x: 2, name: gelu}", value))
    [(line, col, message, hint)] = located(load_error(path))
    assert (line, col) == (7, USE_COL)
    assert message == f"'{refused}' is not allowed in '{value}'"
    assert hint in (ONLY_ARITHMETIC, None)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("${params.x.__class__}", "params.x.__class__"),
        ("${params.x.real}", "params.x.real"),
        ("${params.name.__len__}", "params.name.__len__"),
        ("${params.__class__}", "params.__class__"),
    ],
)
def test_interpolation_no_attribute_access(tmp_path: Path, value: str, path: str) -> None:
    # A dotted name only walks the params mapping: it never reads a Python attribute.
    spec = write_spec(tmp_path, spec_text("{x: 2, name: gelu}", value))
    [(line, col, message, _)] = located(load_error(spec))
    assert (line, col, message) == (7, USE_COL, f"unknown param '{path}'")


@pytest.mark.parametrize(
    ("value", "message", "hint"),
    [
        ("${params.name + 1}", "cannot apply '+' to str and int in '${params.name + 1}'", None),
        ("${-params.name}", "unary sign on a str in '${-params.name}'", None),
        ("${params.flag * 2}", "cannot apply '*' to bool and int in '${params.flag * 2}'", None),
        (
            '"w${params.shape}"',
            "'${params.shape}' is a list, which cannot be formatted into a string",
            "use it as the whole value",
        ),
    ],
)
def test_interpolation_type_error(tmp_path: Path, value: str, message: str, hint: str | None) -> None:
    path = write_spec(tmp_path, spec_text("{name: gelu, flag: true, shape: [2, 3]}", value))
    [(line, col, got, got_hint)] = located(load_error(path))
    assert (line, got, got_hint) == (7, message, hint)
    assert col == USE_COL + value.index("$")


def test_interpolation_same_fault_reported_at_each_use(tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec_text("{a: '${params.nope}', b: ['${params.nope}']}", "'${params.nope}'"))
    assert located(load_error(path), hint=False) == [
        (2, 14, "unknown param 'params.nope'"),
        (2, 36, "unknown param 'params.nope'"),
        (7, USE_COL + 1, "unknown param 'params.nope'"),
    ]


def test_interpolation_errors_all_reported_sorted(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        params:
          width: 8
          hidden: ${params.widht * 4}
          bad: ${params.width // 0}
        model:
          graph:
            inputs: [x]
            modules:
              proj: {_type_: nn.Linear, in_features: ${params.width}, out_features: ${params.heads}}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
    )
    exc = load_error(path)
    assert located(exc) == [
        (4, 11, "unknown param 'params.widht'", "did you mean 'params.width'?"),
        (5, 8, "division by zero in '${params.width // 0}'", None),
        (10, 77, "unknown param 'params.heads'", None),
    ]
    assert str(exc).endswith("\n3 errors")
