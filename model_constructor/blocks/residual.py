"""`model_constructor.residual`: `x + scale * block(x)` around any block.

The wrapped block is a constructor argument (a nested block spec in YAML) rather than a
graph pattern, so a residual branch is one module in the spec and one prefix in the
state_dict: `res.block.fc1.weight`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry


class Residual(nn.Module):
    """Adds a block's output to its input: x + scale * block(x).

    Args:
        block: the wrapped block, as a block spec such as {_type_: model_constructor.mlp, ...};
            its output must have the shape of its input.
        scale: factor applied to the block's output before the add (1.0: a plain residual).
    """

    def __init__(self, *, block: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.block = block
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x)
        if self.scale != 1.0:
            out = out * self.scale
        return x + out

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def register(registry: Registry) -> None:
    registry.register_module("model_constructor.residual", Residual, signature_policy="strict")
