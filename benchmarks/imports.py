"""What `import model_constructor` adds to `import torch`, in fresh interpreters.

Each run is a new process that imports torch, then times importing the package: the
package's cost on top of torch, which every user pays anyway, with nothing cached in
`sys.modules`. The median of several runs is reported.

NOTE: [Import after torch]
`import torch` leaves Python's cyclic collector one young collection short of a full one
(its generation counts read (232, 7, 9) against thresholds (700, 10, 10)), so the first
few thousand objects anything allocates next trigger a full pass over torch's ~170,000
objects: 70 to 200 ms here, whichever import or statement comes first. We report the
package's own cost, with that pass done before the clock starts (`gc.collect()`), and
beside it what a user sees when the package happens to be what trips it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from ._measure import Result

IMPORT_TARGET_MS = 50.0
ROOT = Path(__file__).resolve().parent.parent

_TIMED = """
import gc, time, torch
{settle}
start = time.perf_counter()
import model_constructor
print(time.perf_counter() - start)
"""


def _time_import(settle: bool) -> float:
    code = _TIMED.format(settle="gc.collect()" if settle else "")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1]) * 1e3


def import_time(smoke: bool) -> list[Result]:
    runs = 1 if smoke else 7
    own: list[float] = []
    seen: list[float] = []
    for _ in range(runs):
        own.append(_time_import(settle=True))
        if not smoke:
            seen.append(_time_import(settle=False))
    added = statistics.median(own)
    tripped = f"{statistics.median(seen):.0f} ms" if seen else "not measured"

    return [
        Result(
            "import model_constructor after import torch",
            f"{added:.0f} ms",
            f"<= {IMPORT_TARGET_MS:g} ms",
            added <= IMPORT_TARGET_MS,
            f"median of {runs} fresh interpreters; {tripped} when it also "
            "trips the full GC pass torch's import leaves due (NOTE: [Import after torch])",
        )
    ]
