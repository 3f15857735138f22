"""The example specs in examples/ build the models they claim: checked against torch's own
modules where torch has one, and against hand-computed parameter counts and key lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from model_constructor import BuiltModel, build_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# The state_dict keys of torch.nn.TransformerEncoderLayer, in its order.
LAYER_KEYS = [
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


def _build(name: str, overrides: dict[str, Any] | None = None, **params: Any) -> BuiltModel:
    values = {**(overrides or {}), **{f"params.{k}": v for k, v in params.items()}}
    model = build_model(EXAMPLES / name, overrides=values)
    model.graph.lint()
    return model


def _parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _encoder_layer_parameters(d_model: int, dim_feedforward: int) -> int:
    attention = 3 * d_model * d_model + 3 * d_model + d_model * d_model + d_model
    feed_forward = d_model * dim_feedforward + dim_feedforward + dim_feedforward * d_model + d_model
    norms = 2 * 2 * d_model
    return attention + feed_forward + norms


# ---- transformer_encoder.yaml ------------------------------------------------------------------


NORM_FIRST = pytest.mark.parametrize(
    ("norm_first", "layer"), [(False, "post_norm"), (True, "pre_norm")], ids=["post_norm", "pre_norm"]
)


def _encoder_layer(layer: str) -> BuiltModel:
    return _build("transformer_encoder.yaml", layer=layer)


@NORM_FIRST
def test_transformer_encoder_loads_torch_state_dict_strict(norm_first: bool, layer: str) -> None:
    torch.manual_seed(0)
    reference = torch.nn.TransformerEncoderLayer(
        d_model=64, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True, norm_first=norm_first
    )
    model = _encoder_layer(layer)

    # `model.graph` instantiates the sub-graph, so its modules are the model's own children.
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict(), strict=True)


@NORM_FIRST
def test_transformer_encoder_matches_torch_outputs(norm_first: bool, layer: str) -> None:
    torch.manual_seed(0)
    reference = torch.nn.TransformerEncoderLayer(
        d_model=64, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    model = _encoder_layer(layer).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    src = torch.randn(2, 5, 64)

    # With grad enabled torch runs its Python path; under no_grad, its fused fast path.
    torch.testing.assert_close(model(src), reference(src), atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(src), reference(src), atol=1e-5, rtol=0)


def test_transformer_encoder_default_is_post_norm() -> None:
    model = _build("transformer_encoder.yaml")

    assert model.spec.model.graph.type_ == "graph:post_norm"  # type: ignore[union-attr]
    assert model.code.index(".norm1(") > model.code.index(".self_attn(")


def test_transformer_encoder_built_from_primitives() -> None:
    model = _build("transformer_encoder.yaml")

    assert model.spec.imports == []
    leaves = {type(m).__name__ for m in model.modules() if not list(m.children())}
    # out_proj is MultiheadAttention's own NonDynamicallyQuantizableLinear.
    assert leaves == {"NonDynamicallyQuantizableLinear", "Linear", "LayerNorm", "Dropout", "ReLU"}
    assert "torch.add" in model.code


# ---- encoder_stack.yaml --------------------------------------------------------------------------


def test_encoder_stack_parameter_count() -> None:
    model = _build("encoder_stack.yaml")

    assert _parameter_count(model) == 6 * _encoder_layer_parameters(32, 64) + 2 * 32 == 51_328


def test_encoder_stack_state_dict_keys() -> None:
    model = _build("encoder_stack.yaml")

    expected = [f"layers.{i}.{key}" for i in range(6) for key in LAYER_KEYS] + ["norm.weight", "norm.bias"]
    assert list(model.state_dict()) == expected


def test_encoder_stack_output_shape() -> None:
    model = _build("encoder_stack.yaml").eval()
    padding_mask = torch.zeros(2, 5, dtype=torch.bool)

    assert model(torch.randn(2, 5, 32), padding_mask).shape == (2, 5, 32)


def test_encoder_stack_matches_torch_encoder() -> None:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
    reference = torch.nn.TransformerEncoder(
        layer, num_layers=6, norm=torch.nn.LayerNorm(32), enable_nested_tensor=False
    ).eval()
    model = _build("encoder_stack.yaml", dropout=0.0).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    src = torch.randn(2, 5, 32)
    padding_mask = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])

    torch.testing.assert_close(
        model(src, padding_mask), reference(src, src_key_padding_mask=padding_mask), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("depth", [1, 2, 6])
def test_encoder_stack_depth_sets_layer_count(depth: int) -> None:
    model = _build("encoder_stack.yaml", depth=depth)

    assert len(model.layers) == depth
    assert {key.split(".")[1] for key in model.state_dict() if key.startswith("layers.")} == {
        str(i) for i in range(depth)
    }
    assert _parameter_count(model) == depth * _encoder_layer_parameters(32, 64) + 2 * 32
    # Unrolled: one attention call per copy in the generated forward, no loop.
    assert model.code.count(".self_attn(") == depth
    assert "for " not in model.code


def test_encoder_stack_copies_have_distinct_weights() -> None:
    model = _build("encoder_stack.yaml", depth=2)

    assert model.layers[0].linear1.weight is not model.layers[1].linear1.weight
    assert not torch.equal(model.layers[0].linear1.weight, model.layers[1].linear1.weight)


# ---- resnet_cnn.yaml -----------------------------------------------------------------------------


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k


def _resnet_parameters(width: int = 16, blocks: int = 2, classes: int = 10) -> int:
    def bn(c: int) -> int:
        return 2 * c

    def basic(c: int) -> int:
        return 2 * (_conv(c, c, 3) + bn(c))

    wide = 2 * width
    stem = _conv(3, width, 3) + bn(width)
    down = (
        _conv(width, wide, 3) + bn(wide) + _conv(wide, wide, 3) + bn(wide) + _conv(width, wide, 1) + bn(wide)
    )
    head = wide * classes + classes
    return stem + blocks * basic(width) + down + (blocks - 1) * basic(wide) + head


def test_resnet_cnn_parameter_count() -> None:
    model = _build("resnet_cnn.yaml")

    assert _parameter_count(model) == _resnet_parameters() == 43_226


def test_resnet_cnn_state_dict_keys() -> None:
    model = _build("resnet_cnn.yaml")

    def bn(prefix: str) -> list[str]:
        return [
            f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        ]

    def basic(prefix: str) -> list[str]:
        return [
            f"{prefix}.conv1.weight",
            *bn(f"{prefix}.bn1"),
            f"{prefix}.conv2.weight",
            *bn(f"{prefix}.bn2"),
        ]

    expected = [
        "conv1.weight",
        *bn("bn1"),
        *basic("layer1.0"),
        *basic("layer1.1"),
        *basic("down2"),
        "down2.downsample.conv.weight",
        *bn("down2.downsample.bn"),
        *basic("layer2.0"),
        "fc.weight",
        "fc.bias",
    ]
    assert list(model.state_dict()) == expected


def test_resnet_cnn_output_shape() -> None:
    model = _build("resnet_cnn.yaml")

    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_cnn_matches_hand_written_forward() -> None:
    torch.manual_seed(0)
    model = _build("resnet_cnn.yaml").eval()
    x = torch.randn(2, 3, 32, 32)

    def basic(block: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        out = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(h)))))
        return F.relu(out + h)

    h = F.relu(model.bn1(model.conv1(x)))
    for block in model.layer1:
        h = basic(block, h)
    down = model.down2
    shortcut = down.downsample.bn(down.downsample.conv(h))
    h = F.relu(down.bn2(down.conv2(F.relu(down.bn1(down.conv1(h))))) + shortcut)
    for block in model.layer2:
        h = basic(block, h)
    expected = model.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    torch.testing.assert_close(model(x), expected)


def test_resnet_cnn_blocks_sets_depth() -> None:
    model = _build("resnet_cnn.yaml", blocks=3)

    assert (len(model.layer1), len(model.layer2)) == (3, 2)
    assert _parameter_count(model) == _resnet_parameters(blocks=3)


# ---- tied_lm.yaml --------------------------------------------------------------------------------

VOCAB, MAX_LEN, D_MODEL, DEPTH = 100, 16, 32, 2


def test_tied_lm_state_dict_has_one_embedding_matrix() -> None:
    model = _build("tied_lm.yaml")
    state = model.state_dict()

    assert [key for key, value in state.items() if value.shape == (VOCAB, D_MODEL)] == ["embed.weight"]
    assert [key for key in state if not key.startswith("layers.")] == [
        "embed.weight",
        "pos_embed.weight",
        "norm.weight",
        "norm.bias",
    ]
    assert [key.split(".", 2)[2] for key in state if key.startswith("layers.0.")] == LAYER_KEYS


def test_tied_lm_parameter_count() -> None:
    model = _build("tied_lm.yaml")

    embeddings = VOCAB * D_MODEL + MAX_LEN * D_MODEL
    expected = embeddings + DEPTH * _encoder_layer_parameters(D_MODEL, 4 * D_MODEL) + 2 * D_MODEL
    assert _parameter_count(model) == expected == 29_184


def test_tied_lm_output_shape() -> None:
    model = _build("tied_lm.yaml")

    assert model(torch.randint(0, VOCAB, (2, 7))).shape == (2, 7, VOCAB)


def test_tied_lm_is_causal() -> None:
    torch.manual_seed(0)
    model = _build("tied_lm.yaml").eval()
    tokens = torch.randint(0, VOCAB, (1, 6))
    changed = tokens.clone()
    changed[0, -1] = (tokens[0, -1] + 1) % VOCAB

    with torch.no_grad():
        before, after = model(tokens), model(changed)

    torch.testing.assert_close(before[:, :-1], after[:, :-1])
    assert not torch.allclose(before[:, -1], after[:, -1])


def test_tied_lm_gradient_step_updates_the_shared_weight() -> None:
    torch.manual_seed(0)
    model = _build("tied_lm.yaml")
    hidden: list[torch.Tensor] = []
    model.norm.register_forward_hook(lambda module, args, out: hidden.append(out))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tokens = torch.randint(0, VOCAB // 2, (2, 7))  # ids >= 50 appear only as outputs

    logits = model(tokens)
    torch.testing.assert_close(logits, F.linear(hidden[-1], model.embed.weight))
    F.cross_entropy(logits.reshape(-1, VOCAB), tokens.reshape(-1)).backward()
    grad = model.embed.weight.grad
    assert grad is not None
    # Rows of tokens never looked up still get gradient: the head reads the same matrix.
    assert grad[VOCAB // 2 :].abs().sum() > 0
    before = model.embed.weight.detach().clone()
    optimizer.step()

    assert not torch.equal(model.embed.weight, before)
    assert len([p for p in model.parameters() if p.shape == (VOCAB, D_MODEL)]) == 1
    logits = model(tokens)
    torch.testing.assert_close(logits, F.linear(hidden[-1], model.embed.weight))
