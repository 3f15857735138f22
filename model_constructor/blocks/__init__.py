"""Built-in blocks, under keys that start with `model_constructor.`.

A spec reaches them with `imports: [model_constructor.blocks]` (every block) or one module
such as `imports: [model_constructor.blocks.mlp]`. They are not in the registry's built-ins
(which are `torch.nn` and curated functions only), so every key a spec can use is visible in
its own `imports`. How to write a block like these: `README.md` in this directory.
"""

from __future__ import annotations

from ..registry import Registry
from . import conv, mlp, residual, resnet, transformer
from .conv import ConvNormAct
from .mlp import MLP
from .residual import Residual
from .resnet import ResNetBasicBlock
from .transformer import TransformerEncoderLayer

__all__ = [
    "MLP",
    "ConvNormAct",
    "ResNetBasicBlock",
    "Residual",
    "TransformerEncoderLayer",
    "register",
]


def register(registry: Registry) -> None:
    """Register every built-in block."""
    for module in (conv, mlp, residual, resnet, transformer):
        module.register(registry)
