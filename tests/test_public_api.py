"""The public surface is exactly `__all__` (httpx `tests/test_exported_members.py`)."""

from __future__ import annotations

import types

import model_constructor

PROMISED = {"build_model", "load_spec", "ModelSpec", "Registry", "SpecError"}
TOOLING = {"json_schema", "spec_schema", "dump_yaml"}
CHECKPOINTS = {"save_checkpoint", "load_checkpoint", "CheckpointMismatchError"}
SECTION_MODELS = {
    "Settings",
    "ModelSection",
    "GraphSpec",
    "SubgraphSpec",
    "ArgSpec",
    "ModuleSpec",
    "NodeSpec",
}


def test_public_api_all_is_sorted() -> None:
    assert model_constructor.__all__ == sorted(model_constructor.__all__)


def test_public_api_all_names_exist() -> None:
    missing = [name for name in model_constructor.__all__ if not hasattr(model_constructor, name)]
    assert missing == []


def test_public_api_all_equals_public_attributes() -> None:
    public = sorted(
        name
        for name, value in vars(model_constructor).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )
    assert model_constructor.__all__ == public


def test_public_api_holds_the_promised_names() -> None:
    assert set(model_constructor.__all__) >= PROMISED | SECTION_MODELS | TOOLING | CHECKPOINTS


def test_public_api_members_come_from_the_package() -> None:
    origins = {name: getattr(model_constructor, name).__module__ for name in model_constructor.__all__}
    assert {name: module.split(".")[0] for name, module in origins.items()} == dict.fromkeys(
        model_constructor.__all__, "model_constructor"
    )


def test_public_api_spec_error_is_a_value_error() -> None:
    assert issubclass(model_constructor.SpecError, ValueError)
    assert issubclass(model_constructor.SpecWarning, UserWarning)


def test_public_api_checkpoint_mismatch_is_a_value_error() -> None:
    assert issubclass(model_constructor.CheckpointMismatchError, ValueError)
    assert not issubclass(model_constructor.CheckpointMismatchError, model_constructor.SpecError)
