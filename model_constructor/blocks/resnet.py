"""`model_constructor.resnet_basic_block`: the two-convolution residual block of ResNet-18/34.

Built from `ConvNormAct` so that its state_dict keys read like the rest of a CNN built from
these blocks: `conv1.conv.weight`, `conv1.norm.running_var`, `shortcut.conv.weight`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry
from .conv import ConvNormAct


class ResNetBasicBlock(nn.Module):
    """ResNet basic block: relu(conv2(conv1(x)) + shortcut(x)).

    conv1 is a 3x3 ConvNormAct with ReLU and the block's stride; conv2 a 3x3 ConvNormAct with
    no activation. The shortcut is a 1x1 ConvNormAct projection (no activation) when stride
    is not 1 or the channels change, and the identity otherwise.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: stride of conv1 and of the projection; 2 halves the spatial size.
    """

    def __init__(self, *, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(
            in_channels=in_channels, out_channels=out_channels, kernel_size=3, stride=stride
        )
        self.conv2 = ConvNormAct(
            in_channels=out_channels, out_channels=out_channels, kernel_size=3, activation=nn.Identity()
        )
        self.shortcut: nn.Module = (
            ConvNormAct(
                in_channels=in_channels,
                out_channels=out_channels,
                kernel_size=1,
                stride=stride,
                activation=nn.Identity(),
            )
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.conv2(self.conv1(x)) + self.shortcut(x))
        return out


def register(registry: Registry) -> None:
    registry.register_module(
        "model_constructor.resnet_basic_block", ResNetBasicBlock, signature_policy="strict"
    )
