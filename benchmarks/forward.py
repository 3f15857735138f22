"""Forward (and backward) of a built model against the same model written by hand.

Two sizes: one where Python overhead dominates (batch 1, width 32, 122 nodes), where any
cost the generated code adds per node would show, and a realistic one where the matrix
multiplications dominate. Both models hold the same weights and are checked to compute
the same output before anything is timed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from model_constructor import BuiltModel, build_model

from ._measure import Result, collect, compare, ms, ratio_result
from .models import ResidualMLP, residual_mlp_spec

EAGER_TARGET = 1.03
COMPILED_TARGET = 1.02
NOTE_TARGET = 1.01


@dataclass(frozen=True)
class Size:
    name: str
    width: int
    hidden: int
    depth: int
    shape: tuple[int, ...]
    # Timed calls per round, and rounds.
    number: int
    rounds: int

    @property
    def nodes(self) -> int:
        return 5 * self.depth + 2


def sizes(smoke: bool) -> list[Size]:
    if smoke:
        return [Size("overhead", 32, 128, 20, (1, 32), 2, 3), Size("realistic", 64, 256, 2, (2, 8, 64), 1, 3)]
    return [
        Size("overhead", 32, 128, 24, (1, 32), 20, 61),
        Size("realistic", 256, 1024, 6, (4, 64, 256), 2, 21),
    ]


def pair(size: Size) -> tuple[BuiltModel, nn.Module, torch.Tensor]:
    """The built model and the hand-written one, with the same weights; and an input."""
    torch.manual_seed(0)
    built = build_model(residual_mlp_spec(width=size.width, hidden=size.hidden, depth=size.depth))
    hand = ResidualMLP(width=size.width, hidden=size.hidden, depth=size.depth)
    hand.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(*size.shape)
    with torch.no_grad():
        if not torch.equal(built(x), hand(x)):
            raise AssertionError(f"{size.name}: the built and hand-written models disagree")
    return built, hand, x


def _inference(model: Callable[[torch.Tensor], object], x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def _training(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    return run


def eager(smoke: bool) -> list[Result]:
    results = []
    for size in sizes(smoke):
        built, hand, x = pair(size)
        # A second hand-written instance with the same weights, at the overhead size: how far
        # apart two copies of one model time here (instance placement, noise), to read the
        # built/hand ratios against.
        twin = copy.deepcopy(hand) if size.name == "overhead" else None
        label = f"{size.name}: {size.nodes} nodes, input {tuple(size.shape)}"
        for mode, make in (("no_grad", _inference), ("fwd+bwd", _training)):
            collect()
            comparison = compare(
                make(built, x), make(hand, x), rounds=size.rounds, number=size.number, warmup=2
            )
            results.append(ratio_result(f"eager {mode}, built / hand ({label})", comparison, EAGER_TARGET))
            if twin is not None:
                floor = compare(
                    make(twin, x), make(hand, x), rounds=size.rounds, number=size.number, warmup=2
                )
                results.append(
                    Result(
                        f"eager {mode}, hand / a second hand instance (noise floor)",
                        f"{floor.ratio:.3f}x",
                        detail=f"{ms(floor.a)} vs {ms(floor.b)} per call, {floor.rounds} rounds",
                    )
                )
    return results


def noted_call(smoke: bool) -> list[Result]:
    """The generated forward runs inside a wrapper that names the YAML node of an exception
    (NOTE: [Noted forward] in model.py); `__wrapped__` is the generated forward alone."""
    size = sizes(smoke)[0]
    built, _, x = pair(size)
    generated = type(built).forward.__wrapped__  # type: ignore[attr-defined]

    def noted() -> object:
        with torch.no_grad():
            return built.forward(x)

    def bare() -> object:
        with torch.no_grad():
            return generated(built, x)

    comparison = compare(noted, bare, rounds=size.rounds, number=size.number, warmup=2)
    return [
        ratio_result(
            f"runtime note wrapper: forward / generated forward alone ({size.nodes} nodes)",
            comparison,
            NOTE_TARGET,
        )
    ]


def compiled(smoke: bool) -> list[Result]:
    """torch.compile(fullgraph=True): no graph break, and the same speed as the compiled hand-written model.

    Smoke mode compiles with the `eager` backend: it checks that Dynamo traces the whole
    model without a break, without waiting for Inductor.
    """
    import torch._dynamo

    size = sizes(smoke)[0]
    built, hand, x = pair(size)
    built.eval()
    hand.eval()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(built)(x)
    breaks = explanation.graph_break_count
    results = [
        Result(
            f"torch.compile graph breaks ({size.nodes} nodes)",
            str(breaks),
            "0",
            breaks == 0,
            f"{explanation.graph_count} graph(s), {explanation.op_count} ops",
        )
    ]
    backend = "eager" if smoke else "inductor"
    torch._dynamo.reset()
    # A second hand-written instance, same weights: how far apart two compiled copies of the
    # same model time here, the noise floor the built/hand ratio is read against.
    twin = copy.deepcopy(hand)
    built_c, hand_c, twin_c = (torch.compile(m, fullgraph=True, backend=backend) for m in (built, hand, twin))
    with torch.no_grad():
        expected = hand(x)
        for compiled_model in (built_c, hand_c, twin_c):
            torch.testing.assert_close(compiled_model(x), expected)
    collect()
    # Many short rounds: a compiled call takes about 270 us and the target is 2%.
    rounds, number = (size.rounds, size.number) if smoke else (201, 20)
    comparison = compare(
        _inference(built_c, x), _inference(hand_c, x), rounds=rounds, number=number, warmup=3
    )
    floor = compare(_inference(twin_c, x), _inference(hand_c, x), rounds=rounds, number=number, warmup=3)
    results.append(
        ratio_result(
            f"compiled ({backend}) no_grad, built / hand ({size.nodes} nodes)", comparison, COMPILED_TARGET
        )
    )
    results.append(
        Result(
            f"compiled ({backend}) no_grad, hand / a second hand instance (noise floor)",
            f"{floor.ratio:.3f}x",
            detail=f"{ms(floor.a)} vs {ms(floor.b)} per call, {floor.rounds} rounds",
        )
    )
    return results
