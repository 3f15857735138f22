"""Benchmarks of model_constructor against hand-written PyTorch and Hydra (issue 5).

Run from the repository root:

    python -m benchmarks            # every measurement, about 4 minutes here
    python -m benchmarks --smoke    # everything runs once, tiny sizes, no timings judged
    python -m benchmarks --only forward build

Every comparison runs its two sides interleaved in one process and reports the median of
the per-round ratios (NOTE: [Interleaved ratios] in `_measure.py`), beside its target.
`--markdown` prints the table for docs/performance.md.
"""
