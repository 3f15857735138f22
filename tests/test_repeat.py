"""`_repeat_: N`: N copies with their own weights, chained, unrolled; `${index}` per copy; errors."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import build_checked, build_error, located, write_spec

from model_constructor import BuiltModel, Registry, SpecError, build_model


class Scaled(torch.nn.Module):
    """A block whose forward takes more than the chained value."""

    def __init__(self, *, width: int):
        super().__init__()
        self.lin = torch.nn.Linear(width, width)

    def forward(self, x: torch.Tensor, factor: float, *, shift: float = 0.0) -> torch.Tensor:
        return self.lin(x) * factor + shift


class Wrapped(torch.nn.Module):
    def __init__(self, *, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]


def _registry() -> Registry:
    registry = Registry()
    registry.register_module("test.scaled", Scaled)
    registry.register_module("test.wrapped", Wrapped)
    return registry


def _build(source: Any, **kwargs: Any) -> BuiltModel:
    return build_checked(source, registry=_registry(), **kwargs)


def _error(source: Any) -> SpecError:
    return build_error(source, registry=_registry())


# ---- a repeated block ---------------------------------------------------------------------------

BLOCK = """\
    schema_version: 1
    params: {depth: 3}
    model:
      graph:
        inputs: [x]
        modules:
          layers: {_type_: test.scaled, width: 2, _repeat_: "${params.depth}"}
        nodes:
          h: {call: module:layers, args: [$x, 0.5], kwargs: {shift: 1.0}}
        outputs: [$h]
"""


class HandScaledStack(torch.nn.Module):
    def __init__(self, depth: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(Scaled(width=2) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, 0.5, shift=1.0)
        return x


def test_repeat_block_outputs_equal_hand_written_chain(tmp_path: Path) -> None:
    model = _build(write_spec(tmp_path, BLOCK))
    hand = HandScaledStack(3)
    hand.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(4, 2)

    torch.testing.assert_close(model(x), hand(x), rtol=0, atol=0)


def test_repeat_block_state_dict_keys_and_distinct_weights(tmp_path: Path) -> None:
    model = _build(write_spec(tmp_path, BLOCK))

    assert list(model.state_dict()) == [f"layers.{i}.lin.{p}" for i in range(3) for p in ("weight", "bias")]
    assert isinstance(model.layers, torch.nn.ModuleList)
    weights = [layer.lin.weight for layer in model.layers]
    assert len({w.data_ptr() for w in weights}) == 3
    assert not torch.equal(weights[0], weights[1])


def test_repeat_code_unrolls_copies(tmp_path: Path) -> None:
    model = _build(write_spec(tmp_path, BLOCK.replace('"${params.depth}"', "2")))

    assert model.code.strip() == textwrap.dedent(
        """\
        def forward(self, x):
            layers = self.layers
            h_0 = getattr(layers, "0")(x, 0.5, shift = 1.0);  x = None
            h_1 = getattr(layers, "1")(h_0, 0.5, shift = 1.0);  layers = h_0 = None
            return h_1"""
    )


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_repeat_count_from_params_and_overrides(tmp_path: Path, depth: int) -> None:
    path = write_spec(tmp_path, BLOCK)

    from_params = _build(write_spec(tmp_path, BLOCK.replace("depth: 3", f"depth: {depth}")))
    overridden = _build(path, overrides={"params.depth": depth})

    for model in (from_params, overridden):
        assert len(model.layers) == depth
        assert len(model.state_dict()) == 2 * depth
        assert model.code.count("getattr(layers") == depth
        assert model(torch.randn(1, 2)).shape == (1, 2)


def test_repeat_index_per_copy_in_block_arguments(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              drops: {_type_: nn.Dropout, p: "${index * 0.25}", _repeat_: 3}
              acts:
                _type_: test.wrapped
                _repeat_: 2
                inner: {_type_: nn.LeakyReLU, negative_slope: "${(index + 1) / 10}"}
            nodes:
              d: {call: module:drops, args: [$x]}
              a: {call: module:acts, args: [$d]}
            outputs: [$a]
        """,
    )
    model = _build(path)

    assert [drop.p for drop in model.drops] == [0.0, 0.25, 0.5]
    assert [act.inner.negative_slope for act in model.acts] == [0.1, 0.2]


def test_repeat_without_index_builds_equal_copies(tmp_path: Path) -> None:
    model = _build(write_spec(tmp_path, BLOCK))

    assert [layer.lin.in_features for layer in model.layers] == [2, 2, 2]


# ---- a repeated sub-graph -------------------------------------------------------------------------

SUBGRAPH = """\
    schema_version: 1
    params: {depth: 3, width: 4}
    model:
      graphs:
        residual:
          args: {width: int, hidden: int}
          inputs: [x, gate]
          modules:
            up: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.hidden}"}
            down: {_type_: nn.Linear, in_features: "${args.hidden}", out_features: "${args.width}"}
          nodes:
            u: {call: module:up, args: [$x]}
            d: {call: module:down, args: [$u]}
            g: {call: fn:torch.mul, args: [$d, $gate]}
            r: {call: fn:torch.add, args: [$x, $g]}
          outputs: [$r]
      graph:
        inputs: [x, gate]
        modules:
          layers:
            _type_: "graph:residual"
            width: ${params.width}
            hidden: ${index + 2}
            _repeat_: ${params.depth}
        nodes:
          h: {call: module:layers, args: [$x], kwargs: {gate: $gate}}
        outputs: [$h]
"""


class HandResidual(torch.nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.up = torch.nn.Linear(width, hidden)
        self.down = torch.nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.up(x)) * gate


class HandResidualStack(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(HandResidual(4, index + 2) for index in range(3))

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, gate)
        return x


def test_repeat_subgraph_outputs_equal_hand_written(tmp_path: Path) -> None:
    model = _build(write_spec(tmp_path, SUBGRAPH))
    hand = HandResidualStack()
    hand.load_state_dict(model.state_dict(), strict=True)
    x, gate = torch.randn(2, 4), torch.randn(2, 4)

    torch.testing.assert_close(model(x, gate), hand(x, gate), rtol=0, atol=0)


def test_repeat_subgraph_keys_and_index_per_copy(tmp_path: Path) -> None:
    model = _build(write_spec(tmp_path, SUBGRAPH))

    assert list(model.state_dict()) == [
        f"layers.{i}.{m}.{p}" for i in range(3) for m in ("up", "down") for p in ("weight", "bias")
    ]
    assert [layer.up.out_features for layer in model.layers] == [2, 3, 4]
    assert [layer.down.in_features for layer in model.layers] == [2, 3, 4]
    assert [layer.graph_name for layer in model.layers] == ["residual"] * 3


def test_repeat_subgraph_forward_error_names_copy_and_definition_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path, SUBGRAPH)
    model = _build(path)
    model.layers[1].down = torch.nn.Linear(5, 4)  # copy 1's hidden is 3

    with pytest.raises(RuntimeError, match="cannot be multiplied") as info:
        model(torch.randn(2, 4), torch.randn(2, 4))
    assert info.value.__notes__ == [f"raised in node 'layers.1.d' at {path}:13:9"]


def test_repeat_block_forward_error_names_copy(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BLOCK)
    model = _build(path)
    model.layers[2].lin = torch.nn.Linear(3, 2)

    with pytest.raises(RuntimeError, match="cannot be multiplied") as info:
        model(torch.randn(1, 2))
    assert info.value.__notes__ == [f"raised in node 'h.2' at {path}:9:7"]


def test_repeat_self_ref_reads_one_copy(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              layers: {_type_: nn.Linear, in_features: 2, out_features: 2, bias: false, _repeat_: 2}
            nodes:
              h: {call: module:layers, args: [$x]}
              t: {call: fn:F.linear, args: [$h, $self.layers.1.weight]}
            outputs: [$t]
        """,
    )
    model = _build(path)
    x = torch.randn(3, 2)

    expected = torch.nn.functional.linear(model.layers[1](model.layers[0](x)), model.layers[1].weight)
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
    assert len(model.state_dict()) == 2

    broken = path.read_text().replace("layers.1.weight", "layers.5.weight")
    exc = _error(write_spec(tmp_path, broken))
    assert located(exc, hint=False, notes=True) == [
        (9, 41, "'$self.layers.5.weight': layers (ModuleList) has no attribute '5'", ())
    ]


# ---- errors ------------------------------------------------------------------------------------------

COUNT = """\
    schema_version: 1
    params: {n: 2.0, text: many}
    model:
      graph:
        inputs: [x]
        modules:
          layers: {_type_: nn.Identity, _repeat_: %s}
        nodes:
          h: {call: module:layers, args: [$x]}
        outputs: [$h]
"""


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        ("0", "0"),
        ("-1", "-1"),
        ("10001", "10001"),
        ("1.5", "1.5"),
        ("'3'", "'3'"),
        ("true", "True"),
        ("null", "None"),
        ("[2]", "[2]"),
        ('"${params.n}"', "2.0"),
        ('"${params.text}"', "'many'"),
    ],
)
def test_repeat_count_invalid_is_spec_error(tmp_path: Path, count: str, shown: str) -> None:
    exc = _error(write_spec(tmp_path, COUNT % count))

    assert located(exc, hint=False, notes=True) == [
        (7, 47, f"_repeat_ must be a whole number from 1 to 10000, got {shown}", ())
    ]


def test_repeat_count_upper_bound_is_accepted(tmp_path: Path) -> None:
    model = _build(write_spec(tmp_path, COUNT % "10000"), device="meta")

    assert len(model.layers) == 10_000


def test_repeat_count_from_subgraph_argument_checked_per_instance(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graphs:
            stack:
              args: {n: int}
              inputs: [x]
              modules:
                layers: {_type_: nn.Identity, _repeat_: "${args.n}"}
              nodes:
                h: {call: module:layers, args: [$x]}
              outputs: [$h]
          graph:
            inputs: [x]
            modules:
              good: {_type_: "graph:stack", n: 3}
              bad: {_type_: "graph:stack", n: 0}
            nodes:
              a: {call: module:good, args: [$x]}
              b: {call: module:bad, args: [$a]}
            outputs: [$b]
        """,
    )

    assert located(_error(path), hint=False, notes=True) == [
        (
            8,
            49,
            "_repeat_ must be a whole number from 1 to 10000, got 0",
            (("in the instance model.graph.modules.bad", 16, 12),),
        )
    ]


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        pytest.param(
            "{_type_: nn.Linear, in_feature: 2, out_features: 2, _repeat_: 3}",
            [(7, 35, "unknown argument 'in_feature' for block 'nn.Linear'", ())],
            id="same-for-every-copy",
        ),
        pytest.param(
            '{_type_: nn.Linear, in_features: 2, out_features: 2, bias: "${index}", _repeat_: 3}',
            [
                (
                    7,
                    74,
                    "argument 'bias' of block 'nn.Linear': Input should be a valid boolean, got 0",
                    (("in copy 0, where ${index} is 0", 7, 96),),
                )
            ],
            id="per-index",
        ),
        pytest.param(
            '{_type_: nn.Linear, in_features: "${2 + 4 % (2 - index)}", out_features: 2, _repeat_: 3}',
            [
                (
                    7,
                    49,
                    "division by zero in '${2 + 4 % (2 - index)}'",
                    (("in copy 2, where ${index} is 2", 7, 101),),
                )
            ],
            id="per-index-later-copy",
        ),
    ],
)
def test_repeat_error_inside_repeated_block_at_its_own_line(
    tmp_path: Path, module: str, expected: list[Any]
) -> None:
    text = f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              first: {{_type_: nn.Identity}}
              layers: {module}
            nodes:
              f: {{call: module:first, args: [$x]}}
              h: {{call: module:layers, args: [$f]}}
            outputs: [$h]
    """
    exc = _error(write_spec(tmp_path, text))

    assert [
        (line, col, message, notes) for line, col, message, notes in located(exc, hint=False, notes=True)
    ] == expected


def test_repeat_error_inside_repeated_subgraph_body_at_definition_line(tmp_path: Path) -> None:
    text = SUBGRAPH.replace('out_features: "${args.hidden}"}', 'out_features: "${args.hidden}", bais: true}')
    exc = _error(write_spec(tmp_path, text))

    assert located(exc, hint=False, notes=True) == [
        (
            9,
            95,
            "unknown argument 'bais' for block 'nn.Linear'",
            (
                ("in the instance model.graph.modules.layers", 21, 9),
                ("in copy 0, where ${index} is 0", 24, 19),
            ),
        )
    ]
    assert exc.diagnostics[0].hint == "did you mean 'bias'?"


def test_repeat_constructor_error_names_copy(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path, COUNT.replace("{_type_: nn.Identity", '{_type_: nn.Dropout, p: "${index * 0.6}"') % 3
    )

    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1") as info:
        build_model(path)
    assert info.value.__notes__ == [
        f"while constructing model.graph.modules.layers (nn.Dropout) at {path}:7:15",
        "in copy 2 of model.graph.modules.layers",
    ]


def test_repeat_subgraph_with_tuple_return_is_spec_error(tmp_path: Path) -> None:
    text = SUBGRAPH.replace("outputs: [$r]", "outputs: [$r, $u]\n          return: tuple")
    exc = _error(write_spec(tmp_path, text))

    assert located(exc, hint=False, notes=True) == [(27, 17, "repeated module 'layers' returns a tuple", ())]
    assert exc.diagnostics[0].hint == "a repeated sub-graph must have return: single, to feed the next copy"


@pytest.mark.parametrize(
    ("call", "missing"),
    [("{call: module:layers, kwargs: {x: $x, gate: $gate}}", []), ("{call: module:layers}", ["x, gate"])],
    ids=["kwargs-only", "no-arguments"],
)
def test_repeat_called_without_positional_input_is_spec_error(
    tmp_path: Path, call: str, missing: list[str]
) -> None:
    text = SUBGRAPH.replace("{call: module:layers, args: [$x], kwargs: {gate: $gate}}", call)
    exc = _error(write_spec(tmp_path, text))

    assert located(exc, hint=False, notes=True) == [
        (26, 10, "repeated module 'layers' needs its first input in args", ()),
        *(
            (26, 10, f"missing input(s) {names} for sub-graph module 'layers' (inputs: x, gate)", ())
            for names in missing
        ),
    ]
    assert exc.diagnostics[0].hint == "each copy's output is passed to the next copy as its first argument"
