"""`python -m benchmarks [--smoke] [--only NAME ...] [--markdown] [--strict]`: see __init__.py."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable

import torch

from . import building, forward, imports, memory
from ._measure import Result, table

# Name -> the measurements it runs; each takes `smoke` and returns table lines, in this order.
# torch.compile runs last: it leaves the process with twice the objects, scattered, and
# Python-heavy code after it runs 10 to 50% slower (measured: our build 70 -> 83 ms, the
# hand-written modules 50 -> 57 ms). Builds are timed as a program runs them, before any
# compile; docs/performance.md gives the figures after one too (`--only compile build`).
SUITES: dict[str, list[Callable[[bool], list[Result]]]] = {
    "forward": [forward.eager, forward.noted_call],
    "build": [building.build, building.meta_storage],
    "validate": [building.validation],
    "memory": [memory.activations],
    "import": [imports.import_time],
    "compile": [forward.compiled],
}


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{datetime.date.today()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: check that all runs")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITES), help="run only these suites")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)

    # One thread: on a shared 2-core machine a second thread mostly measures the neighbours.
    torch.set_num_threads(1)
    # The specs warn about nothing, but Dynamo and the profiler do; they are not results.
    warnings.filterwarnings("ignore")
    print(f"# {machine()}", flush=True)
    start = time.perf_counter()
    results: list[Result] = []
    for name in args.only or SUITES:
        for measure in SUITES[name]:
            begun = time.perf_counter()
            found = measure(args.smoke)
            results += found
            if not args.markdown and not args.smoke:
                print(
                    table(found),
                    f"\n  ({measure.__module__}.{measure.__name__}: {time.perf_counter() - begun:.0f} s)\n",
                    flush=True,
                )
    if args.smoke:  # tiny sizes and one round measure nothing: show no verdicts
        results = [dataclasses.replace(r, ok=None) for r in results]
    print(table(results, markdown=args.markdown))
    missed = [r.name for r in results if r.ok is False]
    if args.smoke:
        verdict = "smoke mode: timings not judged"
    else:
        verdict = f"targets missed: {'; '.join(missed)}" if missed else "every target met"
    print(f"\n{len(results)} measurements in {time.perf_counter() - start:.0f} s; {verdict}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
