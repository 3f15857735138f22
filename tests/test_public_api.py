"""The public surface is exactly `__all__` (httpx `tests/test_exported_members.py`), and
`import model_constructor` loads it lazily (NOTE: [Lazy public names] in `__init__.py`)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest

import model_constructor

ROOT = Path(__file__).resolve().parents[1]

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
        for name in dir(model_constructor)
        if not name.startswith("_") and not isinstance(getattr(model_constructor, name), types.ModuleType)
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


def _fresh(code: str) -> str:
    """What `code` prints in a new interpreter, started in the repository root."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def test_public_api_import_loads_nothing() -> None:
    loaded = _fresh(
        "import sys, model_constructor\n"
        "print(*sorted(m for m in sys.modules if m.startswith(('model_constructor', 'pydantic', 'ruamel'))))"
    )
    assert loaded.split() == ["model_constructor"]


def test_public_api_build_path_skips_the_tooling() -> None:
    loaded = _fresh(
        "import sys\nfrom model_constructor import build_model\n"
        "print(*sorted(m for m in sys.modules if m.startswith('model_constructor.')))"
    ).split()
    assert "model_constructor.build" in loaded
    tooling = ["checkpoint", "cli", "diagram", "dump", "fmt", "schema"]
    assert [name for name in tooling if f"model_constructor.{name}" in loaded] == []


def test_public_api_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'model_constructor' has no attribute 'build_modle'$"):
        model_constructor.build_modle  # type: ignore[attr-defined]  # noqa: B018


def test_public_api_star_import_gives_all() -> None:
    namespace: dict[str, object] = {}
    exec("from model_constructor import *", namespace)
    assert sorted(name for name in namespace if name != "__builtins__") == model_constructor.__all__


def test_public_api_model_unpickles_in_a_fresh_interpreter(tmp_path: Path) -> None:
    spec = {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": ["x"],
                "modules": {"proj": {"_type_": "nn.Linear", "in_features": 2, "out_features": 3}},
                "nodes": {"h": {"call": "module:proj", "args": ["$x"]}},
                "outputs": ["$h"],
            }
        },
    }
    saved = tmp_path / "model.pkl"
    saved.write_bytes(pickle.dumps(model_constructor.build_model(spec)))
    # Nothing of the package is imported before the pickle names what it needs.
    code = f"import pickle, torch\nmodel = pickle.loads(open({str(saved)!r}, 'rb').read())\n"
    assert _fresh(code + "print(*model(torch.ones(1, 2)).shape)").split() == ["1", "3"]
