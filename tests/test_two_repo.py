"""The seed's two-repo example, run the way a submodule user runs it.

A training repo and an inference repo each hold this project at
`third_party/model_constructor` and put that directory on `sys.path` themselves; nothing is
pip-installed. The copy is of the current working tree, not of a commit, so uncommitted work
is what gets tested. The seed's block module and YAML are written verbatim from the issue
(there is no `my_project/__init__.py` in the seed: `my_project` is a namespace package).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]

# What a checkout holds but a clone would not: VCS data, virtualenvs, caches, build output.
_NOT_IN_A_CLONE = {
    ".git",
    "venv",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "build",
    "dist",
}

MODEL_BLOCKS = """\
import torch

class TokenMixer(torch.nn.Module):
    def __init__(self, *, width: int, dropout: float = 0.0):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(width, width),
            torch.nn.GELU(),
            torch.nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)

def register(registry):
    registry.register_module("my_project.token_mixer", TokenMixer, signature_policy="strict")
"""

MY_MODEL_YAML = """\
schema_version: 1
settings:
  allowed_import_prefixes: ["model_constructor.", "my_project."]
imports:
  - my_project.model_blocks

params:
  width: 128
  dropout: 0.1

model:
  graph:
    inputs: [x]
    modules:
      proj: {_type_: nn.Linear, in_features: ${params.width}, out_features: ${params.width}}
      mix: {_type_: my_project.token_mixer, width: ${params.width}, dropout: ${params.dropout}}
    nodes:
      h1: {call: module:proj, args: [$x]}
      h2: {call: module:mix, args: [$h1]}
    order: [h1, h2]
    outputs: [$h2]
    return: single
"""

TRAIN_PY = """\
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "third_party" / "model_constructor"))

import torch
from model_constructor import build_model

torch.manual_seed(0)
model = build_model(Path(__file__).resolve().parent / "configs" / "models" / "my_model.yaml")
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
inputs, targets = torch.randn(64, 128), torch.randn(64, 128)
for step in range(20):
    loss = torch.nn.functional.mse_loss(model(inputs), targets)
    if step == 0:
        print(f"initial loss {loss.item():.6f}")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
with torch.no_grad():
    print(f"final loss {torch.nn.functional.mse_loss(model(inputs), targets).item():.6f}")
torch.save(model.state_dict(), sys.argv[1])
"""

INFER_PY = """\
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "third_party" / "model_constructor"))

import torch
from model_constructor import build_model

model = build_model(Path(__file__).resolve().parent / "configs" / "models" / "my_model.yaml")
model.load_state_dict(torch.load(sys.argv[1], map_location="cpu", weights_only=True), strict=True)
model.eval()
with torch.no_grad():
    print(model(torch.randn(2, 128)).shape)
"""


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name in _NOT_IN_A_CLONE or name.endswith(".egg-info")}


def _make_repo(root: Path, script_name: str, script: str) -> Path:
    shutil.copytree(CHECKOUT, root / "third_party" / "model_constructor", ignore=_ignore, symlinks=True)
    (root / "my_project").mkdir()
    (root / "my_project" / "model_blocks.py").write_text(MODEL_BLOCKS)
    (root / "configs" / "models").mkdir(parents=True)
    (root / "configs" / "models" / "my_model.yaml").write_text(MY_MODEL_YAML)
    (root / script_name).write_text(script)
    return root


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("two_repo")
    (base / "neutral").mkdir()
    return {
        "train": _make_repo(base / "train_repo", "train.py", TRAIN_PY),
        "infer": _make_repo(base / "infer_repo", "infer.py", INFER_PY),
        "neutral": base / "neutral",
    }


@pytest.fixture(scope="module")
def user_env() -> dict[str, str]:
    """The caller's environment minus anything that would put the checkout on the path."""
    dropped = {"PYTHONPATH", "PYTHONSAFEPATH", "PYTHONSTARTUP", "PYTHONHOME"}
    return {key: value for key, value in os.environ.items() if key not in dropped}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_two_repo_package_not_installed(repos: dict[str, Path], user_env: dict[str, str]) -> None:
    # Proves the scripts below can only import model_constructor through the submodule path.
    result = _run(["-c", "import model_constructor"], repos["neutral"], user_env)
    assert result.returncode != 0, "model_constructor is importable without the submodule path"
    assert "ModuleNotFoundError: No module named 'model_constructor'" in result.stderr


def test_two_repo_train_then_infer_strict(repos: dict[str, Path], user_env: dict[str, str]) -> None:
    weights = repos["train"] / "model.pt"

    trained = _run(["train.py", str(weights)], repos["train"], user_env)
    assert trained.returncode == 0, trained.stderr
    losses = dict(re.findall(r"^(initial|final) loss (\S+)$", trained.stdout, flags=re.MULTILINE))
    assert set(losses) == {"initial", "final"}, trained.stdout
    assert float(losses["final"]) < float(losses["initial"])
    assert weights.is_file()

    inferred = _run(["infer.py", str(weights)], repos["infer"], user_env)
    assert inferred.returncode == 0, inferred.stderr
    assert inferred.stdout == "torch.Size([2, 128])\n"
