"""The README shows what the code does: its specs load, and its outputs are regenerated here.

Each complete spec (a ```yaml block with `schema_version`) is loaded with `load_spec`; the
block module the specs import is the README's own ```python block, written to a temp dir.
The error messages and generated code shown in the README are produced again and compared
verbatim, so a change to a message fails here until the README is updated with it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_constructor import SpecError, build_model, load_spec

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")

# A fenced block, possibly indented inside a list item: (indent, language, body).
_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


def _blocks(language: str, after: str | None = None) -> list[str]:
    """The bodies of the README's fenced blocks in `language`, those after `after` if given."""
    start = 0 if after is None else TEXT.index(after) + len(after)
    bodies = []
    for match in _FENCE.finditer(TEXT):
        indent, lang, body = match.groups()
        if lang == language and match.start() >= start:
            bodies.append("".join(line[len(indent) :] for line in body.splitlines(keepends=True)))
    return bodies


SPECS = [body for body in _blocks("yaml") if "schema_version" in body]
SEED_SPEC = SPECS[0] if SPECS else ""
BLOCK_MODULE = next((body for body in _blocks("python") if "def register(registry)" in body), "")


@pytest.fixture
def seed_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tmp_path holding the README's `my_project/model_blocks.py`, importable, cwd set to it."""
    (tmp_path / "my_project").mkdir()
    (tmp_path / "my_project" / "model_blocks.py").write_text(BLOCK_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    # Another test may have imported a different `my_project`; import ours, then restore theirs.
    ours = re.compile(r"^my_project(\.|$)")
    saved = {name: module for name, module in sys.modules.items() if ours.match(name)}
    for name in saved:
        del sys.modules[name]
    yield tmp_path
    for name in [name for name in sys.modules if ours.match(name)]:
        del sys.modules[name]
    sys.modules.update(saved)


def _write_spec(root: Path, text: str) -> str:
    path = root / "configs" / "models" / "my_model.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return "configs/models/my_model.yaml"


def test_docs_readme_has_seed_example() -> None:
    assert SPECS, "README.md has no ```yaml block with schema_version"
    assert "class TokenMixer" in BLOCK_MODULE


@pytest.mark.parametrize("spec", SPECS, ids=[f"yaml{index}" for index in range(len(SPECS))])
def test_docs_readme_spec_loads(spec: str, seed_project: Path) -> None:
    loaded = load_spec(_write_spec(seed_project, spec))
    assert loaded.schema_version == 1


def test_docs_readme_error_output_matches(seed_project: Path) -> None:
    (diff,) = _blocks("diff")
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    spec = SEED_SPEC
    for old, new in zip(removed, added, strict=True):
        assert old in spec
        spec = spec.replace(old, new)
    shown = _blocks("text", after="```diff")[0]

    with pytest.raises(SpecError) as caught:
        build_model(_write_spec(seed_project, spec))
    assert str(caught.value) == shown.rstrip("\n")


def test_docs_readme_trust_boundary_output_matches(seed_project: Path) -> None:
    call = 'build_model(path, allowed_import_prefixes=["my_project."])'
    shown = _blocks("text", after=call)[0]

    with pytest.raises(SpecError) as caught:
        build_model(_write_spec(seed_project, SEED_SPEC), allowed_import_prefixes=["my_project."])
    assert str(caught.value) == shown.rstrip("\n")


def test_docs_readme_forward_matches(seed_project: Path) -> None:
    shown = next(body for body in _blocks("python") if body.startswith("def forward"))
    model = build_model(_write_spec(seed_project, SEED_SPEC))
    assert [line.rstrip() for line in model.code.strip().splitlines()] == shown.strip().splitlines()


@pytest.mark.parametrize(
    "command",
    [
        "python -m pip install -c .ci/constraints.txt -r requirements.txt"
        " && (cd examples/seed && python infer.py)",
        "python -m pip install -c .ci/constraints.txt -r requirements-test.txt && python -m pytest -q",
    ],
    ids=["example", "tests"],
)
def test_docs_readme_command_shown(command: str) -> None:
    assert f"{command}\n" in _blocks("sh")
