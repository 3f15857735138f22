"""Save a built model's weights with its architecture fingerprint; refuse to load them elsewhere.

`torch.save(model.state_dict())` records weights only, and loading them into a model built
from another spec succeeds whenever keys and shapes happen to agree (a changed dropout,
activation or forward wiring keeps both). A checkpoint written here also holds the model's
fingerprint and one per top-level module (fingerprint.py), so loading into a different
architecture is refused with the modules that differ, unless the caller allows it.

The file is a `torch.save` of a dict of strings and tensors, read back with
`torch.load(weights_only=True)`: loading a checkpoint never runs pickled code, and any torch
program can read it without this library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from .errors import CheckpointMismatchError
from .model import BuiltModel

FORMAT = "model_constructor.checkpoint/1"


class LoadResult(NamedTuple):
    """What `load_state_dict` returns: the keys that did not match (empty when strict)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def save_checkpoint(model: BuiltModel, path: str | os.PathLike[str]) -> None:
    """Write `model`'s state_dict to `path`, with its fingerprint and per-module fingerprints."""
    torch.save(
        {
            "format": FORMAT,
            "fingerprint": model.fingerprint,
            "module_fingerprints": dict(model.module_fingerprints),
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_checkpoint(
    model: BuiltModel,
    path: str | os.PathLike[str],
    *,
    allow_mismatch: bool = False,
    strict: bool = True,
) -> LoadResult:
    """Load a checkpoint written by `save_checkpoint` into `model`.

    Raises CheckpointMismatchError, naming the top-level modules that differ, when the
    checkpoint was saved from a model with another fingerprint, unless `allow_mismatch`.
    `strict` is passed to `load_state_dict`. Tensors are loaded to the CPU first, then
    copied into the model's own parameters, wherever those live.
    """
    checkpoint: Any = torch.load(path, map_location="cpu", weights_only=True)
    if not (
        isinstance(checkpoint, Mapping)
        and checkpoint.get("format") == FORMAT
        and isinstance(checkpoint.get("fingerprint"), str)
        and isinstance(checkpoint.get("module_fingerprints"), Mapping)
        and isinstance(checkpoint.get("state_dict"), Mapping)
    ):
        raise ValueError(
            f"{os.fspath(path)} is not a checkpoint written by save_checkpoint (format {FORMAT}); "
            "a plain state_dict loads with model.load_state_dict(torch.load(path, weights_only=True))"
        )
    if checkpoint["fingerprint"] != model.fingerprint and not allow_mismatch:
        saved: Mapping[str, str] = checkpoint["module_fingerprints"]
        current = model.module_fingerprints
        raise CheckpointMismatchError(
            os.fspath(path),
            checkpoint["fingerprint"],
            model.fingerprint,
            changed=[name for name in current if name in saved and saved[name] != current[name]],
            only_in_checkpoint=[name for name in saved if name not in current],
            only_in_model=[name for name in current if name not in saved],
        )
    missing, unexpected = model.load_state_dict(checkpoint["state_dict"], strict=strict)
    return LoadResult(list(missing), list(unexpected))
