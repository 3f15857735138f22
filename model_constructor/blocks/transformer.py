"""`model_constructor.transformer_encoder_layer`: a transformer encoder layer, pre- or post-norm.

`nn.TransformerEncoderLayer` is reachable too, but its constructor is positional, its
`activation` is typed `str | Callable` (so any string passes the check and fails only when
constructed), and its forward switches to a fused kernel in some eval-mode cases. This block
is the plain computation, keyword-only and strictly typed, with the same submodule names
(`self_attn`, `linear1`, `dropout`, `linear2`, `norm1`, `norm2`, `dropout1`, `dropout2`), so
state_dicts move between the two with `strict=True`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu, "gelu": F.gelu}


class TransformerEncoderLayer(nn.Module):
    """Self-attention then a feed-forward network, each with a residual add and a LayerNorm.

    Computes what torch.nn.TransformerEncoderLayer computes, with the same state_dict keys.

    Args:
        d_model: width of the input's last dimension.
        nhead: number of attention heads; must divide d_model.
        dim_feedforward: width of the feed-forward hidden layer.
        dropout: dropout probability in attention, after the activation and before each add.
        activation: activation of the feed-forward network: "relu" or "gelu".
        layer_norm_eps: epsilon of both LayerNorms.
        batch_first: inputs are (batch, seq, d_model) when true, (seq, batch, d_model) when false.
        norm_first: pre-norm (LayerNorm before attention and feed-forward) when true,
            post-norm (LayerNorm after each residual add) when false.
        bias: whether the linear layers, attention projections and LayerNorms have biases.
    """

    def __init__(
        self,
        *,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Literal["relu", "gelu"] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first
        self.activation_name = activation
        self.activation = _ACTIVATIONS[activation]

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        x = src
        if self.norm_first:
            x = x + self._attention(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._feed_forward(self.norm2(x))
        else:
            x = self.norm1(x + self._attention(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._feed_forward(x))
        return x

    def _attention(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        out, _ = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
        )
        dropped: torch.Tensor = self.dropout1(out)
        return dropped

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        dropped: torch.Tensor = self.dropout2(x)
        return dropped

    def extra_repr(self) -> str:
        return f"activation={self.activation_name!r}, norm_first={self.norm_first}"


def register(registry: Registry) -> None:
    registry.register_module(
        "model_constructor.transformer_encoder_layer", TransformerEncoderLayer, signature_policy="strict"
    )
