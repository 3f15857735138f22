"""The models the benchmarks compare: each spec beside the same model written by hand.

Every pair has the same submodules under the same names, so one state_dict loads into both
with `strict=True`, and the benchmarks check that both compute the same output before they
time anything: a ratio between two different computations would mean nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# ---- residual MLP: the forward benchmarks ------------------------------------------------------


def residual_mlp_spec(*, width: int, hidden: int, depth: int) -> dict[str, Any]:
    """A pre-norm residual MLP: `depth` copies of a sub-graph (5 nodes each), then norm and head.

    It uses what real specs use: a sub-graph (`model.graphs.block`), `_repeat_`, interpolation
    and a registered function (`fn:torch.add`). `5 * depth + 2` nodes run per forward.
    """
    linear = "nn.Linear"
    return {
        "schema_version": 1,
        "params": {"width": width, "hidden": hidden, "depth": depth},
        "model": {
            "graphs": {
                "block": {
                    "args": {"width": "int", "hidden": "int"},
                    "inputs": ["x"],
                    "modules": {
                        "norm": {"_type_": "nn.LayerNorm", "normalized_shape": "${args.width}"},
                        "fc1": {
                            "_type_": linear,
                            "in_features": "${args.width}",
                            "out_features": "${args.hidden}",
                        },
                        "act": {"_type_": "nn.GELU"},
                        "fc2": {
                            "_type_": linear,
                            "in_features": "${args.hidden}",
                            "out_features": "${args.width}",
                        },
                    },
                    "nodes": {
                        "h1": {"call": "module:norm", "args": ["$x"]},
                        "h2": {"call": "module:fc1", "args": ["$h1"]},
                        "h3": {"call": "module:act", "args": ["$h2"]},
                        "h4": {"call": "module:fc2", "args": ["$h3"]},
                        "out": {"call": "fn:torch.add", "args": ["$x", "$h4"]},
                    },
                    "outputs": ["$out"],
                }
            },
            "graph": {
                "inputs": ["x"],
                "modules": {
                    "layers": {
                        "_type_": "graph:block",
                        "_repeat_": "${params.depth}",
                        "width": "${params.width}",
                        "hidden": "${params.hidden}",
                    },
                    "norm": {"_type_": "nn.LayerNorm", "normalized_shape": "${params.width}"},
                    "head": {
                        "_type_": linear,
                        "in_features": "${params.width}",
                        "out_features": "${params.width}",
                    },
                },
                "nodes": {
                    "h": {"call": "module:layers", "args": ["$x"]},
                    "n": {"call": "module:norm", "args": ["$h"]},
                    "y": {"call": "module:head", "args": ["$n"]},
                },
                "outputs": ["$y"],
            },
        },
    }


class Block(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, self.fc2(self.act(self.fc1(self.norm(x)))))


class ResidualMLP(nn.Module):
    """`residual_mlp_spec` written by hand, the way one would write it without a spec."""

    def __init__(self, *, width: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(width, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))  # type: ignore[no-any-return]


# ---- a chain of Linear layers: the build benchmarks ---------------------------------------------


def chain_spec_text(count: int, width: int) -> str:
    """`count` modules and `count` nodes, one line each: the spec file of the build benchmarks."""
    lines = [
        "schema_version: 1",
        f"params: {{width: {width}}}",
        "model:",
        "  graph:",
        "    inputs: [x]",
        "    modules:",
    ]
    lines += [
        f"      l{i}: {{_type_: nn.Linear, in_features: ${{params.width}}, out_features: ${{params.width}}}}"
        for i in range(count)
    ]
    lines.append("    nodes:")
    lines += [f"      n{i}: {{call: module:l{i}, args: [{_previous(i)}]}}" for i in range(count)]
    lines.append(f"    outputs: [$n{count - 1}]")
    return "\n".join(lines) + "\n"


def chain_spec(count: int, width: int, *, distinct: bool = False) -> dict[str, Any]:
    """The same spec as `chain_spec_text`, as Python data.

    `distinct=True` gives every module arguments of its own (`l{i}` maps width + i features
    to width + i + 1), written as literals: no two blocks validate the same arguments, so
    nothing the check stage learns from one module serves another.
    """
    interpolated = "${params.width}"

    def module(i: int) -> dict[str, Any]:
        if distinct:
            return {"_type_": "nn.Linear", "in_features": width + i, "out_features": width + i + 1}
        return {"_type_": "nn.Linear", "in_features": interpolated, "out_features": interpolated}

    return {
        "schema_version": 1,
        "params": {"width": width},
        "model": {
            "graph": {
                "inputs": ["x"],
                "modules": {f"l{i}": module(i) for i in range(count)},
                "nodes": {f"n{i}": {"call": f"module:l{i}", "args": [_previous(i)]} for i in range(count)},
                "outputs": [f"$n{count - 1}"],
            }
        },
    }


def _previous(index: int) -> str:
    return "$x" if index == 0 else f"$n{index - 1}"


class Chain(nn.Module):
    """`chain_spec` by hand: the same modules, constructed in Python."""

    def __init__(
        self, count: int, width: int, device: torch.device | str | None = None, *, distinct: bool = False
    ) -> None:
        super().__init__()
        for i in range(count):
            size = (width + i, width + i + 1) if distinct else (width, width)
            setattr(self, f"l{i}", nn.Linear(*size, device=device))
        self.count = count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.count):
            x = getattr(self, f"l{i}")(x)
        return x


def hydra_chain_config(count: int, width: int, device: str) -> dict[str, Any]:
    """`chain_spec`'s modules as a Hydra config: `_target_` per module, `${width}` interpolated."""
    return {
        "width": width,
        "modules": {
            f"l{i}": {
                "_target_": "torch.nn.Linear",
                "in_features": "${width}",
                "out_features": "${width}",
                "device": device,
            }
            for i in range(count)
        },
    }
