"""Every problem in a spec is a `SpecError`; every warning is a `SpecWarning`.

The tree::

    ValueError
    └── SpecError          # one or more Diagnostics, rendered like a compiler's message
    UserWarning
    └── SpecWarning        # a Diagnostic of severity "warning" (unused module or node)

One class rather than one per fault: callers catch a single type, and tools read the structured
`diagnostics` list instead of parsing messages. Checks return lists of `Diagnostic`; only the
stage boundary raises, once, with all of them (see `raise_if_errors`).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

ConfigPath = tuple[str | int, ...]


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
            source_lines = text.splitlines()
            if 0 < loc.line <= len(source_lines):
                gutter = str(loc.line)
                pad = " " * len(gutter)
                underline = "^" + "~" * max(self.span - 1, 0)
                lines.append(f" {gutter} | {source_lines[loc.line - 1]}")
                lines.append(f" {pad} | {' ' * (loc.col - 1)}{underline}")
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
        parts = [d.render(self.sources) for d in self.diagnostics]
        if count > 1:
            parts.append(f"{count} errors")
        return "\n".join(parts)

    def __reduce__(self) -> tuple[type[SpecError], tuple[tuple[Diagnostic, ...], dict[str, str]]]:
        return (type(self), (self.diagnostics, self.sources))


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


def raise_if_errors(diagnostics: Sequence[Diagnostic], sources: Mapping[str, str]) -> None:
    """The one place a stage turns its collected diagnostics into an exception."""
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise SpecError(errors, sources)
