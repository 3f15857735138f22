"""Helpers shared by the test modules (`from helpers import ...`; tests/ is on sys.path)."""

from __future__ import annotations

import copy
import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from model_constructor import BuiltModel, SpecError, build_model, load_spec


def write_spec(
    tmp_path: Path, text: str, name: str = "spec.yaml", *, dedent: bool = True, encoding: str | None = None
) -> Path:
    """Write `text` (dedented unless `dedent=False`) to `tmp_path / name` and return that path."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) if dedent else text, encoding=encoding)
    return path


def located(exc: SpecError, *, hint: bool = True, notes: bool = False) -> list[tuple[Any, ...]]:
    """Each diagnostic as (line, col, message[, hint][, notes]); every one must have a file position.

    `notes` are the diagnostic's related places, as a tuple of (text, line, col).
    """
    out: list[tuple[Any, ...]] = []
    for diagnostic in exc.diagnostics:
        assert diagnostic.location is not None, diagnostic
        row: tuple[Any, ...] = (diagnostic.location.line, diagnostic.location.col, diagnostic.message)
        if hint:
            row += (diagnostic.hint,)
        if notes:
            row += (tuple((what, where.line, where.col) for what, where in diagnostic.related),)
        out.append(row)
    return out


def load_error(source: Any, **kwargs: Any) -> SpecError:
    """The SpecError that load_spec(source, **kwargs) raises."""
    with pytest.raises(SpecError) as info:
        load_spec(source, **kwargs)
    return info.value


def build_error(source: Any, **kwargs: Any) -> SpecError:
    """The SpecError that build_model(source, **kwargs) raises."""
    with pytest.raises(SpecError) as info:
        build_model(source, **kwargs)
    return info.value


def build_checked(source: Any, **kwargs: Any) -> BuiltModel:
    """build_model, then the invariants every build must keep: a sound fx graph, and a
    forward written straight from the plan that is the code fx writes for that graph."""
    model = build_model(source, **kwargs)
    model.graph.lint()
    assert model.code.strip() == model.graph.python_code("self").src.strip()
    return model


def roundtrip_deepcopy(model: BuiltModel) -> BuiltModel:
    return copy.deepcopy(model)


def roundtrip_pickle(model: BuiltModel) -> BuiltModel:
    return pickle.loads(pickle.dumps(model))


class Activated(torch.nn.Module):
    """A block whose constructor takes a module (`activation`) as an argument."""

    def __init__(self, *, width: int, activation: torch.nn.Module):
        super().__init__()
        self.lin = torch.nn.Linear(width, width)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.lin(x))
