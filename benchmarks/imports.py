"""What `import model_constructor` adds to `import torch`, in fresh interpreters.

Each run is a new process that imports torch, then times, one after the other, importing the
package, reaching `build_model` and building the seed example
(`examples/seed/configs/models/my_model.yaml`): the package's cost on top of torch, which
every user pays anyway, with nothing cached in `sys.modules`. The median of several runs is
reported. `import model_constructor` alone loads almost nothing (NOTE: [Lazy public names] in
`model_constructor/__init__.py`), so the lines after it say what a program that builds a
model pays.

NOTE: [Import after torch]
`import torch` leaves Python's cyclic collector one young collection short of a full one
(its generation counts read (232, 7, 9) against thresholds (700, 10, 10)), so the first
few thousand objects anything allocates next trigger a full pass over torch's ~170,000
objects: 70 to 200 ms here, whichever import or statement comes first. We report the
package's own cost, with that pass done before the clock starts (`gc.collect()`), and
beside it what a user sees when the package happens to be what trips it.

NOTE: [Cached bytecode]
The runs import the package from cached bytecode, as an installed package is (pip compiles
it at install time), so PYTHONDONTWRITEBYTECODE is dropped from their environment and a first,
untimed run writes `__pycache__` (ignored by git). With that variable set, a source checkout
compiles every module on every import instead; that cost is reported on its own line's
detail: it was 28 of the 95 ms first measured here.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ._measure import Result

IMPORT_TARGET_MS = 50.0
ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed"

# Prints four lines: the time of each step, in seconds, then the package's files that
# `build_model` needed imported.
_TIMED = """
import gc, sys, time, torch
sys.path.insert(0, {blocks!r})
{settle}
start = time.perf_counter()
import model_constructor
imported = time.perf_counter()
from model_constructor import build_model
reached = time.perf_counter()
files = sorted(m.__file__ for n, m in sys.modules.items() if n.startswith("model_constructor"))
begun = time.perf_counter()
build_model({spec!r})
built = time.perf_counter()
print(imported - start, reached - imported, built - begun, sep="\\n")
print(*files)
"""


def _run(settle: bool) -> tuple[list[float], list[str]]:
    """The time of each step in ms, and the package's files that `build_model` needed."""
    code = _TIMED.format(
        blocks=str(SEED),
        spec=str(SEED / "configs" / "models" / "my_model.yaml"),
        settle="gc.collect()" if settle else "",
    )
    # See NOTE: [Cached bytecode].
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    *times, files = out.stdout.strip().splitlines()[-4:]
    return [float(t) * 1e3 for t in times], files.split()


def _compile_ms(files: list[str]) -> float:
    """What compiling `files` from source takes, in ms: the median of 5 rounds."""
    sources = [(Path(file).read_text(encoding="utf-8"), file) for file in files]
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for source, file in sources:
            compile(source, file, "exec")
        rounds.append((time.perf_counter() - start) * 1e3)
    return statistics.median(rounds)


def import_time(smoke: bool) -> list[Result]:
    runs = 1 if smoke else 7
    _, files = _run(settle=True)  # untimed: caches the bytecode
    settled = [_run(settle=True)[0] for _ in range(runs)]
    tripped = [_run(settle=False)[0] for _ in range(0 if smoke else runs)]
    # Each line is a median of totals; the steps' medians need not add up to it.
    imported = statistics.median(t[0] for t in settled)
    reached = statistics.median(t[0] + t[1] for t in settled)
    built = statistics.median(sum(t) for t in settled)
    first_build = statistics.median(t[2] for t in settled)
    seen = f"{statistics.median(t[0] + t[1] for t in tripped):.0f} ms" if tripped else "not measured"
    compiled = _compile_ms(files)

    return [
        Result(
            "import model_constructor after import torch",
            f"{imported:.1f} ms",
            f"<= {IMPORT_TARGET_MS:g} ms",
            imported <= IMPORT_TARGET_MS,
            f"median of {runs} fresh interpreters; public names load on first use "
            "(NOTE: [Lazy public names]), so see the next lines",
        ),
        Result(
            "from model_constructor import build_model, after import torch",
            f"{reached:.0f} ms",
            "",
            None,
            f"{seen} when it also trips the full GC pass torch's import leaves due "
            f"(NOTE: [Import after torch]); +{compiled:.0f} ms to compile its {len(files)} modules "
            "where bytecode is not cached (NOTE: [Cached bytecode])",
        ),
        Result(
            "import + first build_model of the seed example, after import torch",
            f"{built:.0f} ms",
            "",
            None,
            f"the first build alone {first_build:.0f} ms",
        ),
    ]
