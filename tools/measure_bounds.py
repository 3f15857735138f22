"""Time how long each resource bound takes to refuse its spec (figures for docs/reliability.md).

    python tools/measure_bounds.py [--repeat 3]

tests/test_bounds.py asserts what each case reports; it asserts no time, since CI machines
are noisy. This prints the median wall-clock time of `load_spec` (or `build_model`) per case.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_constructor import SpecError, build_model, load_spec

GRAPH = (
    "model:\n  graph:\n    inputs: [x]\n    nodes:\n      h1: {call: method:relu, args: [$x]}\n"
    "    outputs: [$h1]\n"
)


def laughs() -> str:
    lines = ["schema_version: 1", "params:", "  l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n" + GRAPH


def flow(opening: str, closing: str) -> str:
    return f"schema_version: 1\nparams: {{a: {opening * 100_000}1{closing * 100_000}}}\n" + GRAPH


def chain(count: int) -> str:
    nodes = "\n".join(
        f"      n{i}: {{call: method:relu, args: [{'$x' if i == 0 else f'$n{i - 1}'}]}}" for i in range(count)
    )
    header = "schema_version: 1\nmodel:\n  graph:\n    inputs: [x]\n    nodes:\n"
    return f"{header}{nodes}\n    outputs: [$n{count - 1}]\n"


def nested_graphs(levels: int, width: int) -> str:
    lines = ["schema_version: 1", "model:", "  graphs:", "    g0:", "      inputs: [x]"]
    lines += ["      modules: {l: {_type_: nn.Identity}}", "      nodes: {o: {call: module:l, args: [$x]}}"]
    lines += ["      outputs: [$o]"]
    for i in range(1, levels + 1):
        modules = ", ".join(f"m{j}: {{_type_: 'graph:g{i - 1}'}}" for j in range(width))
        nodes = ", ".join(
            f"n{j}: {{call: module:m{j}, args: [{'$x' if j == 0 else f'$n{j - 1}'}]}}" for j in range(width)
        )
        lines += [f"    g{i}:", "      inputs: [x]", f"      modules: {{{modules}}}"]
        lines += [f"      nodes: {{{nodes}}}", f"      outputs: [$n{width - 1}]"]
    lines += ["  graph:", "    inputs: [x]", f"    modules: {{top: {{_type_: 'graph:g{levels}'}}}}"]
    lines += ["    nodes: {y: {call: module:top, args: [$x]}}", "    outputs: [$y]"]
    return "\n".join(lines) + "\n"


def deep_python(depth: int) -> dict[str, Any]:
    root: list[Any] = []
    inner = root
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    graph = {"inputs": ["x"], "nodes": {"h": {"call": "method:relu", "args": ["$x"]}}, "outputs": ["$h"]}
    return {"schema_version": 1, "params": {"a": root}, "model": {"graph": graph}}


CASES: dict[str, tuple[str | dict[str, Any], Callable[..., Any]]] = {
    "alias expansion (10**9 values)": (laughs(), load_spec),
    "flow sequence 100,000 deep": (flow("[", "]"), load_spec),
    "flow mapping 100,000 deep": (flow("{a: ", "}"), load_spec),
    "power tower ${2 ** 2 ** 40}": ("schema_version: 1\nparams:\n  n: ${2 ** 2 ** 40}\n" + GRAPH, load_spec),
    "string repetition ${params.s * 100000}": (
        "schema_version: 1\nparams:\n  s: ab\n  t: ${params.s * 100000}\n" + GRAPH,
        load_spec,
    ),
    "interpolated strings (18 MB)": (
        f"schema_version: 1\nparams:\n  s: {'x' * 9000}\n  t: '{'${params.s}' * 2000}'\n" + GRAPH,
        load_spec,
    ),
    "Python dict 100,000 deep": (deep_python(100_000), load_spec),
    "sub-graphs 10**10 instances": (nested_graphs(10, 10), load_spec),
    "chain of 10,000 nodes (builds)": (chain(10_000), build_model),
    "20,000 faults on one line": (
        "{schema_version: 1, " + ", ".join(f"k{i}: 1" for i in range(20_000)) + "}\n",
        load_spec,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    file_size = folder / "huge.yaml"
    with file_size.open("wb") as out:
        out.truncate(16 * 1024 * 1024 + 1)
    CASES["file over 16 MiB"] = (str(file_size), load_spec)
    for name, (source, run) in CASES.items():
        if isinstance(source, str) and not source.endswith(".yaml"):
            path = folder / "spec.yaml"
            path.write_text(source)
            source = str(path)
        times, outcome = [], ""
        for _ in range(args.repeat):
            start = time.perf_counter()
            try:
                run(source)
                outcome = "built"
            except SpecError as exc:
                outcome = exc.diagnostics[0].message[:70]
            times.append(time.perf_counter() - start)
        print(f"{name:40} {statistics.median(times):7.3f} s  {outcome}")


if __name__ == "__main__":
    main()
