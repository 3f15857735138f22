"""The architecture fingerprint: the same architecture gives the same hash in any process,
and any change to it (a kwarg, the wiring, a block's class) gives another."""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import write_spec

from model_constructor import BuiltModel, Registry, build_model

CHECKOUT = Path(__file__).resolve().parents[1]
SEED = CHECKOUT / "examples" / "seed"

SPEC = """\
schema_version: 1
params: {width: 8, dropout: 0.1}
model:
  graphs:
    block:
      args: {width: int}
      inputs: [x]
      modules:
        lin: {_type_: nn.Linear, in_features: "${args.width}", out_features: "${args.width}"}
      nodes:
        h: {call: module:lin, args: [$x]}
      outputs: [$h]
  graph:
    inputs: [x]
    modules:
      proj: {_type_: nn.Linear, in_features: "${params.width}", out_features: "${params.width}"}
      drop: {_type_: nn.Dropout, p: "${params.dropout}"}
      stack: {_type_: "graph:block", _repeat_: 2, width: "${params.width}"}
    nodes:
      h1: {call: module:proj, args: [$x]}
      h2: {call: module:drop, args: [$h1]}
      h3: {call: module:stack, args: [$h2]}
      h4: {call: fn:torch.add, args: [$h1, $h3]}
    outputs: [$h4]
"""

# SPEC again, with keys in another order, block style, comments and unquoted interpolations.
SPEC_REWRITTEN = """\
# the same architecture, written differently
model:
  graph:
    outputs: [$h4]
    nodes:
      h1: {args: [$x], call: module:proj}
      h2: {args: [$h1], call: module:drop}
      h3: {args: [$h2], call: module:stack}
      h4:
        call: fn:torch.add
        args: [$h1, $h3]
    modules:
      stack: {width: ${params.width}, _repeat_: 2, _type_: "graph:block"}
      drop: {p: ${params.dropout}, _type_: nn.Dropout}
      proj:
        out_features: ${params.width}
        in_features: ${params.width}
        _type_: nn.Linear
    inputs: [x]
  graphs:
    block:
      outputs: [$h]
      nodes: {h: {call: module:lin, args: [$x]}}
      modules: {lin: {out_features: "${args.width}", in_features: "${args.width}", _type_: nn.Linear}}
      inputs: [x]
      args: {width: int}
params: {dropout: 0.1, width: 8}
schema_version: 1
"""


def build(tmp_path: Path, text: str = SPEC, **kwargs: Any) -> BuiltModel:
    return build_model(write_spec(tmp_path, text, name="model.yaml", dedent=False), **kwargs)


def differing(model: BuiltModel, other: BuiltModel) -> list[str]:
    """The modules whose fingerprints differ between two models with the same module names."""
    return [
        name
        for name, digest in model.module_fingerprints.items()
        if other.module_fingerprints[name] != digest
    ]


def test_fingerprint_is_a_sha256_hex_digest(tmp_path: Path) -> None:
    model = build(tmp_path)
    assert len(model.fingerprint) == 64
    assert int(model.fingerprint, 16) >= 0
    assert list(model.module_fingerprints) == ["proj", "drop", "stack"]
    assert all(len(digest) == 64 for digest in model.module_fingerprints.values())


def test_fingerprint_ignores_key_order_formatting_and_comments(tmp_path: Path) -> None:
    model = build(tmp_path, SPEC)
    rewritten = build(tmp_path, SPEC_REWRITTEN)
    assert rewritten.fingerprint == model.fingerprint
    assert rewritten.module_fingerprints == model.module_fingerprints


def test_fingerprint_of_python_spec_equals_that_of_its_file(tmp_path: Path) -> None:
    model = build(tmp_path)
    assert build_model(model.spec).fingerprint == model.fingerprint
    assert build_model(model.spec.to_data()).fingerprint == model.fingerprint


def test_fingerprint_ignores_device_and_dtype(tmp_path: Path) -> None:
    model = build(tmp_path)
    assert build(tmp_path, device="meta").fingerprint == model.fingerprint
    assert build(tmp_path, dtype=torch.float64).fingerprint == model.fingerprint


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        pytest.param("dropout: 0.1", "dropout: 0.2", ["drop"], id="one-kwarg-through-a-param"),
        pytest.param("_type_: nn.Dropout,", "_type_: nn.AlphaDropout,", ["drop"], id="block-type"),
        pytest.param("_repeat_: 2", "_repeat_: 3", ["stack"], id="repeat-count"),
        pytest.param('out_features: "${args.width}"', 'out_features: "${args.width}", bias: false', ["stack"],
                     id="inside-a-sub-graph"),
        pytest.param("{width: 8,", "{width: 4,", ["proj", "stack"], id="param-used-twice"),
        pytest.param("args: [$h1, $h3]", "args: [$h3, $h1]", [], id="wiring"),
        pytest.param("fn:torch.add", "fn:torch.sub", [], id="function"),
        pytest.param("dropout: 0.1}", "dropout: 0.1, unused: 1}", [], id="unused-param"),
    ],
)  # fmt: skip
def test_fingerprint_changes_with_the_architecture(
    tmp_path: Path, old: str, new: str, changed: list[str]
) -> None:
    assert SPEC.count(old) == 1
    model = build(tmp_path)
    other = build(tmp_path, SPEC.replace(old, new))
    assert other.fingerprint != model.fingerprint
    assert differing(model, other) == changed


class OtherLinear(torch.nn.Linear):
    """Same signature and parameters as nn.Linear, another class: another architecture."""


def test_fingerprint_names_the_class_a_key_resolves_to(tmp_path: Path) -> None:
    text = SPEC.replace("_type_: nn.Linear,", "_type_: test.linear,")
    first, second = Registry(), Registry()
    first.register_module("test.linear", torch.nn.Linear)
    second.register_module("test.linear", OtherLinear)
    model = build(tmp_path, text, registry=first)
    other = build(tmp_path, text, registry=second)
    assert other.fingerprint != model.fingerprint
    assert differing(model, other) == ["proj", "stack"]


@pytest.mark.parametrize(
    "roundtrip", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))], ids=["deepcopy", "pickle"]
)
def test_fingerprint_kept_by_copies(tmp_path: Path, roundtrip: Any) -> None:
    model = build(tmp_path)
    copied = roundtrip(model)
    assert copied.fingerprint == model.fingerprint
    assert copied.module_fingerprints == model.module_fingerprints


def test_fingerprint_of_a_value_json_cannot_hold_is_stable() -> None:
    spec = {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": ["x"],
                "modules": {
                    "proj": {
                        "_type_": "nn.Linear",
                        "in_features": 2,
                        "out_features": 2,
                        "dtype": torch.float64,
                    }
                },
                "nodes": {"h": {"call": "module:proj", "args": ["$x"]}},
                "outputs": ["$h"],
            }
        },
    }
    model = build_model(spec)
    assert build_model(spec).fingerprint == model.fingerprint
    spec["model"]["graph"]["modules"]["proj"]["dtype"] = torch.float32  # type: ignore[index]
    assert build_model(spec).fingerprint != model.fingerprint


# ---- the same files, built in separate processes ----------------------------------------------

REPORT = """\
import json, sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # my_project, beside the configs
from model_constructor import build_model

model = build_model(sys.argv[1])
print(json.dumps({
    "fingerprint": model.fingerprint,
    "modules": model.module_fingerprints,
    "state": [[key, list(value.shape)] for key, value in model.state_dict().items()],
}))
"""


def _copy_seed(root: Path) -> Path:
    shutil.copytree(SEED / "configs", root / "configs")
    shutil.copytree(SEED / "my_project", root / "my_project", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "report.py").write_text(REPORT)
    return root


def _report(root: Path, spec: str, hash_seed: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(CHECKOUT)}
    done = subprocess.run(
        [sys.executable, "report.py", spec], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.usefixtures("seed_blocks")
def test_fingerprint_same_in_separate_processes_and_places(tmp_path: Path) -> None:
    first = _copy_seed(tmp_path / "train")
    second = _copy_seed(tmp_path / "elsewhere" / "deeper" / "infer")
    relative = _report(first, "configs/models/my_model.yaml", hash_seed="1")
    absolute = _report(second, str(second / "configs" / "models" / "my_model.yaml"), hash_seed="4242")
    assert absolute == relative
    assert [key for key, _ in relative["state"]] == [
        "proj.weight",
        "proj.bias",
        "mix.net.0.weight",
        "mix.net.0.bias",
    ]

    # And the same as in this process, with its own hash seed.
    model = build_model(SEED / "configs" / "models" / "my_model.yaml")
    assert (model.fingerprint, model.module_fingerprints) == (relative["fingerprint"], relative["modules"])
