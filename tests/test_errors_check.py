"""The check stage: block types and arguments, calls, refs, order, cycles, outputs and return."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from helpers import Activated, load_error, located

from model_constructor import Registry, SpecError

# Five lines, so every case's `modules:` is on line 6.
HEAD = """\
schema_version: 1
params: {width: 8}
model:
  graph:
    inputs: [x]
"""


class Mixer(torch.nn.Module):
    def __init__(self, *, width: int, dropout: float = 0.0):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def scale(x: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
    return x * factor


def registry() -> Registry:
    blocks = Registry()
    blocks.register_module("test.mixer", Mixer)
    blocks.register_module("test.activated", Activated)
    blocks.register_function("test.scale", scale)
    return blocks


def write(tmp_path: Path, body: str) -> Path:
    """HEAD, then `body` as the rest of the graph section."""
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(body), "    "))
    return path


def check_error(path: Path) -> SpecError:
    return load_error(path, registry=registry())


CASES = [
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linaer, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
        [(7, 22, "unknown block type 'nn.Linaer'", "did you mean 'nn.Linear'?")],
        id="unknown-type",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: my_project.linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
        [
            (
                7,
                22,
                "unknown block type 'my_project.linear'",
                "no block is registered under that key; is the module that registers it in imports?",
            )
        ],
        id="unknown-type-no-match",
    ),
    pytest.param(
        """\
            modules:
              mix: {_type_: test.mixer, width: 8, dropuot: 0.1}
            nodes:
              h1: {call: module:mix, args: [$x]}
            outputs: [$h1]
        """,
        [(7, 43, "unknown argument 'dropuot' for block 'test.mixer'", "did you mean 'dropout'?")],
        id="unknown-kwarg",
    ),
    pytest.param(
        """\
            modules:
              mix: {_type_: test.mixer, widht: 8}
            nodes:
              h1: {call: module:mix, args: [$x]}
            outputs: [$h1]
        """,
        # Reported once, as the typo it is, not again as a missing 'width'.
        [(7, 33, "unknown argument 'widht' for block 'test.mixer'", "did you mean 'width'?")],
        id="misspelled-kwarg",
    ),
    pytest.param(
        """\
            modules:
              mix: {_type_: test.mixer, size: 8}
            nodes:
              h1: {call: module:mix, args: [$x]}
            outputs: [$h1]
        """,
        [
            (7, 12, "missing argument 'width' for block 'test.mixer'", "it takes (width, dropout=0.0)"),
            (7, 33, "unknown argument 'size' for block 'test.mixer'", "valid arguments: width, dropout"),
        ],
        id="unknown-kwarg-no-match",
    ),
    pytest.param(
        """\
            modules:
              mix:
                _type_: test.mixer
                dropout: 0.1
            nodes:
              h1: {call: module:mix, args: [$x]}
            outputs: [$h1]
        """,
        [(8, 9, "missing argument 'width' for block 'test.mixer'", "it takes (width, dropout=0.0)")],
        id="missing-kwarg",
    ),
    pytest.param(
        """\
            modules:
              mix: {_type_: test.mixer, width: "128"}
            nodes:
              h1: {call: module:mix, args: [$x]}
            outputs: [$h1]
        """,
        [
            (
                7,
                40,
                "argument 'width' of block 'test.mixer': Input should be a valid integer, got '128'",
                "strict blocks take numbers and booleans unquoted",
            )
        ],
        id="strict-type-mismatch",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8, bias: "yes"}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
        [
            (
                7,
                72,
                "argument 'bias' of block 'nn.Linear': Input should be a valid boolean, got 'yes'",
                "strict blocks take numbers and booleans unquoted",
            )
        ],
        id="strict-bool-mismatch",
    ),
    pytest.param(
        """\
            modules:
              act:
                _type_: test.activated
                width: 8
                activation: {_type_: nn.GELU, approximat: tanh}
            nodes:
              h1: {call: module:act, args: [$x]}
            outputs: [$h1]
        """,
        [(10, 39, "unknown argument 'approximat' for block 'nn.GELU'", "did you mean 'approximate'?")],
        id="nested-block-unknown-kwarg",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$xx]}
            outputs: [$h1]
        """,
        [(9, 38, "unknown reference '$xx'", "did you mean 'x'?")],
        id="unknown-ref",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$out]
        """,
        [(10, 15, "unknown reference '$out'", "known names: x, h1")],
        id="unknown-ref-in-outputs",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: fn:torch.add, args: [$h1], kwargs: {other: $h3}}
            outputs: [$h2]
        """,
        [(10, 61, "unknown reference '$h3'", "known names: x, h1")],
        id="unknown-ref-in-kwargs",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: method:add, args: [$h1, "$h1."]}
            outputs: [$h2]
        """,
        [
            (
                10,
                42,
                "invalid reference '$h1.'",
                "write $name, $name.0 or $name.key; write $$ for a literal '$'",
            )
        ],
        id="invalid-ref",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$h2]}
              h2: {call: module:proj, args: [$h1]}
            outputs: [$h2]
        """,
        [
            (
                9,
                7,
                "dependency cycle: h1 -> h2 -> h1",
                "a node cannot use its own result, directly or through other nodes",
            )
        ],
        id="graph-cycle",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: fn:torch.add, args: [$x, $h1]}
            outputs: [$h1]
        """,
        [
            (
                9,
                7,
                "dependency cycle: h1 -> h1",
                "a node cannot use its own result, directly or through other nodes",
            )
        ],
        id="graph-self-cycle",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: module:proj, args: [$h1]}
            order: [h2, h1]
            outputs: [$h2]
        """,
        [(11, 13, "order runs 'h2' before 'h1', whose result it uses", "move 'h1' before 'h2'")],
        id="order-breaks-dependency",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: module:proj, args: [$h1]}
            order: [h1, h3, h1]
            outputs: [$h2]
        """,
        [
            (11, 12, "order leaves out node(s) h2", "list every node, or remove order to have one computed"),
            (11, 17, "order names unknown node 'h3'", None),
            (11, 21, "order lists node 'h1' twice", None),
        ],
        id="order-not-a-permutation",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: module:proj, args: [$h1]}
            outputs: [$h2, $h1]
            return: single
        """,
        [
            (
                12,
                13,
                "return: single needs exactly one output, got 2",
                "use return: tuple (or dict for named outputs)",
            )
        ],
        id="return-single-two-outputs",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
            return: dict
        """,
        [(11, 13, "return: dict needs outputs as a mapping of name to $ref", "use return: tuple")],
        id="return-dict-list-outputs",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:porj, args: [$x]}
            outputs: [$h1]
        """,
        [(9, 18, "unknown module 'porj'", "did you mean 'proj'?")],
        id="unknown-module-in-call",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: fn:torch.reul, args: [$h1]}
            outputs: [$h2]
        """,
        [(10, 18, "unknown function 'torch.reul'", "did you mean 'torch.relu'?")],
        id="unknown-fn",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: fn:os.system, args: [rm]}
            outputs: [$h2]
        """,
        [(10, 18, "unknown function 'os.system'", "register it with registry.register_function")],
        id="fn-is-not-a-dotted-path",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: method:transpos, args: [$h1, 0, 1]}
            outputs: [$h2]
        """,
        [(10, 18, "unknown tensor method 'transpos'", "did you mean 'transpose'?")],
        id="unknown-method",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: method:relu}
            outputs: [$h2]
        """,
        [(10, 11, "method 'relu' needs the tensor as its first argument in args", None)],
        id="method-without-tensor",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x, $x]}
            outputs: [$h1]
        """,
        [(9, 37, "arguments do not fit module 'proj': too many positional arguments", "it takes (input)")],
        id="module-call-too-many-args",
    ),
    pytest.param(
        """\
            modules:
              mix: {_type_: test.mixer, width: 8}
            nodes:
              h1: {call: module:mix, args: [$x], kwargs: {mask: $x}}
            outputs: [$h1]
        """,
        [
            (
                9,
                51,
                "arguments do not fit module 'mix': got an unexpected keyword argument 'mask'",
                "it takes (x)",
            )
        ],
        id="module-call-unknown-kwarg",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: fn:test.scale, args: [$h1], kwargs: {factr: 2.0}}
            outputs: [$h2]
        """,
        [
            (
                10,
                55,
                "arguments do not fit function 'test.scale': got an unexpected keyword argument 'factr'",
                "did you mean 'factor'?",
            )
        ],
        id="fn-call-unknown-kwarg",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: fn:test.scale, args: [$h1], kwargs: {factor: "2"}}
            outputs: [$h2]
        """,
        [
            (
                10,
                63,
                "argument 'factor' of function 'test.scale': Input should be a valid number, got '2'",
                "strict blocks take numbers and booleans unquoted",
            )
        ],
        id="fn-call-strict-type-mismatch",
    ),
    pytest.param(
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, arg: [$x]}
            outputs: [$h1]
        """,
        [(9, 31, "unknown key 'arg'", "did you mean 'args'?")],
        id="node-unknown-key",
    ),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_check_fault(tmp_path: Path, body: str, expected: list[tuple[int, int, str, str | None]]) -> None:
    path = write(tmp_path, body)
    exc = check_error(path)
    assert located(exc) == expected
    line, col, message, hint = expected[0]
    first = str(exc).splitlines()[0]
    assert first.startswith(f"{path}:{line}:{col}: error: ")
    assert first.endswith(f"{message} ({hint})" if hint else message)


def test_check_unknown_type_renders_like_a_compiler(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
            modules:
              proj: {_type_: nn.Linaer, in_features: 8, out_features: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
    )
    assert str(check_error(path)) == (
        f"{path}:7:22: error: model.graph.modules.proj._type_: unknown block type 'nn.Linaer' "
        "(did you mean 'nn.Linear'?)\n"
        " 7 |       proj: {_type_: nn.Linaer, in_features: 8, out_features: 8}\n"
        "   |                      ^~~~~~~~~"
    )


def test_check_every_fault_reported_sorted_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
            modules:
              proj: {_type_: nn.Linear, in_features: 8, out_features: 8}
              mix: {_type_: test.mixer, widht: ${params.width}, dropout: 0.1}
              norm: {_type_: nn.LayerNrom, normalized_shape: 8}
            nodes:
              h1: {call: module:proj, args: [$x]}
              h2: {call: module:mix, args: [$h0]}
              h3: {call: method:transpos, args: [$h2, 0, 1]}
              h4: {call: module:norm, args: [$h3]}
              h5: {call: fn:torch.add, args: [$h4, $h1]}
            order: [h1, h2, h4, h3, h5]
            outputs: [$h5, $h1]
            return: single
        """,
    )
    exc = check_error(path)
    assert located(exc) == [
        (8, 33, "unknown argument 'widht' for block 'test.mixer'", "did you mean 'width'?"),
        (9, 22, "unknown block type 'nn.LayerNrom'", "did you mean 'nn.LayerNorm'?"),
        (12, 37, "unknown reference '$h0'", "known names: x, h1, h3, h4, h5"),
        (13, 18, "unknown tensor method 'transpos'", "did you mean 'transpose'?"),
        (16, 21, "order runs 'h4' before 'h3', whose result it uses", "move 'h3' before 'h4'"),
        (
            18,
            13,
            "return: single needs exactly one output, got 2",
            "use return: tuple (or dict for named outputs)",
        ),
    ]
    rendered = str(exc)
    assert rendered.endswith("\n6 errors")
    headlines = [line for line in rendered.splitlines() if ": error: " in line]
    assert [h.split(": error: ")[0] for h in headlines] == [
        f"{path}:{line}:{col}" for line, col, _, _ in located(exc)
    ]
