"""The trust boundary, as an attacker would probe it: dotted paths, Python tags, wider prefixes.

A spec from outside can name only registry keys (`_type_`, `fn:`), never a dotted path to an
object; it holds plain data only, whatever tag or directive it uses; and the trust boundary
its caller passes can be narrowed by the file (or by overrides) but never widened. Covered
elsewhere: the dotted boundary and import order (test_imports.py), tags on values
(test_errors_load.py), `fn:os.system`, `fn:torch.load` and `fn:torch.save`
(test_errors_check.py, test_registry.py).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import load_error, located, write_spec

PLAIN_DATA_HINT = "specs hold plain data only: mappings, lists, strings, numbers, booleans, null"
UNKNOWN_BLOCK_HINT = "no block is registered under that key; is the module that registers it in imports?"


@pytest.fixture
def sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable package `NAME` with a function `NAME.run`; importing it leaves a trace."""
    name = f"mc_sentinel_{uuid.uuid4().hex[:10]}"
    package = tmp_path / "modules" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('ran').write_text('ran')\n\n"
        "def run(*args, **kwargs):\n    return 0\n\n\nclass Block:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    yield name
    assert not (package / "ran").exists(), f"{name} was imported"
    assert name not in sys.modules
    sys.modules.pop(name, None)


DOTTED_PATHS = [
    "os.system",
    "builtins.eval",
    "torch.load",
    "subprocess.run",
    "SENTINEL.run",
    "SENTINEL.Block",
]


# ---- _type_ and fn: resolve registry keys only -----------------------------------------------


@pytest.mark.parametrize("target", DOTTED_PATHS)
def test_trust_boundary_type_that_looks_like_a_dotted_path_refused(
    tmp_path: Path, sentinel: str, target: str
) -> None:
    target = target.replace("SENTINEL", sentinel)
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              b: {{_type_: {target}, command: "touch ran"}}
            nodes:
              h: {{call: module:b, args: [$x]}}
            outputs: [$h]
        """,
    )
    [(line, col, message, _)] = located(load_error(path))
    assert (line, col, message) == (6, 19, f"unknown block type {target!r}")


@pytest.mark.parametrize("target", DOTTED_PATHS)
def test_trust_boundary_nested_type_that_looks_like_a_dotted_path_refused(
    tmp_path: Path, sentinel: str, target: str
) -> None:
    target = target.replace("SENTINEL", sentinel)
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              layer:
                _type_: nn.TransformerEncoderLayer
                d_model: 4
                nhead: 1
                activation: {{_type_: {target}}}
            nodes:
              h: {{call: module:layer, args: [$x]}}
            outputs: [$h]
        """,
    )
    [(line, col, message, _)] = located(load_error(path))
    assert (line, col, message) == (10, 30, f"unknown block type {target!r}")


@pytest.mark.parametrize("target", DOTTED_PATHS)
def test_trust_boundary_fn_that_looks_like_a_dotted_path_refused(
    tmp_path: Path, sentinel: str, target: str
) -> None:
    target = target.replace("SENTINEL", sentinel)
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            nodes:
              h: {{call: fn:{target}, args: [$x]}}
            outputs: [$h]
        """,
    )
    [(line, col, message, _)] = located(load_error(path))
    assert (line, col, message) == (6, 17, f"unknown function {target!r}")


@pytest.mark.parametrize("method", ["__class__", "__reduce__", "_make_subclass", "__init__"])
def test_trust_boundary_private_tensor_method_refused(tmp_path: Path, method: str) -> None:
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            nodes:
              h: {{call: "method:{method}", args: [$x]}}
            outputs: [$h]
        """,
    )
    [(line, col, message, _)] = located(load_error(path))
    assert (line, col, message) == (6, 17, f"tensor method {method!r} is private")


# ---- !!python and other tags ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "col", "tag"),
    [
        pytest.param(
            "schema_version: 1\nparams:\n  !!python/name:os.system : 1\n",
            3,
            3,
            "!!python/name:os.system",
            id="on-a-key",
        ),
        pytest.param(
            "!!python/object/apply:os.system ['touch {marker}']\n",
            1,
            1,
            "!!python/object/apply:os.system",
            id="on-the-document",
        ),
        pytest.param(
            "schema_version: 1\nparams:\n  x: !!python/object/new:os.system {{args: ['touch {marker}']}}\n",
            3,
            6,
            "!!python/object/new:os.system",
            id="on-a-mapping",
        ),
        pytest.param(
            "schema_version: 1\nparams:\n  x: !!python/module:os\n",
            3,
            6,
            "!!python/module:os",
            id="module",
        ),
        pytest.param(
            "%TAG !p! tag:yaml.org,2002:python/\n---\nschema_version: 1\nparams:\n"
            "  x: !p!object/apply:os.system ['touch {marker}']\n",
            5,
            6,
            "!!python/object/apply:os.system",
            id="through-a-tag-directive",
        ),
        pytest.param(
            "schema_version: 1\nparams:\n"
            "  x: !<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']\n",
            3,
            6,
            "!!python/object/apply:os.system",
            id="verbatim",
        ),
    ],
)
def test_trust_boundary_python_tag_refused(tmp_path: Path, text: str, line: int, col: int, tag: str) -> None:
    marker = tmp_path / "ran"
    graph = "model: {graph: {inputs: [x], nodes: {h: {call: 'method:relu', args: [$x]}}, outputs: [$h]}}\n"
    body = text.format(marker=marker)
    path = write_spec(tmp_path, body + (graph if body.startswith(("schema", "%")) else ""))
    assert located(load_error(path)) == [(line, col, f"YAML tag {tag!r} is not allowed", PLAIN_DATA_HINT)]
    assert not marker.exists()


# ---- the caller's prefixes: narrowed, never widened -------------------------------------------


def prefixes_spec(tmp_path: Path, written: str) -> Path:
    return write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        settings:
          allowed_import_prefixes: {written}
        model:
          graph:
            inputs: [x]
            nodes:
              h: {{call: method:relu, args: [$x]}}
            outputs: [$h]
        """,
    )


def test_trust_boundary_caller_trusting_nothing_is_not_widened(tmp_path: Path) -> None:
    exc = load_error(prefixes_spec(tmp_path, '["my_project."]'), allowed_import_prefixes=[])
    assert located(exc) == [
        (3, 29, "prefix 'my_project.' widens the caller's trust boundary", "the caller allows only: nothing")
    ]


@pytest.mark.parametrize("written", ['["os."]', '["my_project"]', '["my_project_evil."]', '["."]'])
def test_trust_boundary_overrides_cannot_widen_the_caller(tmp_path: Path, written: str) -> None:
    # Overrides come from the caller's own command line, but not past its own boundary.
    path = prefixes_spec(tmp_path, '["my_project.blocks."]')
    prefix = written.strip('[]"')
    exc = load_error(
        path,
        allowed_import_prefixes=["my_project.blocks."],
        overrides={"settings.allowed_import_prefixes": [prefix]},
    )
    [diagnostic] = exc.diagnostics
    assert diagnostic.message == f"prefix {prefix!r} widens the caller's trust boundary"
    assert diagnostic.location is not None and diagnostic.location.file == "<overrides>"
