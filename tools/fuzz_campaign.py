"""Run a long fuzz campaign of tests/test_fuzz.py on every core, and total its figures.

    python tools/fuzz_campaign.py --examples 25000 --jobs 2 --out fuzz-campaign

Each job is one pytest process with the "campaign" hypothesis profile and its own seed, so
the jobs explore different inputs. With `--record`, an escape is written to
`OUT/escapes.jsonl` and the run goes on; without it, the first escape fails its test (and
hypothesis shrinks it to a minimal example). The totals printed at the end are the figures
recorded in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=25_000, help="examples per test and job")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("fuzz-campaign"))
    parser.add_argument("--seed", type=int, default=int(time.time()), help="seed of the first job")
    parser.add_argument("--record", action="store_true", help="record escapes instead of failing")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    stats, escapes = args.out / "stats.jsonl", args.out / "escapes.jsonl"
    env = {
        **os.environ,
        "HYPOTHESIS_PROFILE": "campaign",
        "MC_FUZZ_EXAMPLES": str(args.examples),
        "MC_FUZZ_STATS": str(stats.resolve()),
    }
    if args.record:
        env["MC_FUZZ_RECORD"] = str(escapes.resolve())
    start = time.monotonic()
    jobs = []
    for index in range(args.jobs):
        log = open(args.out / f"job{index}.log", "w")  # noqa: SIM115 - closed after wait()
        command = [
            sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:cacheprovider",
            f"--hypothesis-seed={args.seed + index}",
        ]  # fmt: skip
        jobs.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    codes = []
    for process, log in jobs:
        codes.append(process.wait())
        log.close()
    elapsed = time.monotonic() - start

    totals: collections.Counter[str] = collections.Counter()
    if stats.exists():
        for line in stats.read_text().splitlines():
            totals.update({k: v for k, v in json.loads(line).items() if k != "pid"})
    distinct = set()
    if escapes.exists():
        for line in escapes.read_text().splitlines():
            entry = json.loads(line)
            distinct.add((entry["type"], entry["where"]))
    summary = {
        "seconds": round(elapsed, 1),
        "jobs": args.jobs,
        "exit_codes": codes,
        **dict(sorted(totals.items())),
        "distinct_escapes": sorted(map(list, distinct)),
    }
    print(json.dumps(summary, indent=2))
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
