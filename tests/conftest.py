"""Fixtures shared by the test modules; plain helpers live in helpers.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SEED = Path(__file__).resolve().parents[1] / "examples" / "seed"


@pytest.fixture
def seed_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the seed's `my_project` importable, and forget it afterwards."""
    monkeypatch.syspath_prepend(str(SEED))
    yield
    for name in [n for n in sys.modules if n == "my_project" or n.startswith("my_project.")]:
        del sys.modules[name]
