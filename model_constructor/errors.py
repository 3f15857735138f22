"""Every problem in a spec is a `SpecError`; every warning is a `SpecWarning`.

The tree::

    ValueError
    ├── SpecError                  # one or more Diagnostics, rendered like a compiler's message
    └── CheckpointMismatchError    # load_checkpoint: saved from a different architecture
    UserWarning
    └── SpecWarning                # a Diagnostic of severity "warning" (unused module or node)

One class rather than one per fault: callers catch a single type, and tools read the structured
`diagnostics` list instead of parsing messages. Checks return lists of `Diagnostic`; only the
stage boundary raises, once, with all of them. A checkpoint that does
not fit its model is no fault of a spec, so it has its own class, which names the modules.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ConfigPath = tuple[str | int, ...]

# NOTE: [Bounded messages]
# A spec from outside may be one 16 MB line holding a million faults. A message shows the
# first MAX_RENDERED diagnostics, each with at most MAX_EXCERPT characters of its source line
# around the caret, and a file is split into lines once however many diagnostics point into
# it; without this, rendering such a spec's error took minutes and gigabytes.
MAX_RENDERED = 50
MAX_EXCERPT = 160


@functools.lru_cache(maxsize=2)
def source_lines(text: str) -> tuple[str, ...]:
    """`text.splitlines()`, computed once per text. See NOTE: [Bounded messages]."""
    return tuple(text.splitlines())


def _excerpt(line: str, col: int, span: int) -> tuple[str, int, int]:
    """At most MAX_EXCERPT characters of `line` around 1-based `col`; `col` and `span` in them."""
    if len(line) <= MAX_EXCERPT:
        return line, col, span
    start = max(0, min(col - 1 - MAX_EXCERPT // 2, len(line) - MAX_EXCERPT))
    prefix = "..." if start else ""
    suffix = "..." if start + MAX_EXCERPT < len(line) else ""
    col = col - start + len(prefix)
    shown = prefix + line[start : start + MAX_EXCERPT] + suffix
    return shown, col, max(1, min(span, len(shown) - len(suffix) - col + 1))


def format_path(path: ConfigPath) -> str:
    """`("model", "graph", "nodes", "h1", "args", 0)` -> `model.graph.nodes.h1.args[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like `name`, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    match = closest(name, candidates)
    return f"did you mean {match!r}?" if match else None


@dataclass(frozen=True)
class Location:
    """A position in a YAML file; `line` and `col` are 1-based, as editors show them."""

    file: str
    line: int
    col: int

    def format(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where it is (file position and config path), what is wrong, and a hint."""

    path: ConfigPath
    message: str
    location: Location | None = None
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"
    # How many characters the caret underline spans in the excerpt.
    span: int = 1
    # Secondary positions worth naming, such as where a referenced param is defined.
    related: tuple[tuple[str, Location], ...] = field(default=())

    def sort_key(self) -> tuple[str, int, int, str]:
        loc = self.location
        if loc is None:
            return ("\uffff", 0, 0, format_path(self.path))
        return (loc.file, loc.line, loc.col, format_path(self.path))

    def headline(self) -> str:
        where = self.location.format() + ": " if self.location else ""
        text = f"{where}{self.severity}: {format_path(self.path)}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def render(self, sources: Mapping[str, str]) -> str:
        """The headline, then the source line with a caret under the fault, then related notes."""
        lines = [self.headline()]
        loc = self.location
        text = sources.get(loc.file) if loc else None
        if loc is not None and text is not None:
            all_lines = source_lines(text)
            if 0 < loc.line <= len(all_lines):
                gutter = str(loc.line)
                pad = " " * len(gutter)
                shown, col, span = _excerpt(all_lines[loc.line - 1], loc.col, self.span)
                underline = "^" + "~" * max(span - 1, 0)
                lines.append(f" {gutter} | {shown}")
                lines.append(f" {pad} | {' ' * (col - 1)}{underline}")
        for what, where in self.related:
            lines.append(f"  note: {what} at {where.format()}")
        return "\n".join(lines)


class SpecError(ValueError):
    """A spec is invalid. `diagnostics` lists every problem found in the failing stage."""

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: Mapping[str, str] | None = None):
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
        self.sources: dict[str, str] = dict(sources or {})
        super().__init__(self._render())

    def _render(self) -> str:
        count = len(self.diagnostics)
        parts = [d.render(self.sources) for d in self.diagnostics[:MAX_RENDERED]]
        if count > MAX_RENDERED:
            parts.append(f"... and {count - MAX_RENDERED} more (all are in .diagnostics)")
        if count > 1:
            parts.append(f"{count} errors")
        return "\n".join(parts)

    def __reduce__(self) -> tuple[type[SpecError], tuple[tuple[Diagnostic, ...], dict[str, str]]]:
        return (type(self), (self.diagnostics, self.sources))


class CheckpointMismatchError(ValueError):
    """`load_checkpoint` refused a checkpoint saved from a different architecture.

    `modules` names every top-level module that differs: changed (`changed`), only in the
    checkpoint (`only_in_checkpoint`) or only in the model (`only_in_model`). When it is
    empty, the modules match and the rest of the spec differs (params, nodes, outputs...).
    """

    def __init__(
        self,
        path: str,
        checkpoint_fingerprint: str,
        model_fingerprint: str,
        changed: Sequence[str] = (),
        only_in_checkpoint: Sequence[str] = (),
        only_in_model: Sequence[str] = (),
    ):
        self.path = path
        self.checkpoint_fingerprint = checkpoint_fingerprint
        self.model_fingerprint = model_fingerprint
        self.changed = tuple(changed)
        self.only_in_checkpoint = tuple(only_in_checkpoint)
        self.only_in_model = tuple(only_in_model)
        self.modules = (*self.changed, *self.only_in_checkpoint, *self.only_in_model)
        lines = [
            f"checkpoint {path} was saved from a different architecture "
            f"(fingerprint {checkpoint_fingerprint[:12]}, this model's {model_fingerprint[:12]})"
        ]
        for what, names in (
            ("modules that differ", self.changed),
            ("modules only in the checkpoint", self.only_in_checkpoint),
            ("modules only in this model", self.only_in_model),
        ):
            if names:
                lines.append(f"  {what}: {', '.join(names)}")
        if not self.modules:
            lines.append(
                "  every module matches; the rest of the spec differs (params, nodes, outputs, "
                "sub-graphs, imports or settings)"
            )
        lines.append("  pass allow_mismatch=True to load it anyway")
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[type[CheckpointMismatchError], tuple[Any, ...]]:
        return (
            type(self),
            (
                self.path,
                self.checkpoint_fingerprint,
                self.model_fingerprint,
                self.changed,
                self.only_in_checkpoint,
                self.only_in_model,
            ),
        )


def add_note(exc: BaseException, note: str) -> None:
    """`exc.add_note(note)`, once, also on Python 3.10 (PEP 678 notes are 3.11+)."""
    notes = getattr(exc, "__notes__", None)
    if notes is not None and note in notes:
        return
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:
        exc.__notes__ = [*(notes or []), note]  # type: ignore[attr-defined]


class SpecWarning(UserWarning):
    """A spec is valid but probably not what was meant, e.g. a module that is never called.

    `diagnostic` holds the same fault as data, for tools (the command line's `--format json`).
    """

    def __init__(self, message: str, diagnostic: Diagnostic | None = None):
        super().__init__(message)
        self.diagnostic = diagnostic
