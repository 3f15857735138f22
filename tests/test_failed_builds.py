"""No half-built state: a build that fails, at any stage, changes nothing the next build sees.

Each build registers into its own registry (started from the built-ins and the caller's
entries), so a failed build's registrations go with it; the caller's registry and data are
never written to; a module whose import fails is not left in sys.modules, so fixing it works.
"""

from __future__ import annotations

import copy
import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from model_constructor import Registry, SpecError, build_model

BLOCKS = """\
import torch

class Block(torch.nn.Module):
    def __init__(self, *, width: int):
        super().__init__()
        if width < 0:
            raise RuntimeError("negative width")
        self.lin = torch.nn.Linear(width, width)

    def forward(self, x):
        return self.lin(x)

def register(registry):
    registry.register_module("{key}", Block)
"""

REGISTERS_THEN_FAILS = """\
import torch

def register(registry):
    registry.register_module("{key}", torch.nn.Identity)
    registry.register_function("{key}_fn", torch.neg)
    raise RuntimeError("half-way")
"""


class CallerBlock(torch.nn.Module):
    def __init__(self, *, width: int):
        super().__init__()
        self.lin = torch.nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


@pytest.fixture
def package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Callable[[str, str], None]]]:
    """A fresh package name on sys.path, and a function writing its submodules."""
    name = f"mc_failed_{uuid.uuid4().hex[:10]}"
    root = tmp_path / "modules" / name
    root.mkdir(parents=True)
    (root / "__init__.py").touch()
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))

    def write(module: str, body: str) -> None:
        (root / f"{module}.py").write_text(body.replace("{key}", f"{name}.block"))
        importlib.invalidate_caches()

    yield name, write
    for loaded in [n for n in sys.modules if n.split(".")[0] == name]:
        del sys.modules[loaded]


def spec(package: str, imports: list[str], block_type: str, width: Any = 4) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "settings": {"allowed_import_prefixes": [f"{package}."]},
        "imports": [f"{package}.{module}" for module in imports],
        "params": {"width": width},
        "model": {
            "graph": {
                "inputs": ["x"],
                "modules": {
                    "block": {"_type_": block_type, "width": "${params.width}"},
                    "caller": {"_type_": "test.caller_block", "width": 4},
                },
                "nodes": {
                    "h": {"call": "module:block", "args": ["$x"]},
                    "y": {"call": "module:caller", "args": ["$h"]},
                },
                "outputs": ["$y"],
            }
        },
    }


def caller_registry() -> Registry:
    registry = Registry()
    registry.register_module("test.caller_block", CallerBlock)
    return registry


def failing_builds(package: str) -> dict[str, dict[str, Any]]:
    """Specs that fail at each stage, each after registering or importing what it can."""
    block = f"{package}.block"
    return {
        "interpolation": spec(package, ["good"], block, width="${params.missing}"),
        "check": {**spec(package, ["good"], block), "params": {"width": "four"}},
        "import": spec(package, ["good", "raises"], block),
        "register": spec(package, ["half"], block),
        "constructor": spec(package, ["good"], block, width=-1),
    }


def test_failed_builds_fail_where_expected(package: tuple[str, Callable[[str, str], None]]) -> None:
    name, write = package
    write("good", BLOCKS)
    write("raises", "raise ImportError('no GPU')\n")
    write("half", REGISTERS_THEN_FAILS)
    outcomes = {}
    for stage, failing in failing_builds(name).items():
        try:
            build_model(failing, registry=caller_registry())
        except SpecError as exc:
            outcomes[stage] = exc.diagnostics[0].message.split(":")[0]
        except RuntimeError as exc:
            outcomes[stage] = str(exc)
    assert outcomes == {
        "interpolation": "unknown param 'params.missing'",
        "check": f"argument 'width' of block '{name}.block'",
        "import": f"cannot import '{name}.raises'",
        "register": f"{name}.half.register(registry) failed",
        "constructor": "negative width",
    }


def test_failed_builds_leave_registries_and_data_unchanged(
    package: tuple[str, Callable[[str, str], None]],
) -> None:
    name, write = package
    write("good", BLOCKS)
    write("raises", "raise ImportError('no GPU')\n")
    write("half", REGISTERS_THEN_FAILS)
    registry = caller_registry()
    builtins = (Registry.with_builtins().keys("module"), Registry.with_builtins().keys("function"))
    for failing in failing_builds(name).values():
        written = copy.deepcopy(failing)
        with pytest.raises((SpecError, RuntimeError)):
            build_model(failing, registry=registry)
        assert failing == written
        assert (registry.keys("module"), registry.keys("function")) == (["test.caller_block"], [])
        assert (
            Registry.with_builtins().keys("module"),
            Registry.with_builtins().keys("function"),
        ) == builtins


def test_failed_builds_registrations_do_not_reach_the_next_build(
    package: tuple[str, Callable[[str, str], None]],
) -> None:
    name, write = package
    write("good", BLOCKS)
    write("half", REGISTERS_THEN_FAILS)
    for failing in (spec(name, ["half"], f"{name}.block"), spec(name, ["good"], f"{name}.block", width=-1)):
        with pytest.raises((SpecError, RuntimeError)):
            build_model(failing, registry=caller_registry())
    # The same key, without the import that registered it: unknown, as in a fresh process.
    with pytest.raises(SpecError) as info:
        build_model(spec(name, [], f"{name}.block"), registry=caller_registry())
    assert [d.message for d in info.value.diagnostics] == [f"unknown block type '{name}.block'"]


def test_failed_builds_do_not_change_the_next_build(package: tuple[str, Callable[[str, str], None]]) -> None:
    name, write = package
    write("good", BLOCKS)
    write("raises", "raise ImportError('no GPU')\n")
    write("half", REGISTERS_THEN_FAILS)
    good = spec(name, ["good"], f"{name}.block")
    x = torch.randn(2, 4)

    def built() -> tuple[Any, ...]:
        torch.manual_seed(0)
        model = build_model(good, registry=caller_registry())
        state = {key: value.clone() for key, value in model.state_dict().items()}
        return model.fingerprint, model.module_fingerprints, model.code, state, model(x)

    before = built()
    for failing in failing_builds(name).values():
        with pytest.raises((SpecError, RuntimeError)):
            build_model(failing, registry=caller_registry())
    after = built()

    assert after[:3] == before[:3]
    assert after[3].keys() == before[3].keys()
    for key, value in before[3].items():
        torch.testing.assert_close(after[3][key], value, rtol=0, atol=0)
    torch.testing.assert_close(after[4], before[4], rtol=0, atol=0)


def test_failed_builds_failed_import_not_kept_and_fixed_module_used(
    package: tuple[str, Callable[[str, str], None]],
) -> None:
    name, write = package
    write("blocks", "raise ImportError('needs a GPU build')\n")
    with pytest.raises(SpecError):
        build_model(spec(name, ["blocks"], f"{name}.block"), registry=caller_registry())
    assert f"{name}.blocks" not in sys.modules

    write("blocks", textwrap.dedent(BLOCKS))
    model = build_model(spec(name, ["blocks"], f"{name}.block"), registry=caller_registry())
    assert type(model.block).__module__ == f"{name}.blocks"
