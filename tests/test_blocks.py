"""The built-in blocks of `model_constructor.blocks`, and the examples of its README.

Every block is built from a YAML file through the public API, as a user's spec would build
it. The transformer layer is compared with `torch.nn.TransformerEncoderLayer` weight for
weight and output for output. The README's files are written to a temp project and run.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import pickle
import re
import sys
import textwrap
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import build_checked
from torch import nn

import model_constructor.blocks as blocks
from model_constructor import Registry, SpecError, build_model

HEADER = """\
schema_version: 1
settings:
  allowed_import_prefixes: ["model_constructor."]
imports: [model_constructor.blocks]
"""

KEYS = {
    "model_constructor.conv_norm_act": (blocks.conv, blocks.ConvNormAct),
    "model_constructor.mlp": (blocks.mlp, blocks.MLP),
    "model_constructor.residual": (blocks.residual, blocks.Residual),
    "model_constructor.resnet_basic_block": (blocks.resnet, blocks.ResNetBasicBlock),
    "model_constructor.transformer_encoder_layer": (blocks.transformer, blocks.TransformerEncoderLayer),
}


def _single_block(tmp_path: Path, module: str, *, header: str = HEADER) -> Path:
    """A spec file whose graph calls one module, `block`: in flow style on line 9 if `module`
    starts with `{`, else in block style from line 10."""
    path = tmp_path / "model.yaml"
    path.write_text(
        header
        + "model:\n"
        + "  graph:\n"
        + "    inputs: [x]\n"
        + "    modules:\n"
        + (
            f"      block: {module}"  # flow style, on the key's line
            if module.startswith("{")
            else "      block:\n" + textwrap.indent(textwrap.dedent(module), " " * 8)
        )
        + "    nodes:\n"
        + "      y: {call: module:block, args: [$x]}\n"
        + "    outputs: [$y]\n"
    )
    return path


def _bn(prefix: str) -> list[str]:
    return [
        f"{prefix}.{name}"
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    ]


TRANSFORMER_KEYS = [
    "self_attn.in_proj_weight",
    "self_attn.in_proj_bias",
    "self_attn.out_proj.weight",
    "self_attn.out_proj.bias",
    "linear1.weight",
    "linear1.bias",
    "linear2.weight",
    "linear2.bias",
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
]

# (module spec, input shape, output shape, parameter count, state_dict keys under `block.`)
CASES = {
    "mlp": (
        """\
        _type_: model_constructor.mlp
        in_features: 8
        hidden_features: 32
        out_features: 4
        """,
        (2, 8),
        (2, 4),
        8 * 32 + 32 + 32 * 4 + 4,
        ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"],
    ),
    "mlp-no-bias-same-width": (
        """\
        _type_: model_constructor.mlp
        in_features: 8
        hidden_features: 16
        activation: {_type_: nn.ReLU}
        dropout: 0.1
        bias: false
        """,
        (3, 5, 8),
        (3, 5, 8),
        8 * 16 + 16 * 8,
        ["fc1.weight", "fc2.weight"],
    ),
    "residual-mlp": (
        """\
        _type_: model_constructor.residual
        scale: 0.5
        block:
          _type_: model_constructor.mlp
          in_features: 8
          hidden_features: 16
        """,
        (3, 5, 8),
        (3, 5, 8),
        8 * 16 + 16 + 16 * 8 + 8,
        ["block.fc1.weight", "block.fc1.bias", "block.fc2.weight", "block.fc2.bias"],
    ),
    "transformer": (
        """\
        _type_: model_constructor.transformer_encoder_layer
        d_model: 16
        nhead: 4
        dim_feedforward: 32
        """,
        (2, 5, 16),
        (2, 5, 16),
        (3 * 16 * 16 + 3 * 16) + (16 * 16 + 16) + (16 * 32 + 32) + (32 * 16 + 16) + 2 * 2 * 16,
        TRANSFORMER_KEYS,
    ),
    "conv-norm-act": (
        """\
        _type_: model_constructor.conv_norm_act
        in_channels: 3
        out_channels: 8
        kernel_size: [3, 5]
        stride: 2
        """,
        (1, 3, 16, 16),
        (1, 8, 8, 8),
        8 * 3 * 3 * 5 + 2 * 8,
        ["conv.weight", *_bn("norm")],
    ),
    "conv-grouped-no-norm": (
        """\
        _type_: model_constructor.conv_norm_act
        in_channels: 4
        out_channels: 8
        kernel_size: 1
        groups: 2
        norm: false
        activation: {_type_: nn.Identity}
        """,
        (1, 4, 6, 6),
        (1, 8, 6, 6),
        8 * 2 + 8,
        ["conv.weight", "conv.bias"],
    ),
    "resnet-identity-shortcut": (
        """\
        _type_: model_constructor.resnet_basic_block
        in_channels: 8
        out_channels: 8
        """,
        (2, 8, 10, 10),
        (2, 8, 10, 10),
        2 * (8 * 8 * 9 + 2 * 8),
        ["conv1.conv.weight", *_bn("conv1.norm"), "conv2.conv.weight", *_bn("conv2.norm")],
    ),
    "resnet-projection-stride": (
        """\
        _type_: model_constructor.resnet_basic_block
        in_channels: 8
        out_channels: 16
        stride: 2
        """,
        (2, 8, 10, 10),
        (2, 16, 5, 5),
        (16 * 8 * 9 + 32) + (16 * 16 * 9 + 32) + (16 * 8 + 32),
        [
            "conv1.conv.weight",
            *_bn("conv1.norm"),
            "conv2.conv.weight",
            *_bn("conv2.norm"),
            "shortcut.conv.weight",
            *_bn("shortcut.norm"),
        ],
    ),
    "resnet-projection-channels": (
        """\
        _type_: model_constructor.resnet_basic_block
        in_channels: 8
        out_channels: 4
        """,
        (2, 8, 6, 6),
        (2, 4, 6, 6),
        (4 * 8 * 9 + 8) + (4 * 4 * 9 + 8) + (4 * 8 + 8),
        [
            "conv1.conv.weight",
            *_bn("conv1.norm"),
            "conv2.conv.weight",
            *_bn("conv2.norm"),
            "shortcut.conv.weight",
            *_bn("shortcut.norm"),
        ],
    ),
}


# ---- registration ---------------------------------------------------------------------------


def test_blocks_register_adds_every_builtin_block_once() -> None:
    registry = Registry()
    blocks.register(registry)
    blocks.register(registry)  # every build that imports it runs it again: a no-op

    assert registry.keys("module") == sorted(KEYS)
    assert registry.keys("function") == []
    for key, (_, cls) in KEYS.items():
        entry = registry.get("module", key)
        assert entry is not None and entry.target is cls and entry.signature_policy == "strict"


@pytest.mark.parametrize("key", sorted(KEYS))
def test_blocks_each_module_registers_its_own_block(key: str) -> None:
    module, cls = KEYS[key]
    registry = Registry()
    module.register(registry)

    assert registry.keys("module") == [key]
    assert registry.get("module", key).target is cls  # type: ignore[union-attr]


@pytest.mark.parametrize("key", sorted(KEYS))
def test_blocks_init_is_keyword_only_typed_and_documented(key: str) -> None:
    cls = KEYS[key][1]
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    hints = typing.get_type_hints(cls.__init__)
    doc = inspect.getdoc(cls) or ""

    assert parameters, key
    for param in parameters:
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, param.name
        assert param.name in hints, param.name
        assert re.search(rf"^    {param.name}: \S", doc, re.MULTILINE), f"{param.name} undocumented"
    assert typing.get_type_hints(cls.forward)["return"] is torch.Tensor


def test_blocks_one_file_can_be_imported_alone(tmp_path: Path) -> None:
    header = HEADER.replace("[model_constructor.blocks]", "[model_constructor.blocks.mlp]")
    path = _single_block(
        tmp_path, "{_type_: model_constructor.mlp, in_features: 4, hidden_features: 8}\n", header=header
    )

    model = build_checked(path)

    assert isinstance(model.block, blocks.MLP)


# ---- built from YAML ------------------------------------------------------------------------


@pytest.mark.parametrize(("module", "shape_in", "shape_out", "count", "keys"), CASES.values(), ids=CASES)
def test_blocks_build_from_yaml(
    tmp_path: Path,
    module: str,
    shape_in: tuple[int, ...],
    shape_out: tuple[int, ...],
    count: int,
    keys: list[str],
) -> None:
    model = build_checked(_single_block(tmp_path, module))

    assert list(model.state_dict()) == [f"block.{key}" for key in keys]
    assert sum(p.numel() for p in model.parameters()) == count
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(shape_in)).shape == shape_out


@pytest.mark.parametrize("module", [case[0] for case in CASES.values()], ids=CASES)
def test_blocks_build_on_meta_device(tmp_path: Path, module: str) -> None:
    model = build_checked(_single_block(tmp_path, module), device="meta", dtype=torch.float64)

    assert {(t.device.type, t.dtype) for t in model.parameters()} == {("meta", torch.float64)}


def test_blocks_model_survives_deepcopy_and_pickle(tmp_path: Path) -> None:
    model = build_checked(_single_block(tmp_path, CASES["transformer"][0])).eval()
    x = torch.randn(2, 5, 16)
    expected = model(x)

    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(copied.block, blocks.TransformerEncoderLayer)
        torch.testing.assert_close(copied(x), expected, rtol=0, atol=0)


def test_blocks_defaults_and_validated_values_arrive(tmp_path: Path) -> None:
    path = _single_block(
        tmp_path,
        """\
        _type_: model_constructor.residual
        block:
          _type_: model_constructor.conv_norm_act
          in_channels: 4
          out_channels: 4
          kernel_size: [1, 3]
          stride: [1, 1]
        """,
    )
    model = build_checked(path)
    conv = model.block.block

    assert model.block.scale == 1.0 and type(model.block.scale) is float
    assert isinstance(conv.act, nn.ReLU)
    assert conv.conv.kernel_size == (1, 3) and conv.conv.padding == (0, 1)
    assert conv.conv.bias is None
    assert isinstance(blocks.MLP(in_features=2, hidden_features=3).act, nn.GELU)


def test_blocks_residual_adds_scaled_branch(tmp_path: Path) -> None:
    path = _single_block(
        tmp_path,
        """\
        _type_: model_constructor.residual
        scale: 0.25
        block: {_type_: nn.Linear, in_features: 6, out_features: 6}
        """,
    )
    model = build_checked(path)
    x = torch.randn(4, 6)

    torch.testing.assert_close(model(x), x + 0.25 * model.block.block(x))


def test_blocks_resnet_relu_after_the_add(tmp_path: Path) -> None:
    model = build_checked(
        _single_block(
            tmp_path, "{_type_: model_constructor.resnet_basic_block, in_channels: 3, out_channels: 3}\n"
        )
    )
    block = model.block.eval()
    x = torch.randn(2, 3, 5, 5)

    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.relu(block.conv2(block.conv1(x)) + x))


# ---- the transformer layer against torch's --------------------------------------------------


def _torch_layer(norm_first: bool, activation: str) -> nn.TransformerEncoderLayer:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        d_model=64,
        nhead=4,
        dim_feedforward=128,
        dropout=0.0,
        batch_first=True,
        norm_first=norm_first,
        activation=activation,
    )
    return layer.eval()


def _transformer_spec(tmp_path: Path, norm_first: bool, activation: str) -> Path:
    path = tmp_path / "encoder.yaml"
    path.write_text(
        HEADER
        + textwrap.dedent(
            f"""\
            params: {{width: 64, heads: 4}}
            model:
              graph:
                inputs: [x, mask]
                modules:
                  layer:
                    _type_: model_constructor.transformer_encoder_layer
                    d_model: ${{params.width}}
                    nhead: ${{params.heads}}
                    dim_feedforward: ${{params.width * 2}}
                    dropout: 0.0
                    activation: {activation}
                    batch_first: true
                    norm_first: {str(norm_first).lower()}
                nodes:
                  plain: {{call: module:layer, args: [$x]}}
                  masked: {{call: module:layer, args: [$x], kwargs: {{src_key_padding_mask: $mask}}}}
                outputs: [$plain, $masked]
                return: tuple
            """
        )
    )
    return path


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_blocks_transformer_matches_torch_layer(tmp_path: Path, norm_first: bool, activation: str) -> None:
    reference = _torch_layer(norm_first, activation)
    model = build_checked(_transformer_spec(tmp_path, norm_first, activation)).eval()

    model.load_state_dict({f"layer.{k}": v for k, v in reference.state_dict().items()}, strict=True)

    x = torch.randn(3, 7, 64)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[0, 4:] = True
    # Without grad, torch's layer takes its fused fast path; with grad, the plain one.
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            plain, masked = model(x, mask)
            torch.testing.assert_close(plain, reference(x), rtol=0, atol=1e-5)
            torch.testing.assert_close(masked, reference(x, src_key_padding_mask=mask), rtol=0, atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_blocks_transformer_state_dict_loads_into_torch_layer(tmp_path: Path, norm_first: bool) -> None:
    model = build_checked(_transformer_spec(tmp_path, norm_first, "gelu")).eval()
    reference = _torch_layer(norm_first, "gelu")
    ours = model.layer.state_dict()

    reference.load_state_dict(ours, strict=True)

    assert list(ours) == list(reference.state_dict()) == TRANSFORMER_KEYS
    x = torch.randn(2, 5, 64)
    torch.testing.assert_close(
        model(x, torch.zeros(2, 5, dtype=torch.bool))[0], reference(x), rtol=0, atol=1e-5
    )


def test_blocks_transformer_seq_first(tmp_path: Path) -> None:
    path = _single_block(
        tmp_path,
        "{_type_: model_constructor.transformer_encoder_layer, d_model: 8, nhead: 2, batch_first: false}\n",
    )
    model = build_checked(path).eval()
    reference = nn.TransformerEncoderLayer(d_model=8, nhead=2).eval()
    reference.load_state_dict(model.block.state_dict(), strict=True)
    x = torch.randn(5, 2, 8)  # (seq, batch, d_model)

    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=1e-5)


# ---- strict errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "at", "message"),
    [
        (
            "{_type_: model_constructor.mlp, in_features: 8, hiden_features: 3}",
            "hiden_features",
            "model.graph.modules.block.hiden_features: unknown argument 'hiden_features' for block "
            "'model_constructor.mlp' (did you mean 'hidden_features'?)",
        ),
        (
            "{_type_: model_constructor.mlp, in_features: 8, hidden_features: 16, dropout: [0.1]}",
            "[0.1]",
            "model.graph.modules.block.dropout: argument 'dropout' of block 'model_constructor.mlp': "
            "Input should be a valid number, got [0.1]",
        ),
        (
            "{_type_: model_constructor.transformer_encoder_layer, d_model: 8, nhead: 2, activation: swish}",
            "swish",
            "model.graph.modules.block.activation: argument 'activation' of block "
            "'model_constructor.transformer_encoder_layer': Input should be 'relu' or 'gelu', got 'swish'",
        ),
        (
            "{_type_: model_constructor.transformer_encoder_layer, d_model: 8, nhead: 2, norm_first: 1}",
            "1}",
            "model.graph.modules.block.norm_first: argument 'norm_first' of block "
            "'model_constructor.transformer_encoder_layer': Input should be a valid boolean, got 1",
        ),
        (
            "{_type_: model_constructor.residual, block: 3}",
            "3}",
            "model.graph.modules.block.block: argument 'block' of block 'model_constructor.residual': "
            "Input should be an instance of Module, got 3 "
            "(write a block spec, such as {_type_: nn.GELU})",
        ),
        (
            "{_type_: model_constructor.residual, scale: 0.5}",
            "{",
            "model.graph.modules.block: missing argument 'block' for block 'model_constructor.residual' "
            "(it takes (block, scale=1.0))",
        ),
        (
            '{_type_: model_constructor.resnet_basic_block, in_channels: 3, out_channels: 8, stride: "2"}',
            '"2"',
            "model.graph.modules.block.stride: argument 'stride' of block "
            "'model_constructor.resnet_basic_block': Input should be a valid integer, got '2' "
            "(strict blocks take numbers and booleans unquoted)",
        ),
        (
            "{_type_: model_constructor.conv_norm_act, in_channels: 3, out_channel: 8}",
            "out_channel:",
            "model.graph.modules.block.out_channel: unknown argument 'out_channel' for block "
            "'model_constructor.conv_norm_act' (did you mean 'out_channels'?)",
        ),
    ],
    ids=["unknown", "float", "literal", "bool", "block-literal", "missing", "int", "unknown-conv"],
)
def test_blocks_strict_error_at_argument(tmp_path: Path, module: str, at: str, message: str) -> None:
    path = _single_block(tmp_path, module + "\n")
    line = path.read_text().splitlines()[8]
    assert line == "      block: " + module  # line 9 of the file
    col = line.index(at) + 1

    with pytest.raises(SpecError) as info:
        build_model(path)

    assert [d.headline() for d in info.value.diagnostics] == [f"{path}:9:{col}: error: {message}"]


def test_blocks_strict_error_inside_nested_block(tmp_path: Path) -> None:
    path = _single_block(
        tmp_path,
        """\
        _type_: model_constructor.residual
        block:
          _type_: model_constructor.mlp
          in_features: 8
          hiden_features: 3
        """,
    )
    with pytest.raises(SpecError) as info:
        build_model(path)

    assert str(info.value) == (
        f"{path}:14:11: error: model.graph.modules.block.block.hiden_features: unknown argument "
        "'hiden_features' for block 'model_constructor.mlp' (did you mean 'hidden_features'?)\n"
        " 14 |           hiden_features: 3\n"
        "    |           ^~~~~~~~~~~~~~"
    )


# ---- the README -----------------------------------------------------------------------------

README = Path(blocks.__file__).parent / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_TARGET = re.compile(r"^# (?P<path>[\w/]+\.(?:py|yaml))(?P<continued>, continued)?$")
EXAMPLES = [(lang, body) for lang, body in _FENCE.findall(README.read_text(encoding="utf-8"))]
FILES = [body for lang, body in EXAMPLES if lang in ("python", "yaml")]
OUTPUTS = [body for lang, body in EXAMPLES if lang == "text"]
# A spec whose expected error is shown in a text block fails; every other spec builds.
FAILING = {body.split(":", 1)[0] for body in OUTPUTS}
SPECS = [
    path for body in FILES if (path := body.splitlines()[0][2:]).endswith(".yaml") and path not in FAILING
]


@pytest.fixture
def readme_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tmp_path holding every file the README shows, importable, and the working directory."""
    for body in FILES:
        target = _TARGET.match(body.splitlines()[0])
        assert target is not None, body.splitlines()[0]
        path = tmp_path / target["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if target["continued"] else "x") as file:
            file.write(body if not target["continued"] else "\n\n" + body)
    # Another test may have imported a different `my_project`; import ours, then restore theirs.
    ours = re.compile(r"^my_project(\.|$)")
    saved = {name: module for name, module in sys.modules.items() if ours.match(name)}
    for name in saved:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in [name for name in sys.modules if ours.match(name)]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_blocks_readme_every_example_is_run() -> None:
    assert [lang for lang, _ in EXAMPLES if lang not in ("python", "yaml", "text")] == []
    for body in FILES:
        assert _TARGET.match(body.splitlines()[0]), body.splitlines()[0]
    written = {body.splitlines()[0][2:] for body in FILES}
    assert FAILING.issubset(written)
    assert len(SPECS) == 5 and len(OUTPUTS) == 1


@pytest.mark.parametrize("spec", SPECS)
def test_blocks_readme_spec_builds(readme_project: Path, spec: str) -> None:
    model = build_checked(spec)
    assert model.spec.schema_version == 1


def test_blocks_readme_error_output_matches(readme_project: Path) -> None:
    for shown in OUTPUTS:
        with pytest.raises(SpecError) as info:
            build_model(shown.split(":", 1)[0])
        assert str(info.value) == shown.rstrip("\n")


def test_blocks_readme_tests_pass(readme_project: Path) -> None:
    ran = []
    for path in sorted((readme_project / "tests").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"readme_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, function in vars(module).items():
            if name.startswith("test_") and callable(function):
                function()
                ran.append(name)
    assert ran == ["test_mixer_layout_is_unchanged", "test_mixer_checkpoint_does_not_load_into_v2"]


def test_blocks_readme_encoder_runs(readme_project: Path) -> None:
    model = build_checked("configs/models/encoder.yaml")
    assert model(torch.randn(2, 5, 16)).shape == (2, 5, 64)
    assert "head.block.fc1.weight" in model.state_dict()
    cnn = build_checked("configs/models/cnn.yaml")
    assert cnn.stem.conv.kernel_size == (3, 7)
    assert cnn(torch.randn(1, 3, 32, 32)).shape == (1, 64, 8, 8)
