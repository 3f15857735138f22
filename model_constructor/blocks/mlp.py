"""`model_constructor.mlp`: the two-layer feed-forward block of transformers and MLP-Mixers.

Submodule names follow timm's `Mlp` (`fc1`, `act`, `fc2`), the names most checkpoints of
such blocks already use, so that weights move between the two by renaming nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry


class MLP(nn.Module):
    """Two linear layers with an activation between: fc1, act, drop1, fc2, drop2.

    Args:
        in_features: width of the input's last dimension.
        hidden_features: width between the two linear layers.
        out_features: width of the output; in_features when omitted.
        activation: the activation, as a block spec such as {_type_: nn.ReLU}; nn.GELU when omitted.
        dropout: dropout probability after the activation and after fc2.
        bias: whether both linear layers have a bias.
    """

    def __init__(
        self,
        *,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        activation: nn.Module | None = None,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        out_features = in_features if out_features is None else out_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU() if activation is None else activation
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.act(self.fc1(x)))
        out: torch.Tensor = self.drop2(self.fc2(x))
        return out


def register(registry: Registry) -> None:
    registry.register_module("model_constructor.mlp", MLP, signature_policy="strict")
