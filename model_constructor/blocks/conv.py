"""`model_constructor.conv_norm_act`: Conv2d, BatchNorm2d and an activation, the unit of most CNNs.

Named submodules (`conv`, `norm`, `act`) rather than an `nn.Sequential`, so state_dict keys
say what they hold (`stem.conv.weight`, `stem.norm.running_mean`) and do not renumber when
the norm is switched off.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


class ConvNormAct(nn.Module):
    """A 2d convolution, then BatchNorm2d, then an activation.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: convolution kernel size, one int or [height, width].
        stride: convolution stride, one int or [height, width].
        padding: zero padding, one int or [height, width]; kernel_size // 2 when omitted,
            which keeps the spatial size at stride 1 for odd kernels.
        groups: convolution groups; in_channels and out_channels must be divisible by it.
        norm: whether a BatchNorm2d follows the convolution. The convolution has a bias only
            when there is no norm (the norm's shift makes a bias redundant).
        activation: the activation, as a block spec such as {_type_: nn.SiLU}; nn.ReLU when
            omitted. Write {_type_: nn.Identity} for none.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        norm: bool = True,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        kernel = _pair(kernel_size)
        if padding is None:
            padding = (kernel[0] // 2, kernel[1] // 2)
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=not norm,
        )
        self.norm: nn.Module = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.act = nn.ReLU() if activation is None else activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.norm(self.conv(x)))
        return out


def register(registry: Registry) -> None:
    registry.register_module("model_constructor.conv_norm_act", ConvNormAct, signature_policy="strict")
