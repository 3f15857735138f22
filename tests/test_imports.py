"""The import stage: the trust boundary is checked before any import; each module must register."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import load_error, located

from model_constructor import SpecError, load_spec

# A module that leaves a trace when its code runs, and registers nothing.
RECORDS_IMPORT = """\
import pathlib
pathlib.Path(__file__).with_suffix(".ran").write_text("ran")

def register(registry):
    pass
"""

REGISTERS_BLOCK = """\
import torch

class Block(torch.nn.Module):
    def __init__(self, *, width: int):
        super().__init__()
        self.lin = torch.nn.Linear(width, width)

    def forward(self, x):
        return self.lin(x)

def register(registry):
    registry.register_module("{key}", Block)
"""

WriteModule = Callable[[str, str], Path]


@pytest.fixture
def unique() -> str:
    """A fresh top-level module name, so no test sees another's cached import."""
    return f"mc_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WriteModule]:
    """Write module `name` (dotted: packages are created) under tmp_path, which is on sys.path."""
    root = tmp_path / "modules"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    tops: set[str] = set()

    def write(name: str, body: str) -> Path:
        *packages, leaf = name.split(".")
        folder = root
        for package in packages:
            folder = folder / package
            folder.mkdir(exist_ok=True)
            (folder / "__init__.py").touch()
        path = folder / f"{leaf}.py"
        path.write_text(textwrap.dedent(body))
        tops.add(name.split(".")[0])
        return path

    yield write
    for name in [n for n in sys.modules if n.split(".")[0] in tops]:
        del sys.modules[name]


def ran(path: Path) -> bool:
    return path.with_suffix(".ran").exists()


def write_spec(tmp_path: Path, prefixes: str | None, imports: list[str], block: str | None = None) -> Path:
    """A spec whose settings are on line 2-3 and whose `imports:` list is on line 4 (col 11)."""
    settings = (
        f"settings:\n  allowed_import_prefixes: {prefixes}\n" if prefixes is not None else "settings: {}\n\n"
    )
    if block is None:
        graph = "    nodes:\n      h1: {call: method:relu, args: [$x]}\n"
    else:
        graph = (
            f"    modules:\n      b: {{_type_: {block}, width: 4}}\n"
            "    nodes:\n      h1: {call: module:b, args: [$x]}\n"
        )
    path = tmp_path / "spec.yaml"
    path.write_text(
        "schema_version: 1\n"
        + settings
        + f"imports: [{', '.join(imports)}]\n"
        + "model:\n  graph:\n    inputs: [x]\n"
        + graph
        + "    outputs: [$h1]\n"
    )
    return path


def import_error(path: Path, allowed_import_prefixes: list[str] | None = None) -> SpecError:
    return load_error(path, allowed_import_prefixes=allowed_import_prefixes)


# ---- the trust boundary -----------------------------------------------------------------------


def test_imports_outside_prefixes_never_runs(tmp_path: Path, write_module: WriteModule, unique: str) -> None:
    module = write_module(unique, RECORDS_IMPORT)
    path = write_spec(tmp_path, '["my_project."]', [unique])
    exc = import_error(path)
    assert located(exc) == [
        (4, 11, f"import {unique!r} is outside the allowed import prefixes", "allowed: my_project.")
    ]
    assert str(exc).startswith(f"{path}:4:11: error: imports[0]: import {unique!r} is outside")
    assert not ran(module)
    assert unique not in sys.modules


def test_imports_all_checked_before_any_runs(tmp_path: Path, write_module: WriteModule, unique: str) -> None:
    allowed = write_module(f"{unique}.blocks", RECORDS_IMPORT)
    refused = write_module(f"{unique}_other", RECORDS_IMPORT)
    path = write_spec(tmp_path, f'["{unique}."]', [f"{unique}.blocks", f"{unique}_other"])
    exc = import_error(path)
    col = 11 + len(f"{unique}.blocks, ")
    assert located(exc) == [
        (4, col, f"import '{unique}_other' is outside the allowed import prefixes", f"allowed: {unique}.")
    ]
    assert not ran(allowed)
    assert not ran(refused)


@pytest.mark.parametrize("prefix", ["{u}.", "{u}"])
@pytest.mark.parametrize("evil", ["{u}_evil", "{u}_evil.blocks", "{u}evil.blocks"])
def test_imports_prefix_matches_dotted_boundary(
    tmp_path: Path, write_module: WriteModule, unique: str, prefix: str, evil: str
) -> None:
    prefix, evil = prefix.format(u=unique), evil.format(u=unique)
    package = evil.partition(".")[0]
    # Both the package and its submodule leave a trace if imported.
    package_init = write_module(f"{package}.__init__", RECORDS_IMPORT)
    blocks = write_module(f"{package}.blocks", RECORDS_IMPORT)
    path = write_spec(tmp_path, f'["{prefix}"]', [evil])
    exc = import_error(path)
    assert located(exc) == [
        (4, 11, f"import {evil!r} is outside the allowed import prefixes", f"allowed: {prefix}")
    ]
    assert not ran(package_init)
    assert not ran(blocks)


@pytest.mark.parametrize("prefix", ["{u}.", "{u}"])
def test_imports_prefix_admits_module_below_it(
    tmp_path: Path, write_module: WriteModule, unique: str, prefix: str
) -> None:
    write_module(f"{unique}.blocks", REGISTERS_BLOCK.format(key=f"{unique}.block"))
    path = write_spec(
        tmp_path, f'["{prefix.format(u=unique)}"]', [f"{unique}.blocks"], block=f"{unique}.block"
    )
    spec = load_spec(path)
    assert spec.model.graph.modules["b"].type_ == f"{unique}.block"


def test_imports_no_prefixes_admits_nothing(tmp_path: Path, write_module: WriteModule, unique: str) -> None:
    module = write_module(unique, RECORDS_IMPORT)
    path = write_spec(tmp_path, None, [unique])
    exc = import_error(path)
    assert located(exc) == [
        (
            4,
            11,
            f"import {unique!r} is outside the allowed import prefixes",
            "add its prefix to settings.allowed_import_prefixes",
        )
    ]
    assert not ran(module)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (".blocks", "relative import '.blocks' is not allowed"),
        ("..{u}.blocks", "relative import '..{u}.blocks' is not allowed"),
        ("{u}..blocks", "'{u}..blocks' is not a module name"),
        ('"{u}.my-blocks"', "'{u}.my-blocks' is not a module name"),
        ('"{u}.blocks "', "'{u}.blocks ' is not a module name"),
    ],
)
def test_imports_malformed_name_refused(
    tmp_path: Path, write_module: WriteModule, unique: str, name: str, message: str
) -> None:
    module = write_module(f"{unique}.blocks", RECORDS_IMPORT)
    path = write_spec(tmp_path, f'["{unique}.", "."]', [name.format(u=unique)])
    exc = import_error(path)
    assert located(exc) == [(4, 11, message.format(u=unique), None)]
    assert not ran(module)


# ---- the imported module ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "hint"),
    [
        pytest.param(
            "WIDTH = 4\n",
            "module {name!r} has no register(registry) function",
            "define `def register(registry): registry.register_module(...)` in it",
            id="no-register",
        ),
        pytest.param(
            "register = 'not a function'\n",
            "module {name!r} has no register(registry) function",
            "define `def register(registry): registry.register_module(...)` in it",
            id="register-not-callable",
        ),
        pytest.param(
            "def register(registry):\n    raise RuntimeError('boom')\n",
            "{name}.register(registry) failed: boom",
            None,
            id="register-raises",
        ),
        pytest.param(
            "raise ImportError('needs a GPU build')\n",
            "cannot import {name!r}: ImportError: needs a GPU build",
            None,
            id="import-raises",
        ),
        pytest.param(
            "def register(registry):\n    registry.register_module('bad key!', object)\n",
            "{name}.register(registry) failed: register_module('bad key!', ...) needs an nn.Module "
            "subclass, got <class 'object'>",
            None,
            id="register-bad-entry",
        ),
    ],
)
def test_imports_module_fault(
    tmp_path: Path, write_module: WriteModule, unique: str, body: str, message: str, hint: str | None
) -> None:
    name = f"{unique}.blocks"
    write_module(name, body)
    path = write_spec(tmp_path, f'["{unique}."]', [name])
    exc = import_error(path)
    assert located(exc) == [(4, 11, message.format(name=name), hint)]
    assert str(exc).startswith(f"{path}:4:11: error: imports[0]: {message.format(name=name)}")


def test_imports_missing_module(tmp_path: Path, unique: str) -> None:
    path = write_spec(tmp_path, f'["{unique}."]', [f"{unique}.blocks"])
    exc = import_error(path)
    assert located(exc) == [
        (4, 11, f"cannot import '{unique}.blocks': ModuleNotFoundError: No module named {unique!r}", None)
    ]


# ---- the caller's trust boundary --------------------------------------------------------------


def test_imports_caller_prefixes_apply_when_file_has_none(
    tmp_path: Path, write_module: WriteModule, unique: str
) -> None:
    write_module(f"{unique}.blocks", REGISTERS_BLOCK.format(key=f"{unique}.block"))
    path = write_spec(tmp_path, None, [f"{unique}.blocks"], block=f"{unique}.block")
    load_spec(path, allowed_import_prefixes=[f"{unique}."])


@pytest.mark.parametrize("written", ['["{u}.blocks"]', '["{u}.blocks."]', '["{u}."]'])
def test_imports_file_may_narrow_caller_prefixes(
    tmp_path: Path, write_module: WriteModule, unique: str, written: str
) -> None:
    write_module(f"{unique}.blocks", REGISTERS_BLOCK.format(key=f"{unique}.block"))
    path = write_spec(tmp_path, written.format(u=unique), [f"{unique}.blocks"], block=f"{unique}.block")
    spec = load_spec(path, allowed_import_prefixes=[f"{unique}."])
    assert spec.model.graph.modules["b"].type_ == f"{unique}.block"


def test_imports_file_empty_prefixes_admit_nothing(
    tmp_path: Path, write_module: WriteModule, unique: str
) -> None:
    module = write_module(f"{unique}.blocks", RECORDS_IMPORT)
    path = write_spec(tmp_path, "[]", [f"{unique}.blocks"])
    exc = import_error(path, allowed_import_prefixes=[f"{unique}."])
    assert located(exc) == [
        (
            4,
            11,
            f"import '{unique}.blocks' is outside the allowed import prefixes",
            "add its prefix to settings.allowed_import_prefixes",
        )
    ]
    assert not ran(module)


def test_imports_narrowed_prefixes_are_the_ones_that_apply(
    tmp_path: Path, write_module: WriteModule, unique: str
) -> None:
    module = write_module(f"{unique}.other", RECORDS_IMPORT)
    path = write_spec(tmp_path, f'["{unique}.blocks."]', [f"{unique}.other"])
    exc = import_error(path, allowed_import_prefixes=[f"{unique}."])
    assert located(exc) == [
        (
            4,
            11,
            f"import '{unique}.other' is outside the allowed import prefixes",
            f"allowed: {unique}.blocks.",
        )
    ]
    assert not ran(module)


@pytest.mark.parametrize(
    ("written", "index"),
    [
        ('["{u}.blocks.", "my_project."]', 1),
        ('["{u}_evil."]', 0),
        ('["{u}"]', 0),
        ('[""]', 0),
    ],
)
def test_imports_file_cannot_widen_caller_prefixes(
    tmp_path: Path, write_module: WriteModule, unique: str, written: str, index: int
) -> None:
    module = write_module(f"{unique}.blocks.mlp", RECORDS_IMPORT)
    written = written.format(u=unique)
    path = write_spec(tmp_path, written, [f"{unique}.blocks.mlp"])
    exc = import_error(path, allowed_import_prefixes=[f"{unique}.blocks."])
    prefix = [p.strip(' "') for p in written.strip("[]").split(",")][index]
    # The caret sits on the opening quote of the offending prefix, on line 3.
    col = path.read_text().splitlines()[2].index(f'"{prefix}"') + 1
    assert located(exc) == [
        (
            3,
            col,
            f"prefix {prefix!r} widens the caller's trust boundary",
            f"the caller allows only: {unique}.blocks.",
        )
    ]
    assert str(exc).startswith(f"{path}:3:{col}: error: settings.allowed_import_prefixes[{index}]: ")
    assert not ran(module)
