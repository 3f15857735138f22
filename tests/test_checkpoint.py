"""save_checkpoint / load_checkpoint: weights travel with their fingerprint, and a checkpoint
from another architecture is refused with the modules that differ."""

from __future__ import annotations

import hashlib
import pathlib
import pickle
from pathlib import Path

import pytest
import torch

from model_constructor import (
    BuiltModel,
    CheckpointMismatchError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)

SPEC = """\
schema_version: 1
params: {width: 8, dropout: 0.1}
model:
  graph:
    inputs: [x]
    modules:
      proj: {_type_: nn.Linear, in_features: "${params.width}", out_features: "${params.width}"}
      mix: {_type_: nn.Dropout, p: "${params.dropout}"}
      head: {_type_: nn.Linear, in_features: "${params.width}", out_features: 2}
    nodes:
      h1: {call: module:proj, args: [$x]}
      h2: {call: module:mix, args: [$h1]}
      h3: {call: module:head, args: [$h2]}
    outputs: [$h3]
"""


def build(tmp_path: Path, text: str = SPEC, seed: int = 0) -> BuiltModel:
    path = tmp_path / f"spec_{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    path.write_text(text)
    torch.manual_seed(seed)
    return build_model(path)


def test_checkpoint_round_trip_loads_the_weights(tmp_path: Path) -> None:
    model = build(tmp_path, seed=0)
    save_checkpoint(model, tmp_path / "model.pt")
    fresh = build(tmp_path, seed=1)

    result = load_checkpoint(fresh, tmp_path / "model.pt")

    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0)


def test_checkpoint_file_is_plain_torch_data(tmp_path: Path) -> None:
    model = build(tmp_path)
    save_checkpoint(model, tmp_path / "model.pt")
    data = torch.load(tmp_path / "model.pt", weights_only=True)
    assert sorted(data) == ["fingerprint", "format", "module_fingerprints", "state_dict"]
    assert data["format"] == "model_constructor.checkpoint/1"
    assert data["fingerprint"] == model.fingerprint
    assert data["module_fingerprints"] == model.module_fingerprints
    assert list(data["state_dict"]) == list(model.state_dict())


def test_checkpoint_of_another_kwarg_refused_naming_the_module(tmp_path: Path) -> None:
    # Dropout's p changes no key or shape: load_state_dict(strict=True) would take it.
    saved = build(tmp_path)
    save_checkpoint(saved, tmp_path / "model.pt")
    other = build(tmp_path, SPEC.replace("dropout: 0.1", "dropout: 0.5"))

    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(other, tmp_path / "model.pt")

    assert info.value.modules == ("mix",)
    assert str(info.value) == (
        f"checkpoint {tmp_path / 'model.pt'} was saved from a different architecture "
        f"(fingerprint {saved.fingerprint[:12]}, this model's {other.fingerprint[:12]})\n"
        "  modules that differ: mix\n"
        "  pass allow_mismatch=True to load it anyway"
    )


def test_checkpoint_mismatch_names_added_and_removed_modules(tmp_path: Path) -> None:
    save_checkpoint(build(tmp_path), tmp_path / "model.pt")
    other = build(tmp_path, SPEC.replace("head", "tail"))

    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(other, tmp_path / "model.pt")

    assert (info.value.changed, info.value.only_in_checkpoint, info.value.only_in_model) == (
        (),
        ("head",),
        ("tail",),
    )
    assert "  modules only in the checkpoint: head\n  modules only in this model: tail\n" in str(info.value)


def test_checkpoint_mismatch_outside_the_modules_says_so(tmp_path: Path) -> None:
    save_checkpoint(build(tmp_path), tmp_path / "model.pt")
    other = build(tmp_path, SPEC.replace("dropout: 0.1}", "dropout: 0.1, lr: 0.001}"))

    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(other, tmp_path / "model.pt")

    assert info.value.modules == ()
    assert "  every module matches; the rest of the spec differs (params, nodes, outputs, " in str(info.value)


def test_checkpoint_mismatch_allowed_explicitly(tmp_path: Path) -> None:
    saved = build(tmp_path, seed=0)
    save_checkpoint(saved, tmp_path / "model.pt")
    other = build(tmp_path, SPEC.replace("dropout: 0.1", "dropout: 0.5"), seed=1)

    load_checkpoint(other, tmp_path / "model.pt", allow_mismatch=True)

    torch.testing.assert_close(other.proj.weight, saved.proj.weight, rtol=0, atol=0)


def test_checkpoint_mismatch_allowed_not_strict_reports_keys(tmp_path: Path) -> None:
    save_checkpoint(build(tmp_path), tmp_path / "model.pt")
    other = build(tmp_path, SPEC.replace("head", "tail"))

    result = load_checkpoint(other, tmp_path / "model.pt", allow_mismatch=True, strict=False)

    assert result.missing_keys == ["tail.weight", "tail.bias"]
    assert result.unexpected_keys == ["head.weight", "head.bias"]


def test_checkpoint_plain_state_dict_refused(tmp_path: Path) -> None:
    model = build(tmp_path)
    torch.save(model.state_dict(), tmp_path / "weights.pt")

    with pytest.raises(ValueError, match=r"weights\.pt is not a checkpoint written by save_checkpoint"):
        load_checkpoint(model, tmp_path / "weights.pt")


class _WritesAFile:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.write_text, (pathlib.Path(self.path), "ran"))


def test_checkpoint_never_runs_pickled_code(tmp_path: Path) -> None:
    model = build(tmp_path)
    marker = tmp_path / "ran"
    torch.save(
        {"format": "model_constructor.checkpoint/1", "payload": _WritesAFile(marker)}, tmp_path / "evil.pt"
    )

    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(model, tmp_path / "evil.pt")
    assert not marker.exists()


def test_checkpoint_mismatch_error_pickles(tmp_path: Path) -> None:
    error = CheckpointMismatchError("model.pt", "a" * 64, "b" * 64, changed=["mix"], only_in_model=["tail"])
    copied = pickle.loads(pickle.dumps(error))
    assert (str(copied), copied.modules) == (str(error), ("mix", "tail"))
