"""Resource bounds: a spec that would exhaust memory, time or the stack is a located SpecError.

Wall-clock times are not asserted (the machine is shared and noisy); each case must finish,
and docs/reliability.md records how long each takes (`python tools/measure_bounds.py`).
Bounds already tested elsewhere: nesting just past the limit (test_errors_load.py), string
repetition and huge powers of params (test_errors_interpolation.py).
"""

from __future__ import annotations

import textwrap
from collections import OrderedDict
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import torch
from helpers import load_error, located, write_spec
from pydantic import BaseModel

from model_constructor import SpecError, build_model, load_spec
from model_constructor.interpolation import interpolate, interpolate_data
from model_constructor.plain import plain_tree
from model_constructor.source import SourceMap

GRAPH = """\
model:
  graph:
    inputs: [x]
    nodes:
      h1: {call: method:relu, args: [$x]}
    outputs: [$h1]
"""


def python_spec(params: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "params": params,
        "model": {
            "graph": {
                "inputs": ["x"],
                "nodes": {"h": {"call": "method:relu", "args": ["$x"]}},
                "outputs": ["$h"],
            }
        },
    }


def nested_list(depth: int) -> list[Any]:
    root: list[Any] = []
    inner = root
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return root


# ---- YAML: aliases, nesting, size -------------------------------------------------------------


def test_bounds_alias_expansion_refused_before_expanding(tmp_path: Path) -> None:
    # "Billion laughs": nine lines that expand to 10**9 values. Counted on the composed
    # document, where an alias is one shared node, so nothing is expanded to refuse it.
    lines = ["schema_version: 1", "params:", "  l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = write_spec(tmp_path, "\n".join(lines) + "\n" + GRAPH, dedent=False)
    # l5 is the first to expand past 10**6 values: 1 + 10 * 111,111 of them.
    assert located(load_error(path), hint=False) == [
        (8, 7, "spec too large: more than 1000000 values (alias expansion?)")
    ]


@pytest.mark.parametrize("value", ["&a {a: *a}", "&a [[1, *a]]", "&a {<<: *a}"])
def test_bounds_alias_to_its_own_container_refused(tmp_path: Path, value: str) -> None:
    path = write_spec(tmp_path, f"schema_version: 1\nparams: {value}\n" + GRAPH, dedent=False)
    assert located(load_error(path), hint=False) == [(2, 9, "an alias refers to a node that contains it")]


def test_bounds_alias_nesting_counted_as_expanded(tmp_path: Path) -> None:
    # Each line nests 40 levels, within the limit; the alias makes it 80.
    text = f"schema_version: 1\nparams:\n  a: &a {'[' * 40}{']' * 40}\n  b: {'[' * 40}*a{']' * 40}\n"
    [(line, _, message)] = located(load_error(write_spec(tmp_path, text + GRAPH, dedent=False)), hint=False)
    assert (line, message) == (4, "spec too large: nesting deeper than 64 levels through aliases")


@pytest.mark.parametrize(
    ("opening", "closing", "col"),
    [("[", "]", 76), ("{a: ", "}", 262)],
    ids=["sequence", "mapping"],
)
def test_bounds_flow_nesting_100000_deep_refused(
    tmp_path: Path, opening: str, closing: str, col: int
) -> None:
    # ruamel's scanner is quadratic in flow nesting; the composer stops at the limit.
    text = f"schema_version: 1\nparams: {{a: {opening * 100_000}1{closing * 100_000}}}\n" + GRAPH
    assert located(load_error(write_spec(tmp_path, text, dedent=False)), hint=False) == [
        (2, col, "spec too large: nesting deeper than 64 levels")
    ]


def test_bounds_block_nesting_deep_refused(tmp_path: Path) -> None:
    body = "".join(" " * (2 * depth) + f"k{depth}:\n" for depth in range(1, 500))
    [(line, _, message)] = located(
        load_error(write_spec(tmp_path, "schema_version: 1\nparams:\n" + body + GRAPH, dedent=False)),
        hint=False,
    )
    assert (line, message) == (66, "spec too large: nesting deeper than 64 levels")


def test_bounds_file_over_the_size_limit_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as out:
        out.truncate(16 * 1024 * 1024 + 1)  # sparse: the limit is checked before reading
    assert located(load_error(path), hint=False) == [
        (1, 1, "file is 16777217 bytes, over the limit of 16777216")
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!int ''", "YAML error: '' is not a valid !!int value"),
        ("!!int +", "YAML error: '+' is not a valid !!int value"),
        ("!!bool maybe", "YAML error: 'maybe' is not a valid !!bool value"),
        ("!!set x", "YAML error: 'x' is not a valid !!set value"),
    ],
)
def test_bounds_malformed_core_tag_value_refused(tmp_path: Path, value: str, message: str) -> None:
    # ruamel's own constructors fail on these with IndexError, KeyError or AttributeError.
    path = write_spec(tmp_path, f"schema_version: 1\nparams:\n  x: {value}\n" + GRAPH, dedent=False)
    assert located(load_error(path), hint=False) == [(3, 6, message)]


# ---- interpolation ----------------------------------------------------------------------------


def test_bounds_power_tower_refused(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "schema_version: 1\nparams:\n  n: ${2 ** 2 ** 40}\n" + GRAPH, dedent=False)
    assert located(load_error(path), hint=False) == [(3, 6, "'${2 ** 2 ** 40}' is too large (over 64 bits)")]


def test_bounds_empty_string_repeated_beyond_an_index_is_empty(tmp_path: Path) -> None:
    # '' * 2 ** 63 raises OverflowError in Python; the result is '' whatever the count.
    path = write_spec(
        tmp_path, "schema_version: 1\nparams:\n  e: ''\n  n: ${params.e * 2 ** 63}\n" + GRAPH, dedent=False
    )
    assert load_spec(path).params["n"] == ""


def test_bounds_interpolated_strings_limited_in_total(tmp_path: Path) -> None:
    # Each `${params.s}` makes 9,000 characters: 2,000 of them would make 18 MB.
    text = f"schema_version: 1\nparams:\n  s: {'x' * 9000}\n  t: '{'${params.s}' * 2000}'\n"
    assert located(load_error(write_spec(tmp_path, text + GRAPH, dedent=False)), hint=False) == [
        (4, 6, "spec too large: interpolations make more than 16777216 characters")
    ]


def test_bounds_interpolated_values_counted_as_used(tmp_path: Path) -> None:
    # 1,000 uses of a list of 1,000 values, used 1,000 times: 10**9 values after interpolation.
    uses = ", ".join(["'${params.a}'"] * 1000)
    text = f"schema_version: 1\nparams:\n  a: [{', '.join(['1'] * 1000)}]\n  b: [{uses}]\n"
    text += f"  c: [{uses.replace('params.a', 'params.b')}]\n"
    [(line, _, message)] = located(load_error(write_spec(tmp_path, text + GRAPH, dedent=False)), hint=False)
    assert (line, message) == (4, "spec too large: more than 1000000 values")


def test_bounds_interpolated_nesting_refused(tmp_path: Path) -> None:
    # Each param nests 40 levels and holds the one before: 40 * 100 levels once resolved.
    lines = ["schema_version: 1", "params:", f"  p0: {'[' * 40}{']' * 40}"]
    lines += [f"  p{i}: {'[' * 40}'${{params.p{i - 1}}}'{']' * 40}" for i in range(1, 100)]
    text = "\n".join(lines) + "\n" + GRAPH.replace("args: [$x]", "args: [$x, '${params.p99}']")
    [(line, _, message)] = located(load_error(write_spec(tmp_path, text, dedent=False)), hint=False)
    assert (line, message) == (4, "spec too large: nesting deeper than 64 levels")


# ---- specs written in Python ------------------------------------------------------------------


def test_bounds_python_spec_nested_100000_deep_refused() -> None:
    [diagnostic] = load_error(python_spec({"a": nested_list(100_000)})).diagnostics
    assert diagnostic.message == "spec too large: nesting deeper than 64 levels"
    assert diagnostic.path == ("params", "a", *[0] * 63)


def test_bounds_python_spec_holding_itself_refused() -> None:
    params: dict[str, Any] = {}
    params["self"] = params
    [diagnostic] = load_error(python_spec(params)).diagnostics
    assert diagnostic.message == "spec too large: nesting deeper than 64 levels"


def test_bounds_python_spec_values_counted_as_used() -> None:
    # One list of 1,000 values, used 1,000 times: the first value past 10**6 is reported.
    [diagnostic] = load_error(python_spec({"a": 1, "rows": [[0] * 1000] * 1000})).diagnostics
    assert diagnostic.message == "spec too large: more than 1000000 values"
    assert diagnostic.path == ("params", "rows", 998, 996)


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"row": list(range(1000)), "rows": ["${params.row}"] * 999}, ("params", "rows", 997, 997)),
        # An interpolation fault is reported first, whatever the size.
        ({"row": list(range(1000)), "rows": ["${params.row}"] * 999, "b": "${params.nope}"}, ("params", "b")),
    ],
    ids=["too-large", "fault-first"],
)
def test_bounds_python_spec_interpolated_values_counted_as_used(params: dict[str, Any], path: Any) -> None:
    [diagnostic] = load_error(python_spec(params)).diagnostics
    assert diagnostic.path == path


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": 2**20_000}, "spec too large: an integer of more than 14000 bits"),
        ({"a": {1: "one"}}, "mapping keys must be strings, got 1"),
        ({"s": "x" * 17_000_000}, "spec too large: more than 16777216 characters of strings and numbers"),
    ],
)
def test_bounds_python_spec_value_refused(params: dict[str, Any], message: str) -> None:
    [diagnostic] = load_error(python_spec(params)).diagnostics
    assert diagnostic.message == message


class _Shape(BaseModel):
    size: str = "${params.n}"


def _two_walks(data: Any) -> Any:
    """What `interpolate_data` must give: NOTE: [One copy of data] in interpolation.py."""
    try:
        return interpolate(plain_tree(data, SourceMap(), {}), SourceMap(), {})
    except SpecError as exc:
        return [(d.path, d.message) for d in exc.diagnostics]


def _one_walk(data: Any) -> Any:
    try:
        return interpolate_data(data, SourceMap(), {})
    except SpecError as exc:
        return [(d.path, d.message) for d in exc.diagnostics]


LONG = "${params.n" + " " * 990 + "}"  # 1001 characters that make 1


@pytest.mark.parametrize(
    ("params", "argument"),
    [
        pytest.param({"n": 1}, ("${params.n}", ["${params.n}"]), id="tuple"),
        pytest.param({"n": 1, "a": ("${params.n}",)}, 1, id="tuple-in-params"),
        pytest.param({"n": 1}, OrderedDict(b="${params.n}"), id="mapping-subclass"),
        pytest.param({"n": 1}, MappingProxyType({"b": "${params.n}"}), id="mapping"),
        pytest.param({"n": 1}, _Shape(), id="model"),
        pytest.param({"n": 1}, [{1: "${params.n}"}], id="key-not-a-string"),
        pytest.param({"n": 1, "a": {2: 1}}, 1, id="key-not-a-string-in-params"),
        pytest.param({"n": 1}, nested_list(100), id="deep"),
        pytest.param({"n": 1, "a": nested_list(100)}, 1, id="deep-params"),
        pytest.param({"n": 1}, [LONG] * 17_000, id="text-only-as-written"),
        pytest.param({"n": 1}, ["${params.m}", nested_list(100)], id="fault-and-deep"),
        pytest.param(OrderedDict(n=1), "${params.n}", id="params-mapping"),
        pytest.param({"n": 1, "b": [LONG] * 10}, "${params.b}", id="plain"),
    ],
)
def test_bounds_python_spec_interpolated_in_one_walk_as_in_two(params: Any, argument: Any) -> None:
    data = python_spec(params)
    data["model"]["graph"]["modules"] = {"m": {"_type_": "nn.Identity", "x": argument}}
    assert _one_walk(data) == _two_walks(data)


# ---- graphs and sub-graphs --------------------------------------------------------------------


def chain(count: int) -> str:
    nodes = "\n".join(
        f"      n{i}: {{call: method:relu, args: [{'$x' if i == 0 else f'$n{i - 1}'}]}}" for i in range(count)
    )
    header = "schema_version: 1\nmodel:\n  graph:\n    inputs: [x]\n    nodes:\n"
    return f"{header}{nodes}\n    outputs: [$n{count - 1}]\n"


def test_bounds_chain_of_10000_nodes_builds_and_runs(tmp_path: Path) -> None:
    model = build_model(write_spec(tmp_path, chain(10_000), dedent=False))
    model.graph.lint()
    x = torch.randn(4) - 1
    torch.testing.assert_close(model(x), x.relu(), rtol=0, atol=0)


def test_bounds_cycle_of_10000_nodes_found(tmp_path: Path) -> None:
    text = chain(10_000).replace("args: [$x]", "args: [$n9999]", 1)
    [(line, col, message)] = located(load_error(write_spec(tmp_path, text, dedent=False)), hint=False)
    assert (line, col) == (6, 7)
    assert message.startswith("dependency cycle: n0 -> n9999 -> n9998 -> ")


def nested_graphs(levels: int, width: int) -> str:
    """Graph g_i uses g_{i-1} `width` times: width**levels instances of g0."""
    lines = ["schema_version: 1", "model:", "  graphs:", "    g0:", "      inputs: [x]"]
    lines += ["      modules: {l: {_type_: nn.Identity}}", "      nodes: {o: {call: module:l, args: [$x]}}"]
    lines += ["      outputs: [$o]"]
    for i in range(1, levels + 1):
        modules = ", ".join(f"m{j}: {{_type_: 'graph:g{i - 1}'}}" for j in range(width))
        nodes = ", ".join(
            f"n{j}: {{call: module:m{j}, args: [{'$x' if j == 0 else f'$n{j - 1}'}]}}" for j in range(width)
        )
        lines += [
            f"    g{i}:",
            "      inputs: [x]",
            f"      modules: {{{modules}}}",
            f"      nodes: {{{nodes}}}",
        ]
        lines += [f"      outputs: [$n{width - 1}]"]
    lines += ["  graph:", "    inputs: [x]", f"    modules: {{top: {{_type_: 'graph:g{levels}'}}}}"]
    lines += ["    nodes: {y: {call: module:top, args: [$x]}}", "    outputs: [$y]"]
    return "\n".join(lines) + "\n"


def test_bounds_sub_graph_instances_limited(tmp_path: Path) -> None:
    # Ten graphs deep, ten uses each: 10**10 instances from 50 lines.
    [(_, _, message)] = located(
        load_error(write_spec(tmp_path, nested_graphs(10, 10), dedent=False)), hint=False
    )
    assert message == "spec too large: more than 10000 sub-graph instances"


def test_bounds_sub_graph_nesting_limited(tmp_path: Path) -> None:
    # 2,000 graphs, each using the one before once: a recursive check would overflow the stack.
    [(_, _, message)] = located(
        load_error(write_spec(tmp_path, nested_graphs(2000, 1), dedent=False)), hint=False
    )
    assert message == "spec too large: sub-graphs nested more than 32 deep"


def test_bounds_repeat_of_repeats_limited(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        schema_version: 1
        model:
          graphs:
            inner:
              inputs: [x]
              modules: {l: {_type_: nn.Identity, _repeat_: 1000}}
              nodes: {o: {call: module:l, args: [$x]}}
              outputs: [$o]
          graph:
            inputs: [x]
            modules: {outer: {_type_: 'graph:inner', _repeat_: 1000}}
            nodes: {y: {call: module:outer, args: [$x]}}
            outputs: [$y]
        """
    )
    assert located(load_error(write_spec(tmp_path, text, dedent=False)), hint=False) == [
        (11, 14, "spec too large: it builds 1002001 modules, over the limit of 100000")
    ]


# ---- error messages ---------------------------------------------------------------------------


def test_bounds_message_of_many_faults_on_one_long_line_is_short(tmp_path: Path) -> None:
    keys = ", ".join(f"k{i}: 1" for i in range(20_000))
    exc = load_error(write_spec(tmp_path, f"{{schema_version: 1, {keys}}}\n", dedent=False))
    assert len(exc.diagnostics) == 20_001  # 20,000 unknown keys and the missing `model`
    message = str(exc)
    assert message.endswith("\n... and 19951 more (all are in .diagnostics)\n20001 errors")
    assert len(message) < 50 * 500  # 50 diagnostics shown, each with an excerpt of the line
    assert max(len(line) for line in message.splitlines()) < 300
