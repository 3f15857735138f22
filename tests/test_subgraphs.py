"""Sub-graphs (`model.graphs.NAME`, `_type_: graph:NAME`) and `$self` refs, through the public API:
the built model against hand-written code, state_dict nesting, returns indexed by the caller,
argument checks, errors located inside the definition, copies, compile and export."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import build_checked, build_error, located, roundtrip_deepcopy, roundtrip_pickle, write_spec

from model_constructor import BuiltModel, SpecWarning, build_model, load_spec

# ---- helpers --------------------------------------------------------------------------------


class HandMLP(torch.nn.Module):
    def __init__(self, width: int, hidden: int = 8):
        super().__init__()
        self.up = torch.nn.Linear(width, hidden)
        self.act = torch.nn.ReLU()
        self.down = torch.nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


class HandModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = HandMLP(4)
        self.dec = HandMLP(4, hidden=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


MLP = """\
    schema_version: 1
    params: {width: 4}
    model:
      graphs:
        mlp:
          args:
            width: int
            hidden: {type: int, default: 8}
          inputs: [x]
          modules:
            up: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.hidden}"}
            act: {_type_: nn.ReLU}
            down: {_type_: nn.Linear, in_features: "${args.hidden}", out_features: "${args.width}"}
          nodes:
            h: {call: module:up, args: [$x]}
            a: {call: module:act, args: [$h]}
            y: {call: module:down, args: [$a]}
          outputs: [$y]
      graph:
        inputs: [x]
        modules:
          enc: {_type_: "graph:mlp", width: "${params.width}"}
          dec: {_type_: "graph:mlp", width: "${params.width}", hidden: 6}
        nodes:
          e: {call: module:enc, args: [$x]}
          d: {call: module:dec, args: [$e]}
        outputs: [$d]
"""


# ---- the built model --------------------------------------------------------------------------


def test_subgraph_outputs_equal_hand_written(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, MLP))
    hand = HandModel()
    hand.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(3, 4)

    torch.testing.assert_close(model(x), hand(x), rtol=0, atol=0)


def test_subgraph_state_dict_keys_nest(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, MLP))

    assert list(model.state_dict()) == [
        "enc.up.weight",
        "enc.up.bias",
        "enc.down.weight",
        "enc.down.bias",
        "dec.up.weight",
        "dec.up.bias",
        "dec.down.weight",
        "dec.down.bias",
    ]
    assert model.enc.up.out_features == 8
    assert model.dec.up.out_features == 6
    assert repr(model.enc).splitlines()[:2] == ["Subgraph(", "  graph:mlp"]


def test_subgraph_used_twice_has_separate_weights(tmp_path: Path) -> None:
    text = MLP.replace("hidden: 6}", "}")  # two instances with the same arguments
    model = build_checked(write_spec(tmp_path, text))
    params = dict(model.named_parameters())

    assert params["enc.up.weight"].shape == params["dec.up.weight"].shape
    assert params["enc.up.weight"] is not params["dec.up.weight"]
    assert params["enc.up.weight"].data_ptr() != params["dec.up.weight"].data_ptr()
    assert not torch.equal(params["enc.up.weight"], params["dec.up.weight"])
    assert len(params) == 8


def test_subgraph_code_inlines_the_body(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graphs:
            scaled:
              args: {factor: float}
              inputs: [x]
              modules:
                lin: {_type_: nn.Linear, in_features: 2, out_features: 2}
              nodes:
                h: {call: module:lin, args: [$x]}
                s: {call: fn:torch.mul, args: [$h, "${args.factor}"]}
              outputs: [$s]
          graph:
            inputs: [x]
            modules:
              enc: {_type_: "graph:scaled", factor: 0.5}
            nodes:
              e: {call: module:enc, args: [$x]}
              r: {call: fn:torch.relu, args: [$e]}
            outputs: [$r]
        """,
    )
    model = build_checked(path)

    assert model.code.strip() == textwrap.dedent(
        """\
        def forward(self, x):
            enc = self.enc
            enc_h = enc.lin(x);  enc = x = None
            enc_s = torch.mul(enc_h, 0.5);  enc_h = None
            r = torch.relu(enc_s);  enc_s = None
            return r"""
    )


# ---- returns, inputs, nesting -------------------------------------------------------------------

RETURNS = """\
    schema_version: 1
    model:
      graphs:
        pair:
          inputs: [x]
          modules:
            lin: {_type_: nn.Linear, in_features: 3, out_features: 3}
          nodes:
            h: {call: module:lin, args: [$x]}
            r: {call: fn:torch.relu, args: [$h]}
          outputs: [$h, $r]
          return: tuple
        named:
          inputs: [x, y]
          nodes:
            s: {call: fn:torch.sub, args: [$x, $y]}
          outputs: {diff: $s, first: $x}
          return: dict
      graph:
        inputs: [x]
        modules:
          p: {_type_: "graph:pair"}
          n: {_type_: "graph:named"}
        nodes:
          a: {call: module:p, args: [$x]}
          b: {call: module:n, args: [$a.0], kwargs: {y: $a.1}}
          c: {call: fn:torch.add, args: [$b.diff, $b.first]}
        outputs: [%s]
        return: %s
"""


@pytest.mark.filterwarnings("ignore:.*is never used:model_constructor.errors.SpecWarning")
@pytest.mark.parametrize(
    ("outputs", "returns", "expected"),
    [
        ("$c", "single", lambda h, r: (h - r) + h),
        ("$a.1, $b.diff", "tuple", lambda h, r: (r, h - r)),
        ("$a", "single", lambda h, r: (h, r)),
        ("$b", "single", lambda h, r: {"diff": h - r, "first": h}),
    ],
    ids=["indexed-both", "items-as-outputs", "whole-tuple", "whole-dict"],
)
def test_subgraph_tuple_and_dict_returns_indexed_by_caller(
    tmp_path: Path, outputs: str, returns: str, expected: Callable[[torch.Tensor, torch.Tensor], Any]
) -> None:
    model = build_checked(write_spec(tmp_path, RETURNS % (outputs, returns)))
    x = torch.randn(2, 3)
    h = model.p.lin(x)

    torch.testing.assert_close(model(x), expected(h, torch.relu(h)))


@pytest.mark.parametrize(
    ("ref", "message", "hint"),
    [
        ("$a.2", "'$a.2': '$a' is a tuple of 2, with no item 2", "index it with 0 to 1"),
        ("$a.key", "'$a.key': '$a' is a tuple of 2, with no item 'key'", "index it with 0 to 1"),
        ("$b.dif", "'$b.dif': '$b' is a dict with no key 'dif'", "did you mean 'diff'?"),
        ("$b.zzz", "'$b.zzz': '$b' is a dict with no key 'zzz'", "its keys: diff, first"),
    ],
)
def test_subgraph_return_index_that_does_not_fit_is_spec_error(
    tmp_path: Path, ref: str, message: str, hint: str
) -> None:
    exc = build_error(write_spec(tmp_path, RETURNS % (ref, "single")))

    # outputs is on line 28; `[` at column 14, the ref after it.
    assert located(exc, notes=True) == [(28, 15, message, hint, ())]
    assert exc.diagnostics[0].span == len(ref)


def test_subgraph_inputs_by_kwargs(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graphs:
            affine:
              inputs: [x, scale, shift]
              nodes:
                m: {call: fn:torch.mul, args: [$x, $scale]}
                s: {call: fn:torch.add, args: [$m, $shift]}
              outputs: [$s]
          graph:
            inputs: [x, y]
            modules:
              f: {_type_: "graph:affine"}
            nodes:
              positional: {call: module:f, args: [$x, $y], kwargs: {shift: 1.0}}
              named: {call: module:f, kwargs: {shift: $positional, x: $y, scale: 2.0}}
            outputs: [$named]
        """,
    )
    model = build_checked(path)
    x, y = torch.randn(3), torch.randn(3)

    torch.testing.assert_close(model(x, y), y * 2.0 + (x * y + 1.0))


@pytest.mark.parametrize(
    ("call", "message", "col"),
    [
        (
            "{call: module:f, args: [$x, $x, $x, $x]}",
            "too many arguments for sub-graph module 'f' (inputs: x, scale, shift)",
            35,
        ),
        (
            "{call: module:f, args: [$x], kwargs: {scael: $x, shift: $x}}",
            "unknown input 'scael' for sub-graph module 'f' (inputs: x, scale, shift)",
            50,
        ),
        (
            "{call: module:f, args: [$x, $x], kwargs: {x: $x, shift: $x}}",
            "input 'x' given twice for sub-graph module 'f' (inputs: x, scale, shift)",
            54,
        ),
        (
            "{call: module:f, args: [$x]}",
            "missing input(s) scale, shift for sub-graph module 'f' (inputs: x, scale, shift)",
            12,
        ),
    ],
    ids=["too-many", "unknown", "twice", "missing"],
)
def test_subgraph_call_inputs_checked(tmp_path: Path, call: str, message: str, col: int) -> None:
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graphs:
            affine:
              inputs: [x, scale, shift]
              nodes:
                m: {{call: fn:torch.mul, args: [$x, $scale]}}
                s: {{call: fn:torch.add, args: [$m, $shift]}}
              outputs: [$s]
          graph:
            inputs: [x]
            modules:
              f: {{_type_: "graph:affine"}}
            nodes:
              out: {call}
            outputs: [$out]
        """,
    )
    exc = build_error(path)

    assert [(line, c, m) for line, c, m, _, _ in located(exc, notes=True)] == [(15, col, message)]


NESTED = """\
    schema_version: 1
    model:
      graphs:
        inner:
          args: {width: int}
          inputs: [x]
          modules:
            lin: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.width}"}
          nodes:
            h: {call: module:lin, args: [$x]}
          outputs: [$h, $x]
          return: tuple
        outer:
          args: {width: int}
          inputs: [x]
          modules:
            first: {_type_: "graph:inner", width: "${args.width}"}
            second: {_type_: "graph:inner", width: "${args.width}"}
          nodes:
            a: {call: module:first, args: [$x]}
            b: {call: module:second, args: [$a.0]}
            s: {call: fn:torch.add, args: [$b.0, $a.1]}
          outputs: [$s]
      graph:
        inputs: [x]
        modules:
          block: {_type_: "graph:outer", width: 3}
        nodes:
          y: {call: module:block, args: [$x]}
        outputs: [$y]
"""


def test_subgraph_nested_in_another(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, NESTED))
    x = torch.randn(2, 3)
    first, second = model.block.first.lin, model.block.second.lin

    assert list(model.state_dict()) == [
        "block.first.lin.weight",
        "block.first.lin.bias",
        "block.second.lin.weight",
        "block.second.lin.bias",
    ]
    torch.testing.assert_close(model(x), second(first(x)) + x)


LOOP = """\
    schema_version: 1
    model:
      graphs:
        loop:
          inputs: [x]
          modules:
            again: {_type_: "graph:%s"}
          nodes:
            h: {call: module:again, args: [$x]}
          outputs: [$h]
        other:
          inputs: [x]
          modules:
            back: {_type_: "graph:loop"}
          nodes:
            h: {call: module:back, args: [$x]}
          outputs: [$h]
      graph:
        inputs: [x]
        modules:
          top: {_type_: "graph:loop"}
        nodes:
          y: {call: module:top, args: [$x]}
        outputs: [$y]
"""


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        pytest.param(
            "loop",
            [
                (
                    7,
                    25,
                    "sub-graph 'loop' contains itself: loop -> loop",
                    None,
                    (("in the instance model.graph.modules.top", 21, 12),),
                )
            ],
            id="directly",
        ),
        pytest.param(
            "other",
            [
                (
                    14,
                    24,
                    "sub-graph 'loop' contains itself: loop -> other -> loop",
                    None,
                    (
                        ("in the instance model.graphs.loop.modules.again", 7, 16),
                        ("in the instance model.graph.modules.top", 21, 12),
                    ),
                )
            ],
            id="via-another",
        ),
    ],
)
def test_subgraph_that_contains_itself_is_spec_error(tmp_path: Path, inner: str, expected: list[Any]) -> None:
    assert located(build_error(write_spec(tmp_path, LOOP % inner)), notes=True) == expected


# ---- sub-graph types and arguments --------------------------------------------------------------

ARGS = """\
    schema_version: 1
    model:
      graphs:
        mlp:
          args:
            width: int
            dropout: {type: float, default: 0.0}
          inputs: [x]
          modules:
            lin: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.width}"}
            drop: {_type_: nn.Dropout, p: "${args.dropout}"}
          nodes:
            h: {call: module:lin, args: [$x]}
            d: {call: module:drop, args: [$h]}
          outputs: [$d]
      graph:
        inputs: [x]
        modules:
          m: %s
        nodes:
          y: {call: module:m, args: [$x]}
        outputs: [$y]
"""


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        pytest.param(
            '{_type_: "graph:mpl", width: 4}',
            [(19, 19, "unknown sub-graph 'mpl'", "did you mean 'mlp'?")],
            id="unknown-name",
        ),
        pytest.param(
            '{_type_: "graph:zzz", width: 4}',
            [(19, 19, "unknown sub-graph 'zzz'", "define it under model.graphs (defined: mlp)")],
            id="unknown-name-no-match",
        ),
        pytest.param(
            '{_type_: "graph:mlp", widht: 4}',
            # Reported once, as the typo it is, not again as a missing 'width'.
            [(19, 32, "unknown argument 'widht' for sub-graph 'mlp'", "did you mean 'width'?")],
            id="misspelled",
        ),
        pytest.param(
            '{_type_: "graph:mlp", width: 4, size: 2}',
            [(19, 42, "unknown argument 'size' for sub-graph 'mlp'", "valid arguments: width, dropout")],
            id="unknown-no-match",
        ),
        pytest.param(
            '{_type_: "graph:mlp", dropout: 0.1}',
            [
                (
                    19,
                    10,
                    "missing argument 'width' for sub-graph 'mlp'",
                    "declared at model.graphs.mlp.args.width as int",
                )
            ],
            id="missing",
        ),
        pytest.param(
            '{_type_: "graph:mlp", width: "4"}',
            [(19, 39, "argument 'width' of sub-graph 'mlp': Input should be a valid integer, got '4'", None)],
            id="quoted-int",
        ),
        pytest.param(
            '{_type_: "graph:mlp", width: 4, dropout: "high"}',
            [
                (
                    19,
                    51,
                    "argument 'dropout' of sub-graph 'mlp': Input should be a valid number, got 'high'",
                    None,
                )
            ],
            id="wrong-type",
        ),
        pytest.param(
            '{_type_: "graph:mlp", width: true}',
            [
                (
                    19,
                    39,
                    "argument 'width' of sub-graph 'mlp': Input should be a valid integer, got True",
                    None,
                )
            ],
            id="bool-for-int",
        ),
        pytest.param(
            '{_type_: "graph:mlp", width: 4, dropout: {_type_: nn.Dropout}}',
            [
                (
                    19,
                    51,
                    "argument 'dropout' of sub-graph 'mlp' is a block spec",
                    "sub-graph arguments are plain values; declare the block as a module of the sub-graph",
                )
            ],
            id="block-spec",
        ),
    ],
)
def test_subgraph_type_and_arguments_checked(tmp_path: Path, instance: str, expected: list[Any]) -> None:
    exc = build_error(write_spec(tmp_path, ARGS % instance))

    assert [(line, col, m, h) for line, col, m, h, _ in located(exc, notes=True)] == expected


def test_subgraph_unknown_name_without_graphs_is_spec_error(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              m: {_type_: "graph:mlp"}
            nodes:
              y: {call: module:m, args: [$x]}
            outputs: [$y]
        """,
    )

    assert [(line, col, m, h) for line, col, m, h, _ in located(build_error(path), notes=True)] == [
        (6, 19, "unknown sub-graph 'mlp'", "define it under model.graphs (defined: none)")
    ]


def test_subgraph_default_is_type_checked_at_its_definition(tmp_path: Path) -> None:
    text = ARGS.replace("default: 0.0}", 'default: "none"}') % '{_type_: "graph:mlp", width: 4}'
    exc = build_error(write_spec(tmp_path, text))

    assert [(line, col, m) for line, col, m, _, _ in located(exc, notes=True)] == [
        (
            7,
            41,
            "default of argument 'dropout' of sub-graph 'mlp': Input should be a valid number, got 'none'",
        )
    ]


def test_subgraph_default_is_used_and_can_be_overridden(tmp_path: Path) -> None:
    default = build_checked(write_spec(tmp_path, ARGS % '{_type_: "graph:mlp", width: 4}'))
    given = build_checked(write_spec(tmp_path, ARGS % '{_type_: "graph:mlp", width: 4, dropout: 0.25}'))

    assert default.m.drop.p == 0.0
    assert given.m.drop.p == 0.25
    assert given.m.lin.in_features == 4


def test_subgraph_null_default_stays_optional_through_its_spec(tmp_path: Path) -> None:
    # `default: null` equals the field's own default, which a dump leaving out defaults
    # dropped: the argument became required when the spec was read back.
    text = ARGS.replace("dropout: {type: float, default: 0.0}", "dropout: {type: any, default: null}")
    text = text.replace('p: "${args.dropout}"', "p: 0.1")
    model = build_checked(write_spec(tmp_path, text % '{_type_: "graph:mlp", width: 4}'))

    assert not model.spec.model.graphs["mlp"].args["dropout"].required
    assert model.spec.model.graphs["mlp"].args["width"].required
    assert build_model(model.spec).state_dict().keys() == model.state_dict().keys()
    assert roundtrip_pickle(model).fingerprint == model.fingerprint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """\
            schema_version: 1
            params: {w: "${args.width}"}
            model:
              graph:
                inputs: [x]
                modules:
                  lin: {_type_: nn.Linear, in_features: "${args.width}", out_features: 2}
                nodes:
                  y: {call: module:lin, args: [$x]}
                outputs: [$y]
            """,
            [
                (
                    2,
                    14,
                    "${args.NAME} is only available in the body of a sub-graph defined under model.graphs",
                ),
                (
                    7,
                    46,
                    "${args.NAME} is only available in the body of a sub-graph defined under model.graphs",
                ),
            ],
            id="args-outside-graphs",
        ),
        pytest.param(
            """\
            schema_version: 1
            model:
              graphs:
                g:
                  args: {a: {type: int, default: 2}, b: {type: int, default: "${args.a}"}}
                  inputs: [x]
                  nodes:
                    y: {call: fn:torch.mul, args: [$x, "${args.b}"]}
                  outputs: [$y]
              graph:
                inputs: [x]
                modules:
                  m: {_type_: "graph:g"}
                nodes:
                  y: {call: module:m, args: [$x]}
                outputs: [$y]
            """,
            [(5, 67, "${args.NAME} is only available in the body of a sub-graph defined under model.graphs")],
            id="args-in-a-default",
        ),
        pytest.param(
            """\
            schema_version: 1
            model:
              graph:
                inputs: [x]
                modules:
                  drop: {_type_: nn.Dropout, p: "${index}"}
                nodes:
                  y: {call: module:drop, args: [$x]}
                  z: {call: fn:torch.mul, args: [$y, "${index}"]}
                outputs: [$z]
            """,
            [
                (6, 38, "${index} is only available in the arguments of a module with _repeat_"),
                (9, 43, "${index} is only available in the arguments of a module with _repeat_"),
            ],
            id="index-outside-repeat",
        ),
        pytest.param(
            """\
            schema_version: 1
            model:
              graphs:
                g:
                  inputs: [x]
                  modules:
                    drop: {_type_: nn.Dropout, p: "${index}"}
                  nodes:
                    y: {call: module:drop, args: [$x]}
                  outputs: [$y]
              graph:
                inputs: [x]
                modules:
                  m: {_type_: "graph:g", _repeat_: 2}
                nodes:
                  y: {call: module:m, args: [$x]}
                outputs: [$y]
            """,
            # The instance is repeated, the module in the body is not: pass the index as an arg.
            [(7, 40, "${index} is only available in the arguments of a module with _repeat_")],
            id="index-in-body-of-repeated-instance",
        ),
    ],
)
def test_subgraph_deferred_interpolation_outside_its_scope_is_located_error(
    tmp_path: Path, text: str, expected: list[tuple[int, int, str]]
) -> None:
    exc = build_error(write_spec(tmp_path, text))

    assert [(line, col, m) for line, col, m, _, _ in located(exc, notes=True)] == expected


# ---- errors inside a definition -------------------------------------------------------------------

FAULTY = """\
    schema_version: 1
    model:
      graphs:
        block:
          args: {width: int}
          inputs: [x]
          modules:
            up: {_type_: nn.Linear, in_features: "${args.width}", out_feature: 3}
          nodes:
            h: {call: module:up, args: [$y]}
          outputs: [$h]
      graph:
        inputs: [x]
        modules:
          a: {_type_: "graph:block", width: 4}
          b: {_type_: "graph:block", width: 4}
        nodes:
          e: {call: module:a, args: [$x]}
          f: {call: module:b, args: [$e]}
        outputs: [$f]
"""


def test_subgraph_body_errors_located_in_definition_once_with_instance_note(tmp_path: Path) -> None:
    path = write_spec(tmp_path, FAULTY)
    exc = build_error(path)

    note = (("in the instance model.graph.modules.a", 15, 10),)
    assert located(exc, notes=True) == [
        (8, 63, "unknown argument 'out_feature' for block 'nn.Linear'", "did you mean 'out_features'?", note),
        (10, 37, "unknown reference '$y'", "known names: x", note),
    ]
    assert [d.path for d in exc.diagnostics] == [
        ("model", "graphs", "block", "modules", "up", "out_feature"),
        ("model", "graphs", "block", "nodes", "h", "args", 0),
    ]
    assert str(exc).splitlines()[:4] == [
        f"{path}:8:63: error: model.graphs.block.modules.up.out_feature: unknown argument 'out_feature' "
        "for block 'nn.Linear' (did you mean 'out_features'?)",
        ' 8 |         up: {_type_: nn.Linear, in_features: "${args.width}", out_feature: 3}',
        "   |                                                               ^~~~~~~~~~~",
        f"  note: in the instance model.graph.modules.a at {path}:15:10",
    ]


def test_subgraph_body_error_of_one_instance_names_that_instance(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graphs:
            block:
              args: {inplace: {type: any, default: false}}
              inputs: [x]
              modules:
                act: {_type_: nn.ReLU, inplace: "${args.inplace}"}
              nodes:
                h: {call: module:act, args: [$x]}
              outputs: [$h]
          graph:
            inputs: [x]
            modules:
              a: {_type_: "graph:block"}
              b: {_type_: "graph:block", inplace: maybe}
            nodes:
              e: {call: module:a, args: [$x]}
              f: {call: module:b, args: [$e]}
            outputs: [$f]
        """,
    )

    assert located(build_error(path), notes=True) == [
        (
            8,
            41,
            "argument 'inplace' of block 'nn.ReLU': Input should be a valid boolean, got 'maybe'",
            None,
            (("in the instance model.graph.modules.b", 16, 10),),
        )
    ]


def test_subgraph_unused_module_warned_once(tmp_path: Path) -> None:
    text = MLP.replace(
        "act: {_type_: nn.ReLU}", "act: {_type_: nn.ReLU}\n            spare: {_type_: nn.Identity}"
    )
    path = write_spec(tmp_path, text)

    with pytest.warns(SpecWarning) as record:
        model = build_checked(path)

    assert [str(w.message).splitlines()[0] for w in record] == [
        f"{path}:13:9: warning: model.graphs.mlp.modules.spare: module 'spare' is never called "
        "(it is still built and kept in state_dict)"
    ]
    assert isinstance(model.enc.spare, torch.nn.Identity)
    assert isinstance(model.dec.spare, torch.nn.Identity)


@pytest.mark.parametrize("name", ["graph_name", "training"])
def test_subgraph_module_named_like_a_container_attribute_is_spec_error(tmp_path: Path, name: str) -> None:
    text = MLP.replace("act: {_type_: nn.ReLU}", f"{name}: {{_type_: nn.ReLU}}").replace(
        "module:act", f"module:{name}"
    )
    exc = build_error(write_spec(tmp_path, text))

    assert [(line, col, m) for line, col, m, _, _ in located(exc, notes=True)] == [
        (12, 9, f"module name {name!r} is reserved by the built model")
    ]


def test_subgraph_forward_error_names_inlined_node_and_definition_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path, MLP)
    model = build_checked(path)

    with pytest.raises(RuntimeError, match="cannot be multiplied") as info:
        model(torch.randn(2, 5))
    assert info.value.__notes__ == [f"raised in node 'enc.h' at {path}:15:9"]

    model.dec.up = torch.nn.Linear(3, 6)  # enc now runs, and dec's first node fails
    with pytest.raises(RuntimeError, match="cannot be multiplied") as info:
        model(torch.randn(2, 4))
    assert info.value.__notes__ == [f"raised in node 'dec.h' at {path}:15:9"]


def test_subgraph_container_called_directly_is_type_error(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, MLP))

    with pytest.raises(TypeError) as info:
        model.enc(torch.randn(2, 4))
    assert str(info.value) == (
        "sub-graph graph:mlp runs inlined in the forward of the model that holds it; call that model"
    )


# ---- $self -----------------------------------------------------------------------------------------

TIED = """\
    schema_version: 1
    model:
      graph:
        inputs: [tokens]
        modules:
          emb: {_type_: nn.Embedding, num_embeddings: 10, embedding_dim: 4}
          norm: {_type_: nn.LayerNorm, normalized_shape: 4}
        nodes:
          h: {call: module:emb, args: [$tokens]}
          n: {call: module:norm, args: [$h]}
          logits: {call: fn:F.linear, args: [$n, %s]}
        outputs: [$logits]
"""


def test_self_ref_ties_weights(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, TIED % "$self.emb.weight"))
    tokens = torch.tensor([[1, 2, 3]])

    assert list(model.state_dict()) == ["emb.weight", "norm.weight", "norm.bias"]
    out = model(tokens)
    expected = torch.nn.functional.linear(model.norm(model.emb(tokens)), model.emb.weight)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_self_ref_gradient_flows_from_both_uses(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, TIED % "$self.emb.weight"))
    tokens = torch.tensor([[1, 2]])
    F = torch.nn.functional
    weight = model.emb.weight.detach().clone().requires_grad_()
    norm = F.layer_norm(F.embedding(tokens, weight), (4,), model.norm.weight, model.norm.bias)
    F.linear(norm, weight).sum().backward()

    model(tokens).sum().backward()

    grad = model.emb.weight.grad
    assert grad is not None and weight.grad is not None
    torch.testing.assert_close(grad, weight.grad)
    # Row 0 is read by the output projection only; rows 1 and 2 also by the lookup.
    assert not torch.allclose(grad[1], grad[0])
    assert grad[0].abs().sum() > 0


def test_self_ref_only_use_is_not_warned_as_uncalled(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              head: {_type_: nn.Linear, in_features: 3, out_features: 2}
            nodes:
              y: {call: fn:F.linear, args: [$x, $self.head.weight, $self.head.bias]}
            outputs: [$y]
        """,
    )
    model = build_checked(path)  # pyproject turns a SpecWarning into an error
    x = torch.randn(4, 3)

    torch.testing.assert_close(model(x), model.head(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("ref", "message", "hint"),
    [
        ("$self.emd.weight", "'$self.emd.weight' names no module of this graph", "did you mean 'emb'?"),
        (
            "$self",
            "'$self' names no module of this graph",
            "write $self.MODULE or $self.MODULE.ATTRIBUTE, e.g. $self.embed.weight",
        ),
    ],
)
def test_self_ref_unknown_module_is_spec_error(tmp_path: Path, ref: str, message: str, hint: str) -> None:
    exc = build_error(write_spec(tmp_path, TIED % ref))

    assert located(exc, notes=True) == [(11, 46, message, hint, ())]


def test_self_ref_unknown_attribute_is_spec_error_at_build(tmp_path: Path) -> None:
    exc = build_error(write_spec(tmp_path, TIED % "$self.emb.wieght"))

    assert located(exc, notes=True) == [
        (
            11,
            46,
            "'$self.emb.wieght': emb (Embedding) has no attribute 'wieght'",
            "did you mean 'weight'?",
            (),
        )
    ]
    assert exc.diagnostics[0].span == len("$self.emb.wieght")


def test_self_ref_inside_subgraph_reads_the_instance_module(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graphs:
            lm:
              inputs: [tokens]
              modules:
                emb: {_type_: nn.Embedding, num_embeddings: 5, embedding_dim: 3}
              nodes:
                h: {call: module:emb, args: [$tokens]}
                logits: {call: fn:F.linear, args: [$h, $self.emb.weight]}
              outputs: [$logits]
          graph:
            inputs: [tokens]
            modules:
              a: {_type_: "graph:lm"}
              b: {_type_: "graph:lm"}
            nodes:
              x: {call: module:a, args: [$tokens]}
              y: {call: module:b, args: [$tokens]}
              s: {call: fn:torch.add, args: [$x, $y]}
            outputs: [$s]
        """,
    )
    model = build_checked(path)
    tokens = torch.tensor([0, 4])
    F = torch.nn.functional

    assert list(model.state_dict()) == ["a.emb.weight", "b.emb.weight"]
    expected = F.linear(model.a.emb(tokens), model.a.emb.weight) + F.linear(
        model.b.emb(tokens), model.b.emb.weight
    )
    torch.testing.assert_close(model(tokens), expected, rtol=0, atol=0)


# ---- copies, compile, export ---------------------------------------------------------------------

# Sub-graphs nested and repeated, a dict return, $self and ${index}: built-ins only, so that
# pickling (which re-checks the spec) needs no registry.
EVERYTHING = """\
    schema_version: 1
    params: {depth: 2, width: 4}
    model:
      graphs:
        attn_block:
          args: {width: int, p: {type: float, default: 0.0}}
          inputs: [x]
          modules:
            norm: {_type_: nn.LayerNorm, normalized_shape: "${args.width}"}
            attn: {_type_: nn.MultiheadAttention, embed_dim: "${args.width}", num_heads: 2, batch_first: true}
            drop: {_type_: nn.Dropout, p: "${args.p}"}
          nodes:
            n: {call: module:norm, args: [$x]}
            a: {call: module:attn, args: [$n, $n, $n], kwargs: {need_weights: false}}
            d: {call: module:drop, args: [$a.0]}
            r: {call: fn:torch.add, args: [$x, $d]}
          outputs: [$r]
        head:
          args: {width: int}
          inputs: [x]
          modules:
            proj: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.width}"}
          nodes:
            h: {call: module:proj, args: [$x]}
            tied: {call: fn:F.linear, args: [$h, $self.proj.weight]}
          outputs: {logits: $tied, hidden: $h}
          return: dict
      graph:
        inputs: [x]
        modules:
          layers:
            _type_: "graph:attn_block"
            width: "${params.width}"
            p: "${index * 0.25}"
            _repeat_: "${params.depth}"
          out: {_type_: "graph:head", width: "${params.width}"}
        nodes:
          l: {call: module:layers, args: [$x]}
          o: {call: module:out, args: [$l]}
        outputs: [$o.logits, $o.hidden]
        return: tuple
"""


@pytest.fixture
def everything(tmp_path: Path) -> BuiltModel:
    torch.manual_seed(0)
    return build_checked(write_spec(tmp_path, EVERYTHING)).eval()


def test_subgraph_everything_state_dict_keys(everything: BuiltModel) -> None:
    layer = [
        "norm.weight",
        "norm.bias",
        "attn.in_proj_weight",
        "attn.in_proj_bias",
        "attn.out_proj.weight",
        "attn.out_proj.bias",
    ]
    assert list(everything.state_dict()) == [
        *(f"layers.0.{key}" for key in layer),
        *(f"layers.1.{key}" for key in layer),
        "out.proj.weight",
        "out.proj.bias",
    ]
    assert [layer.drop.p for layer in everything.layers] == [0.0, 0.25]


@pytest.mark.parametrize("roundtrip", [roundtrip_deepcopy, roundtrip_pickle], ids=["deepcopy", "pickle"])
def test_subgraph_copy_keeps_code_weights_and_outputs(
    everything: BuiltModel, roundtrip: Callable[[BuiltModel], BuiltModel]
) -> None:
    x = torch.randn(2, 3, 4)

    copied = roundtrip(everything)

    copied.graph.lint()
    assert isinstance(copied, BuiltModel)
    assert copied.code == everything.code
    assert copied.spec == everything.spec
    assert list(copied.state_dict()) == list(everything.state_dict())
    torch.testing.assert_close(copied(x), everything(x), rtol=0, atol=0)
    with torch.no_grad():
        copied.layers[1].attn.out_proj.weight.zero_()
    assert everything.layers[1].attn.out_proj.weight.abs().sum() > 0
    assert copied.out.graph_name == "head"


@pytest.mark.slow
def test_subgraph_compile_fullgraph_matches_eager(everything: BuiltModel) -> None:
    torch._dynamo.reset()
    x = torch.randn(2, 3, 4)
    compiled = torch.compile(everything, fullgraph=True)

    with torch.no_grad():
        torch.testing.assert_close(compiled(x), everything(x))
        torch.testing.assert_close(compiled(x + 1), everything(x + 1))


@pytest.mark.slow
def test_subgraph_export_matches_eager(everything: BuiltModel) -> None:
    x = torch.randn(2, 3, 4)

    exported = torch.export.export(everything, (x,))

    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), everything(x))
    assert set(exported.state_dict) == set(everything.state_dict())


def test_subgraph_load_spec_checks_without_building(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, MLP))

    assert list(spec.model.graphs) == ["mlp"]
    assert spec.model.graph.modules["dec"].kwargs == {"width": 4, "hidden": 6}


# ---- model.graph as an instance of a sub-graph -------------------------------------------------

TOP_INSTANCE = """\
schema_version: 1
params: {variant: plain}
model:
  graphs:
    plain:
      args: {width: int}
      inputs: [x]
      modules:
        proj: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.width}"}
      nodes:
        y: {call: module:proj, args: [$x]}
      outputs: [$y]
    gated:
      args: {width: int}
      inputs: [x]
      modules:
        proj: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.width}"}
      nodes:
        p: {call: module:proj, args: [$x]}
        y: {call: fn:torch.mul, args: [$p, $x]}
      outputs: [$y]
  graph: {_type_: "graph:${params.variant}", width: 4}
"""


@pytest.mark.parametrize("variant", ["plain", "gated"])
def test_subgraph_as_model_graph_modules_are_the_models(tmp_path: Path, variant: str) -> None:
    model = build_checked(
        write_spec(tmp_path, TOP_INSTANCE, dedent=False), overrides={"params.variant": variant}
    )

    assert list(model.state_dict()) == ["proj.weight", "proj.bias"]
    x = torch.randn(2, 4)
    expected = model.proj(x) * (x if variant == "gated" else 1)
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (
            "{_type_: nn.Linear, in_features: 4, out_features: 4}",
            [(22, 19, "model.graph must be a graph, or one instance of a sub-graph (_type_: graph:NAME)")],
        ),
        ("{_type_: 'graph:plian', width: 4}", [(22, 19, "unknown sub-graph 'plian'")]),
        ("{_type_: 'graph:plain', widht: 4}", [(22, 34, "unknown argument 'widht' for sub-graph 'plain'")]),
    ],
    ids=["registry-block", "unknown-sub-graph", "misspelled-arg"],
)
def test_subgraph_as_model_graph_errors_are_located(
    tmp_path: Path, graph: str, expected: list[tuple[int, int, str]]
) -> None:
    text = TOP_INSTANCE.replace('{_type_: "graph:${params.variant}", width: 4}', graph)
    exc = build_error(write_spec(tmp_path, text, dedent=False))

    assert located(exc, hint=False) == expected


def test_subgraph_as_model_graph_module_name_reserved_by_the_model(tmp_path: Path) -> None:
    text = TOP_INSTANCE.replace("        proj: {_type_", "        code: {_type_", 1).replace(
        "module:proj, args: [$x]}\n      outputs: [$y]\n    gated",
        "module:code, args: [$x]}\n      outputs: [$y]\n    gated",
    )
    exc = build_error(write_spec(tmp_path, text, dedent=False))

    assert located(exc) == [(9, 9, "module name 'code' is reserved by the built model", "rename it")]
