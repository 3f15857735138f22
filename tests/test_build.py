"""The built model behaves like the hand-written one: outputs, state_dict, copies, errors, calls."""

from __future__ import annotations

import copy
import gc
import pickle
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from helpers import Activated, build_checked, roundtrip_deepcopy, roundtrip_pickle, write_spec

from model_constructor import BuiltModel, ModelSpec, Registry, SpecError, SpecWarning, build_model, load_spec

# ---- helpers --------------------------------------------------------------------------------


class TokenMixer(torch.nn.Module):
    """The seed's block, as a user writes it."""

    def __init__(self, *, width: int, dropout: float = 0.0):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(width, width),
            torch.nn.GELU(),
            torch.nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class WithNorm(torch.nn.Module):
    def __init__(self, *, norm: torch.nn.LayerNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class Exploding(torch.nn.Module):
    def __init__(self, *, width: int):
        super().__init__()
        raise KeyError(f"no width {width}")


def echo_label(x: torch.Tensor, label: str) -> str:
    return label


def _registry() -> Registry:
    registry = Registry()
    registry.register_module("test.token_mixer", TokenMixer)
    registry.register_module("test.with_activation", Activated)
    registry.register_module("test.with_norm", WithNorm)
    registry.register_module("test.exploding", Exploding)
    registry.register_function("test.echo_label", echo_label)
    return registry


# The seed, with `mix` declared before `proj` so that declaration and call order differ.
SEED_LIKE = """\
    schema_version: 1
    params:
      width: 8
      dropout: 0.1
    model:
      graph:
        inputs: [x]
        modules:
          mix: {_type_: test.token_mixer, width: ${params.width}, dropout: ${params.dropout}}
          proj: {_type_: nn.Linear, in_features: ${params.width}, out_features: ${params.width}}
        nodes:
          h1: {call: module:proj, args: [$x]}
          h2: {call: module:mix, args: [$h1]}
        order: [h1, h2]
        outputs: [$h2]
        return: single
"""

# Built-in blocks only, so that pickling (which re-checks the spec) needs no registry.
BUILTIN_ONLY = {
    "schema_version": 1,
    "params": {"width": 4},
    "model": {
        "graph": {
            "inputs": ["x"],
            "modules": {
                "proj": {"_type_": "nn.Linear", "in_features": "${params.width}", "out_features": 4},
                "act": {"_type_": "nn.GELU", "approximate": "tanh"},
            },
            "nodes": {
                "h1": {"call": "module:proj", "args": ["$x"]},
                "h2": {"call": "module:act", "args": ["$h1"]},
                "h3": {"call": "fn:torch.add", "args": ["$h1", "$h2"], "kwargs": {"alpha": 0.5}},
            },
            "outputs": ["$h3"],
        }
    },
}


# ---- outputs and state_dict -----------------------------------------------------------------


def test_build_outputs_equal_hand_written_composition(tmp_path: Path) -> None:
    path = write_spec(tmp_path, SEED_LIKE)
    torch.manual_seed(0)
    model = build_checked(path, registry=_registry()).eval()
    torch.manual_seed(0)  # same seed, same construction order (spec order): same weights
    mix = TokenMixer(width=8, dropout=0.1).eval()
    proj = torch.nn.Linear(8, 8)
    x = torch.randn(3, 8)

    torch.testing.assert_close(model(x), mix(proj(x)), rtol=0, atol=0)


def test_build_outputs_equal_hand_written_composition_with_copied_weights(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, SEED_LIKE), registry=_registry())
    proj, mix = torch.nn.Linear(8, 8), TokenMixer(width=8, dropout=0.1)
    proj.load_state_dict(model.proj.state_dict())
    mix.load_state_dict(model.mix.state_dict())
    x = torch.randn(3, 8)
    with torch.no_grad():
        # Dropout draws from the global generator: same seed, same mask, in training mode too.
        torch.manual_seed(1)
        built = model(x)
        torch.manual_seed(1)
        expected = mix(proj(x))

    torch.testing.assert_close(built, expected, rtol=0, atol=0)


def test_build_state_dict_keys_are_module_names_in_spec_order(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, SEED_LIKE), registry=_registry())

    assert list(model.state_dict()) == [
        "mix.net.0.weight",
        "mix.net.0.bias",
        "proj.weight",
        "proj.bias",
    ]
    assert [name for name, _ in model.named_children()] == ["mix", "proj"]


def test_build_state_dict_loads_into_a_second_build_strictly(tmp_path: Path) -> None:
    path = write_spec(tmp_path, SEED_LIKE)
    first, second = build_checked(path, registry=_registry()), build_checked(path, registry=_registry())
    second.load_state_dict(first.state_dict(), strict=True)
    x = torch.randn(2, 8)

    torch.testing.assert_close(first.eval()(x), second.eval()(x), rtol=0, atol=0)


def test_build_uncalled_module_kept_in_state_dict_and_warned(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              spare: {_type_: nn.Linear, in_features: 2, out_features: 3}
              lin: {_type_: nn.Linear, in_features: 2, out_features: 2}
            nodes:
              h: {call: module:lin, args: [$x]}
            outputs: [$h]
        """,
    )
    with pytest.warns(SpecWarning) as record:
        model = build_checked(path)

    assert [str(w.message) for w in record] == [
        f"{path}:6:7: warning: model.graph.modules.spare: module 'spare' is never called "
        "(it is still built and kept in state_dict)\n"
        " 6 |       spare: {_type_: nn.Linear, in_features: 2, out_features: 3}\n"
        "   |       ^~~~~"
    ]
    assert list(model.state_dict()) == ["spare.weight", "spare.bias", "lin.weight", "lin.bias"]
    assert model.spare.weight.shape == (3, 2)


def test_build_warnings_point_at_the_callers_line(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              spare: {_type_: nn.ReLU}
            nodes:
              h: {call: method:relu, args: [$x]}
            outputs: [$h]
        """,
    )
    with pytest.warns(SpecWarning) as record:
        line = sys._getframe().f_lineno + 1
        build_model(path)
        load_spec(path)

    assert [(w.filename, w.lineno) for w in record] == [(__file__, line), (__file__, line + 1)]


def test_build_code_shows_yaml_node_names(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, SEED_LIKE), registry=_registry())

    assert model.code.strip() == textwrap.dedent(
        """\
        def forward(self, x):
            h1 = self.proj(x);  x = None
            h2 = self.mix(h1);  h1 = None
            return h2"""
    )


# ---- copies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("roundtrip", [roundtrip_deepcopy, roundtrip_pickle], ids=["deepcopy", "pickle"])
def test_build_copy_keeps_spec_weights_outputs_and_attributes(
    roundtrip: Callable[[BuiltModel], BuiltModel],
) -> None:
    model = build_checked(BUILTIN_ONLY)
    model.run_name = "baseline"
    model.tags = ["a", "b"]
    x = torch.randn(2, 4)

    copied = roundtrip(model)

    copied.graph.lint()
    assert isinstance(copied, BuiltModel)
    assert copied.spec == model.spec
    assert copied.run_name == "baseline"
    assert copied.tags == ["a", "b"]
    assert copied.code == model.code
    assert list(copied.state_dict()) == list(model.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(copied.state_dict()[key], value, rtol=0, atol=0)
    torch.testing.assert_close(copied(x), model(x), rtol=0, atol=0)
    # A copy owns its parameters.
    with torch.no_grad():
        copied.proj.weight.zero_()
    assert model.proj.weight.abs().sum() > 0


def test_build_pickle_reruns_spec_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    module_name = "mc_test_pickle_blocks"
    request.addfinalizer(lambda: sys.modules.pop(module_name, None))
    (tmp_path / f"{module_name}.py").write_text(
        textwrap.dedent(
            """\
            import torch

            class Scale(torch.nn.Module):
                def __init__(self, *, width: int):
                    super().__init__()
                    self.weight = torch.nn.Parameter(torch.randn(width))

                def forward(self, x):
                    return x * self.weight

            def register(registry):
                registry.register_module("mc_test.scale", Scale)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        settings:
          allowed_import_prefixes: ["{module_name}"]
        imports: [{module_name}]
        model:
          graph:
            inputs: [x]
            modules:
              scale: {{_type_: mc_test.scale, width: 3}}
            nodes:
              y: {{call: module:scale, args: [$x]}}
            outputs: [$y]
        """,
    )
    model = build_checked(path)
    model.note = "kept"
    x = torch.randn(2, 3)

    copied = pickle.loads(pickle.dumps(model))

    assert copied.spec == model.spec
    assert copied.note == "kept"
    torch.testing.assert_close(copied.scale.weight, model.scale.weight, rtol=0, atol=0)
    torch.testing.assert_close(copied(x), model(x), rtol=0, atol=0)


# ---- device and dtype -----------------------------------------------------------------------

FACTORY_SPEC = """\
    schema_version: 1
    model:
      graph:
        inputs: [x]
        modules:
          proj: {_type_: nn.Linear, in_features: 4, out_features: 4}
          norm: {_type_: nn.BatchNorm1d, num_features: 4}
          mix: {_type_: test.token_mixer, width: 4}
        nodes:
          h1: {call: module:proj, args: [$x]}
          h2: {call: module:norm, args: [$h1]}
          h3: {call: module:mix, args: [$h2]}
        outputs: [$h3]
"""


def test_build_meta_device_allocates_no_storage(tmp_path: Path) -> None:
    # test.token_mixer takes no `device`: it must land on meta all the same.
    model = build_checked(write_spec(tmp_path, FACTORY_SPEC), registry=_registry(), device="meta")

    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    assert sorted(tensors) == sorted(model.state_dict())
    assert {name: t.is_meta for name, t in tensors.items()} == dict.fromkeys(tensors, True)
    assert model(torch.empty(2, 4, device="meta")).shape == (2, 4)


def test_build_dtype_float64_gives_float64_parameters(tmp_path: Path) -> None:
    model = build_checked(write_spec(tmp_path, FACTORY_SPEC), registry=_registry(), dtype=torch.float64)

    assert {name: p.dtype for name, p in model.named_parameters()} == dict.fromkeys(
        dict(model.named_parameters()), torch.float64
    )
    assert model(torch.randn(2, 4, dtype=torch.float64)).dtype == torch.float64


# ---- errors raised by user code -------------------------------------------------------------


def test_build_constructor_exception_keeps_type_and_gains_yaml_location(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              lin: {_type_: nn.Linear, in_features: 2, out_features: 2}
              boom: {_type_: test.exploding, width: 3}
            nodes:
              h1: {call: module:lin, args: [$x]}
              h2: {call: module:boom, args: [$h1]}
            outputs: [$h2]
        """,
    )
    with pytest.raises(KeyError) as info:
        build_checked(path, registry=_registry())

    assert info.value.args == ("no width 3",)
    assert info.value.__notes__ == [
        f"while constructing model.graph.modules.boom (test.exploding) at {path}:7:13"
    ]


def test_build_forward_exception_gains_yaml_node_and_location(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              lin: {_type_: nn.Linear, in_features: 2, out_features: 2}
            nodes:
              h: {call: module:lin, args: [$x]}
              bad: {call: fn:torch.matmul, args: [$h, $h]}
            outputs: [$bad]
        """,
    )
    model = build_checked(path)

    with pytest.raises(RuntimeError, match=r"^mat1 and mat2 shapes cannot be multiplied") as info:
        model(torch.randn(3, 2))
    assert info.value.__notes__ == [f"raised in node 'bad' at {path}:9:7"]

    with pytest.raises(RuntimeError) as info:
        model(torch.randn(3, 5))  # now the module call fails first
    assert info.value.__notes__ == [f"raised in node 'h' at {path}:8:7"]


def test_build_forward_exception_from_python_spec_names_node() -> None:
    model = build_checked(BUILTIN_ONLY)

    with pytest.raises(RuntimeError) as info:
        model(torch.randn(2, 5))
    assert info.value.__notes__ == ["raised in node 'h1'"]


# ---- calls, refs and returns ----------------------------------------------------------------

X = torch.arange(6.0).reshape(2, 3)
Y = torch.arange(6.0, 12.0).reshape(2, 3)


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        pytest.param(
            "out: {call: method:transpose, args: [$x, 0, 1]}",
            X.transpose(0, 1),
            id="method-literal-args",
        ),
        pytest.param(
            "out: {call: method:reshape, args: [$y, [3, 2]]}",
            Y.reshape(3, 2),
            id="method-list-arg",
        ),
        pytest.param(
            "out: {call: fn:torch.add, args: [$x, $y], kwargs: {alpha: 0.5}}",
            torch.add(X, Y, alpha=0.5),
            id="fn-kwargs",
        ),
        pytest.param(
            "out: {call: fn:torch.cat, args: [[$x, $y, $x]], kwargs: {dim: -1}}",
            torch.cat([X, Y, X], dim=-1),
            id="fn-list-of-refs",
        ),
        pytest.param(
            "out: {call: fn:torch.stack, args: [[$y, $x]]}",
            torch.stack([Y, X]),
            id="fn-list-of-refs-no-kwargs",
        ),
        pytest.param(
            """\
            parts: {call: fn:torch.chunk, args: [$x, 3], kwargs: {dim: 1}}
            out: {call: fn:torch.mul, args: [$parts.2, $y]}""",
            torch.chunk(X, 3, dim=1)[2] * Y,
            id="tuple-index",
        ),
        pytest.param(
            """\
            s: {call: fn:torch.sub, args: [$y, $x]}
            out: {call: fn:F.softmax, args: [$s], kwargs: {dim: -1}}""",
            torch.softmax(Y - X, dim=-1),
            id="chain-functional",
        ),
    ],
)
def test_build_node_calls_match_torch(tmp_path: Path, nodes: str, expected: torch.Tensor) -> None:
    body = textwrap.indent(textwrap.dedent(nodes), " " * 6)
    path = write_spec(
        tmp_path,
        f"schema_version: 1\nmodel:\n  graph:\n    inputs: [x, y]\n    nodes:\n{body}\n    outputs: [$out]\n",
    )
    model = build_checked(path)

    torch.testing.assert_close(model(X, Y), expected, rtol=0, atol=0)


def test_build_multihead_attention_output_indexed(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              attn: {_type_: nn.MultiheadAttention, embed_dim: 4, num_heads: 2, batch_first: true}
              proj: {_type_: nn.Linear, in_features: 4, out_features: 4}
            nodes:
              a: {call: module:attn, args: [$x, $x, $x], kwargs: {need_weights: false}}
              out: {call: module:proj, args: [$a.0]}
            outputs: [$out]
        """,
    )
    model = build_checked(path).eval()
    x = torch.randn(2, 5, 4)

    attended, weights = model.attn(x, x, x, need_weights=False)
    assert weights is None
    torch.testing.assert_close(model(x), model.proj(attended), rtol=0, atol=0)


S = X + Y
D = S - Y


@pytest.mark.parametrize(
    ("outputs", "returns", "expected"),
    [
        ("[$d]", "single", D),
        ("[$d, $s, $x]", "tuple", (D, S, X)),
        ("[$d]", "tuple", (D,)),
        ("{diff: $d, sum: $s}", "dict", {"diff": D, "sum": S}),
        ("{input: $y, diff: $d}", "dict", {"input": Y, "diff": D}),
    ],
)
def test_build_return_kinds(tmp_path: Path, outputs: str, returns: str, expected: Any) -> None:
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x, y]
            nodes:
              s: {{call: fn:torch.add, args: [$x, $y]}}
              d: {{call: fn:torch.sub, args: [$s, $y]}}
            outputs: {outputs}
            return: {returns}
        """,
    )
    model = build_checked(path)

    result = model(X, Y)
    assert type(result) is type(expected)
    if isinstance(expected, dict):
        assert list(result) == list(expected)
    torch.testing.assert_close(result, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("written", "received"),
    [("$$x", "$x"), ("$$", "$"), ("$$$y", "$$y"), ("price: $$5", "price: $$5")],
)
def test_build_dollar_dollar_is_a_literal_string(tmp_path: Path, written: str, received: str) -> None:
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            nodes:
              positional: {{call: fn:test.echo_label, args: [$x, "{written}"]}}
              keyword: {{call: fn:test.echo_label, args: [$x], kwargs: {{label: "{written}"}}}}
            outputs: [$positional, $keyword]
            return: tuple
        """,
    )
    model = build_checked(path, registry=_registry())

    assert model(X) == (received, received)


# ---- nested block specs ---------------------------------------------------------------------


def test_build_nested_block_spec_is_built_and_passed(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              block:
                _type_: test.with_activation
                width: 3
                activation: {_type_: nn.GELU, approximate: tanh}
            nodes:
              out: {call: module:block, args: [$x]}
            outputs: [$out]
        """,
    )
    model = build_checked(path, registry=_registry())

    assert type(model.block.activation) is torch.nn.GELU
    assert model.block.activation.approximate == "tanh"
    assert list(model.state_dict()) == ["block.lin.weight", "block.lin.bias"]
    expected = torch.nn.functional.gelu(model.block.lin(X), approximate="tanh")
    torch.testing.assert_close(model(X), expected, rtol=0, atol=0)


def test_build_nested_block_spec_of_wrong_type_is_spec_error(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              block:
                _type_: test.with_norm
                norm: {_type_: nn.GELU}
            nodes:
              out: {call: module:block, args: [$x]}
            outputs: [$out]
        """,
    )
    with pytest.raises(SpecError) as info:
        build_checked(path, registry=_registry())

    assert str(info.value) == (
        f"{path}:8:24: error: model.graph.modules.block.norm._type_: argument 'norm' of block "
        "'test.with_norm' expects LayerNorm, but 'nn.GELU' builds GELU\n"
        " 8 |         norm: {_type_: nn.GELU}\n"
        "   |                        ^~~~~~~"
    )


# ---- order ----------------------------------------------------------------------------------

UNORDERED = """\
    schema_version: 1
    model:
      graph:
        inputs: [x]
        nodes:
          d: {call: fn:torch.relu, args: [$b]}
          a: {call: fn:torch.neg, args: [$x]}
          b: {call: fn:torch.abs, args: [$a]}
          c: {call: fn:torch.exp, args: [$x]}
        outputs: [$d, $c]
        return: tuple
"""


def test_build_without_order_is_deterministic_topological(tmp_path: Path) -> None:
    path = write_spec(tmp_path, UNORDERED)
    first, second = build_checked(path), build_checked(path)

    # Kahn's algorithm, ties broken by declaration order.
    calls = [n.name for n in first.graph.nodes if n.op not in ("placeholder", "output")]
    assert calls == ["a", "b", "d", "c"]
    assert first.code == second.code
    torch.testing.assert_close(first(X), (torch.relu(torch.abs(-X)), torch.exp(X)), rtol=0, atol=0)


# ---- Python-data specs ----------------------------------------------------------------------


def _as_dict(data: dict[str, Any]) -> Any:
    return copy.deepcopy(data)


def _as_model_spec(data: dict[str, Any]) -> Any:
    return ModelSpec.model_validate(copy.deepcopy(data))


@pytest.mark.parametrize("make", [_as_dict, _as_model_spec], ids=["dict", "ModelSpec"])
def test_build_from_python_data(make: Callable[[dict[str, Any]], Any]) -> None:
    model = build_checked(make(BUILTIN_ONLY))
    x = torch.randn(2, 4)

    assert list(model.state_dict()) == ["proj.weight", "proj.bias"]
    assert model.spec.model.graph.modules["proj"].kwargs == {"in_features": 4, "out_features": 4}
    h1 = model.proj(x)
    torch.testing.assert_close(
        model(x), torch.add(h1, torch.nn.functional.gelu(h1, approximate="tanh"), alpha=0.5)
    )


@pytest.mark.parametrize("make", [_as_dict, _as_model_spec], ids=["dict", "ModelSpec"])
def test_build_python_data_errors_report_config_path(make: Callable[[dict[str, Any]], Any]) -> None:
    data = copy.deepcopy(BUILTIN_ONLY)
    data["model"]["graph"]["modules"]["proj"]["out_features"] = "4"
    data["model"]["graph"]["nodes"]["h2"]["args"] = ["$h0"]

    with pytest.raises(SpecError) as info:
        build_checked(make(data))

    assert [(d.location, d.path) for d in info.value.diagnostics] == [
        (None, ("model", "graph", "modules", "proj", "out_features")),
        (None, ("model", "graph", "nodes", "h2", "args", 0)),
    ]
    assert str(info.value) == (
        "error: model.graph.modules.proj.out_features: argument 'out_features' of block "
        "'nn.Linear': Input should be a valid integer, got '4' "
        "(strict blocks take numbers and booleans unquoted)\n"
        "error: model.graph.nodes.h2.args[0]: unknown reference '$h0' (known names: x, h1, h3)\n"
        "2 errors"
    )


def test_build_does_not_mutate_caller_dict() -> None:
    data = copy.deepcopy(BUILTIN_ONLY)
    data["model"]["graph"]["modules"]["inner"] = {
        "_type_": "test.with_activation",
        "width": 2,
        "activation": {"_type_": "nn.ReLU"},
    }
    data["model"]["graph"]["nodes"]["h4"] = {"call": "module:inner", "args": ["$h3"]}
    data["model"]["graph"]["outputs"] = ["$h3", "$h4"]
    data["model"]["graph"]["return"] = "tuple"
    data["model"]["graph"]["modules"]["proj"]["out_features"] = 2
    before = copy.deepcopy(data)

    build_checked(data, registry=_registry())

    assert data == before
    assert data["model"]["graph"]["modules"]["proj"]["in_features"] == "${params.width}"


# ---- names that generated code also uses ----------------------------------------------------


@pytest.mark.parametrize("name", ["torch", "device", "inf", "nan", "pytree", "self"])
def test_build_input_named_like_a_code_global_is_spec_error(name: str) -> None:
    data = {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": [name],
                "nodes": {"y": {"call": "fn:torch.neg", "args": [f"${name}"]}},
                "outputs": ["$y"],
            }
        },
    }
    with pytest.raises(SpecError) as info:
        build_checked(data)

    assert str(info.value).splitlines()[0] == (
        f"error: model.graph.inputs[0]: input name {name!r} is reserved by the built model (rename it)"
    )


@pytest.mark.parametrize("name", ["torch", "operator", "getattr", "inf", "device", "x_1"])
def test_build_node_and_module_named_like_a_code_global_run(name: str) -> None:
    data = {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": ["x"],
                "modules": {name: {"_type_": "nn.Identity"}},
                "nodes": {
                    name: {"call": f"module:{name}", "args": ["$x"]},
                    "y": {"call": "fn:torch.add", "args": [f"${name}", "$x"], "kwargs": {"alpha": 2}},
                },
                "outputs": ["$y"],
            }
        },
    }
    model = build_checked(data)

    torch.testing.assert_close(model(X), X * 3, rtol=0, atol=0)


# ---- the cyclic collector -------------------------------------------------------------------


class CollectorProbe(torch.nn.Module):
    """Records, as it is constructed, whether the cyclic collector runs."""

    seen: ClassVar[list[bool]] = []

    def __init__(self, *, explode: bool = False):
        super().__init__()
        CollectorProbe.seen.append(gc.isenabled())
        if explode:
            raise RuntimeError("constructor failed")


def _build_one(key: str, block: type[torch.nn.Module], **kwargs: Any) -> BuiltModel:
    """A model of one module, `block` registered as `key` and given `kwargs`, called on `x`."""
    registry = Registry()
    registry.register_module(key, block)
    data = {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": ["x"],
                "modules": {"one": {"_type_": key, **kwargs}},
                "nodes": {"y": {"call": "module:one", "args": ["$x"]}},
                "outputs": ["$y"],
            }
        },
    }
    CollectorProbe.seen.clear()
    return build_model(data, registry=registry)


def _build_probe(explode: bool = False) -> BuiltModel:
    return _build_one("test.probe", CollectorProbe, explode=explode)


@pytest.fixture
def collector_on() -> Any:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if not was_enabled:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_build_runs_the_collector_during_construction_and_restores_it() -> None:
    _build_probe()

    assert CollectorProbe.seen[0] is True
    assert (gc.isenabled(), gc.get_freeze_count()) == (True, 0)


@pytest.mark.usefixtures("collector_on")
def test_build_restores_the_collector_when_a_constructor_raises() -> None:
    with pytest.raises(RuntimeError, match="constructor failed"):
        _build_probe(explode=True)

    assert (gc.isenabled(), gc.get_freeze_count()) == (True, 0)


@pytest.mark.usefixtures("collector_on")
def test_build_leaves_objects_the_application_froze_frozen() -> None:
    frozen_by_application = [object()]  # a list: tracked by the collector
    gc.freeze()
    try:
        _build_probe()

        assert CollectorProbe.seen[0] is False  # paused: unfreezing would thaw the list
        assert gc.isenabled() is True
        # gc.get_objects() lists every tracked object except the frozen ones.
        assert not any(o is frozen_by_application for o in gc.get_objects())
    finally:
        gc.unfreeze()


class BuildsInside(torch.nn.Module):
    """A block that builds a model of its own from a spec, as it is constructed."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = build_model(BUILTIN_ONLY)
        CollectorProbe.seen.append(gc.isenabled())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.usefixtures("collector_on")
def test_build_inside_a_constructor_restores_the_collector() -> None:
    model = _build_one("test.builds_inside", BuildsInside)

    assert CollectorProbe.seen == [True]  # the outer build's construction, after the inner build
    assert (gc.isenabled(), gc.get_freeze_count()) == (True, 0)
    x = torch.ones(2, 4)
    torch.testing.assert_close(model(x), model.one.inner(x))


def test_build_leaves_a_disabled_collector_disabled() -> None:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _build_probe()

        assert CollectorProbe.seen[0] is False
        assert gc.isenabled() is False
    finally:
        if was_enabled:
            gc.enable()
