"""Peak activation memory of the generated forward against the hand-written one.

The generated code drops each intermediate after its last use (`h1 = None`), as a
hand-written forward does by rebinding `x`. We check that by measuring, not by reading the
code: torch's profiler records every CPU allocation and free with its size
(`profile_memory=True`), and the peak of their running sum during one forward is the peak
memory that forward needed beyond its inputs and weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from ._measure import Result
from .forward import Size, pair

MEMORY_TARGET = 1.1


def peak_bytes(run: Callable[[], object]) -> int:
    """The peak of CPU memory allocated and not yet freed while `run` runs, in bytes."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def activations(smoke: bool) -> list[Result]:
    size = (
        Size("memory", 64, 256, 2, (2, 16, 64), 1, 1)
        if smoke
        else Size("memory", 256, 1024, 6, (8, 64, 256), 1, 1)
    )
    built, hand, x = pair(size)
    results = []

    def inference(model: torch.nn.Module) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad():
                model(x)

        return run

    def training(model: torch.nn.Module) -> Callable[[], object]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()

        return run

    for mode, make in (("no_grad forward", inference), ("forward+backward", training)):
        make(built)()  # warm up: allocations that happen once (grads) are not the forward's
        make(hand)()
        built_peak, hand_peak = peak_bytes(make(built)), peak_bytes(make(hand))
        ratio = built_peak / hand_peak
        results.append(
            Result(
                f"peak activation memory, {mode}, built / hand ({size.nodes} nodes, input {size.shape})",
                f"{ratio:.3f}x",
                f"<= {MEMORY_TARGET:g}x",
                ratio <= MEMORY_TARGET,
                f"{built_peak / 2**20:.2f} MiB vs {hand_peak / 2**20:.2f} MiB",
            )
        )
    return results
