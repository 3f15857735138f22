"""docs/spec.md cannot rot: every complete spec on the page builds, and the outputs it shows are regenerated.

The page's conventions (stated at its top): a ```yaml block with `schema_version` is a complete
spec; one whose first line is `# fragment` is part of a spec and only has to be YAML. A
```python block starting with `def forward` right after a spec is its `model.code`; a ```text
block right after a spec is the error it raises when saved as `model.yaml`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from helpers import build_checked

from model_constructor import ModelSpec, SpecError, build_model
from model_constructor.source import load_yaml_text
from model_constructor.torch_builtins import FUNCTIONAL, TORCH_FUNCTIONS

SPEC_DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
TEXT = SPEC_DOC.read_text(encoding="utf-8")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    language: str
    body: str
    line: int  # of the opening fence, 1-based

    @property
    def id(self) -> str:
        return f"spec.md:{self.line}"


BLOCKS = [Block(m.group(1), m.group(2), TEXT.count("\n", 0, m.start()) + 1) for m in _FENCE.finditer(TEXT)]
YAML_BLOCKS = [b for b in BLOCKS if b.language == "yaml"]
FRAGMENTS = [b for b in YAML_BLOCKS if b.body.startswith("# fragment")]
SPECS = [b for b in YAML_BLOCKS if b not in FRAGMENTS]


def _shown_after(spec: Block) -> Block | None:
    """The block right after `spec` on the page, when it shows that spec's code or error."""
    following = BLOCKS[BLOCKS.index(spec) + 1 :]
    if not following:
        return None
    after = following[0]
    if after.language == "text" or (after.language == "python" and after.body.startswith("def forward")):
        return after
    return None


ERROR_SPECS = [b for b in SPECS if (shown := _shown_after(b)) is not None and shown.language == "text"]
BUILDING_SPECS = [b for b in SPECS if b not in ERROR_SPECS]


def _write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    (tmp_path / "model.yaml").write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return "model.yaml"


def test_spec_doc_has_examples() -> None:
    assert len(BUILDING_SPECS) >= 15
    assert len(ERROR_SPECS) >= 1
    assert any(_shown_after(b) is not None for b in BUILDING_SPECS)


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: b.id)
def test_spec_doc_yaml_block_is_spec_or_fragment(block: Block) -> None:
    # A block that is neither would be skipped silently; mark parts of specs as fragments.
    is_fragment = block in FRAGMENTS
    assert is_fragment != ("schema_version:" in block.body)


@pytest.mark.parametrize("block", FRAGMENTS, ids=lambda b: b.id)
def test_spec_doc_fragment_is_yaml(block: Block) -> None:
    assert isinstance(load_yaml_text(block.body, block.id).tree, dict)


@pytest.mark.parametrize("block", BUILDING_SPECS, ids=lambda b: b.id)
def test_spec_doc_spec_builds(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_checked(_write(tmp_path, monkeypatch, block.body))

    shown = _shown_after(block)
    if shown is not None:
        assert model.code.strip() == shown.body.strip()


@pytest.mark.parametrize("block", SPECS, ids=lambda b: b.id)
def test_spec_doc_spec_matches_json_schema(block: Block) -> None:
    # What an editor checks as the user types: the page shows no spec the editor would flag.
    validator = jsonschema.Draft202012Validator(ModelSpec.model_json_schema())

    assert [e.message for e in validator.iter_errors(load_yaml_text(block.body, block.id).tree)] == []


@pytest.mark.parametrize("block", ERROR_SPECS, ids=lambda b: b.id)
def test_spec_doc_spec_error_is_shown(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _shown_after(block)
    assert shown is not None

    with pytest.raises(SpecError) as caught:
        build_model(_write(tmp_path, monkeypatch, block.body))

    assert str(caught.value) == shown.body.rstrip("\n")


def test_spec_doc_builtin_functions_are_listed() -> None:
    start = TEXT.index("- `torch.*`:")
    torch_part, _, functional_part = TEXT[start : TEXT.index("A project adds its own")].partition("- `F.*`")

    assert sorted(torch_part.split(":", 1)[1].split()) == sorted(TORCH_FUNCTIONS)
    assert sorted(functional_part.split(":", 1)[1].split()) == sorted(FUNCTIONAL)
