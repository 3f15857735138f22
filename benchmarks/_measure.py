"""Side-by-side timing and the result table.

NOTE: [Interleaved ratios]
This machine is shared: other processes take the CPU for seconds at a time, so two
timings taken one after the other can differ by 2x for the same code. Every comparison
therefore runs its two sides alternately in one process, a round of A and B in a shuffled
order (so neither side always runs second), and reports the median over rounds of the
ratio A/B. Noise that lasts longer than a round hits both sides of that
round alike and cancels in its ratio; the median drops the rounds it did not.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    """The median ratio a/b over rounds, and each side's median time per call in seconds."""

    ratio: float
    a: float
    b: float
    rounds: int


def interleave(
    functions: Sequence[Callable[[], object]],
    *,
    rounds: int,
    number: int = 1,
    warmup: int = 1,
    fresh_heap: bool = False,
) -> list[list[float]]:
    """Per function, its time per call in each round; see NOTE: [Interleaved ratios].

    Each round runs every function `number` times, in a shuffled order (seeded, so runs
    are repeatable): with a fixed alternation, interference that recurs with the period of
    a round could land on the same side every time. `fresh_heap`: see NOTE: [Full collections].
    """
    for _ in range(warmup):
        for function in functions:
            function()
    times: list[list[float]] = [[] for _ in functions]
    shuffler = random.Random(0)
    order = list(range(len(functions)))
    for _ in range(rounds):
        shuffler.shuffle(order)
        for position in order:
            function = functions[position]
            if fresh_heap:
                gc.collect()  # untimed: NOTE: [Full collections]
            start = time.perf_counter()
            for _ in range(number):
                function()
            times[position].append((time.perf_counter() - start) / number)
    return times


def compare(
    a: Callable[[], object],
    b: Callable[[], object],
    *,
    rounds: int,
    number: int = 1,
    warmup: int = 1,
    fresh_heap: bool = False,
) -> Comparison:
    """Time `a` and `b` alternately; the median of the per-round ratios a/b."""
    times_a, times_b = interleave([a, b], rounds=rounds, number=number, warmup=warmup, fresh_heap=fresh_heap)
    ratios = [ta / tb for ta, tb in zip(times_a, times_b, strict=True)]
    return Comparison(
        statistics.median(ratios), statistics.median(times_a), statistics.median(times_b), rounds
    )


# NOTE: [Full collections]
# Every tenth young-and-middle collection may become a full one, which walks every object in
# the process (torch's 280,000 and more: 90 ms or more, twice a build). Which timed call
# triggers it depends on everything run before, not on the call: a parse run with the
# collector on, or a few kept models, made the next build from a dict take 170 ms instead of
# 80, whichever side it fell on. Sides that allocate that much (the builds and parses) are
# therefore timed from a fully collected heap (`fresh_heap`), and each still pays for its own
# garbage (`settled`).


def settled(function: Callable[[], object]) -> Callable[[], object]:
    """`function`, then a young collection, timed together.

    The library pauses the cyclic collector while it builds (NOTE: [GC during a build] in
    build.py), so the objects it made are collected at the next young collection: whatever
    runs next would pay for them. Timed sides that allocate much end with that collection
    themselves, so each pays for its own garbage.
    """

    def run() -> object:
        result = function()
        gc.collect(1)
        return result

    return run


def median_time(function: Callable[[], object], *, rounds: int, number: int = 1) -> float:
    """The median time per call of `function`, in seconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def collect() -> None:
    """A full collection, so one side's garbage is not collected on the other side's clock."""
    gc.collect()


@dataclass(frozen=True)
class Result:
    """One line of the table: a measured value beside its target."""

    name: str
    value: str
    target: str = ""
    # None: informational, nothing to meet. False: the target was missed.
    ok: bool | None = None
    detail: str = ""

    @property
    def status(self) -> str:
        return {None: "", True: "ok", False: "MISSED"}[self.ok]


def ratio_result(name: str, comparison: Comparison, limit: float, detail: str = "") -> Result:
    """A 'median ratio <= limit' line."""
    return Result(
        name,
        f"{comparison.ratio:.3f}x",
        f"<= {limit:g}x",
        comparison.ratio <= limit,
        detail or f"{_ms(comparison.a)} vs {_ms(comparison.b)} per call, {comparison.rounds} rounds",
    )


def _ms(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.1f} ms"


def ms(seconds: float) -> str:
    return _ms(seconds)


def table(results: list[Result], *, markdown: bool = False) -> str:
    """The results as an aligned text table, or a Markdown table for docs/performance.md."""
    header = ("measurement", "result", "target", "", "detail")
    rows = [(r.name, r.value, r.target, r.status, r.detail) for r in results]
    if markdown:
        lines = ["| " + " | ".join(header[:3]) + " | met | detail |", "| --- | --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    out = []
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        out.append("  ".join([*cells, row[4]]).rstrip())
    return "\n".join(out)
