"""Caller overrides such as `params.width=256`, applied to the loaded tree before interpolation.

They are applied to the plain tree, not to the validated `ModelSpec`: a value that others
interpolate (`${params.width * 4}`) then changes them too, and an overridden value is checked
by the same stages as one written in the file. Without a `+` prefix the path must already
exist, so a typo is an error with a did-you-mean rather than a new key that nothing reads
(Hydra's convention: `+params.new=1` adds a key).

NOTE: [Override positions]
Overrides get a virtual source file, `<overrides>`, one line per override written as
`path=value`. The SourceMap entries of an overridden value are replaced by its line there, so
a later fault in it (a wrong type, an unknown param) points at the override, not at the text
the file wrote and the override replaced. An unknown path points at the mapping in the file
where the key was looked for, with a note naming the override.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ConfigPath, Diagnostic, Location, SpecError, closest, format_path
from .plain import plain_tree
from .source import MAX_DEPTH, SourceMap, load_yaml_text

OVERRIDES_FILE = "<overrides>"


def apply_overrides(
    tree: dict[str, Any],
    overrides: Mapping[str, Any],
    source_map: SourceMap,
    sources: dict[str, str],
) -> dict[str, Any]:
    """Set each `dotted.path` of `overrides` in `tree` (in place, and returned).

    `source_map` and `sources` are updated to point overridden values at `<overrides>`.
    Raises SpecError listing every override whose path does not exist.
    """
    # Copied first: bounded (a value nested 100,000 deep is refused, not recursed into) and
    # never shared with the caller.
    values = {written: plain_tree(value, source_map, sources) for written, value in overrides.items()}
    lines = [f"{written}={_shown(value)}" for written, value in values.items()]
    sources[OVERRIDES_FILE] = "\n".join(lines)
    problems: list[Diagnostic] = []
    for line, (written, value) in enumerate(values.items(), start=1):
        # The value, on the override's line: the caret of a later fault points at it.
        at_value = Location(OVERRIDES_FILE, line, len(written) + 2)
        problem = _apply(tree, written, value, source_map, at_value)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise SpecError(problems, sources)
    return tree


def _apply(
    tree: dict[str, Any], written: str, value: Any, source_map: SourceMap, at_value: Location
) -> Diagnostic | None:
    add = written.startswith("+")
    parts = written[1:].split(".") if add else written.split(".")
    at_override = Location(at_value.file, at_value.line, 1)
    if not all(parts):
        return Diagnostic(
            path=(),
            message=f"invalid override path {written!r}",
            location=at_override,
            hint="write a dotted path such as params.width or model.graph.inputs.0",
            span=len(written),
        )
    if len(parts) > MAX_DEPTH:
        # `+a.a.a...` would make a mapping that deep, which later stages walk recursively.
        return Diagnostic(
            path=(),
            message=f"spec too large: override path nested deeper than {MAX_DEPTH} levels",
            location=at_override,
        )
    path: ConfigPath = ()
    container: Any = tree
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(container, dict):
            if part not in container:
                if not add:
                    return _unknown(written, path, part, list(container), source_map, at_override)
                container[part] = value if last else {}
            key: str | int = part
        elif isinstance(container, list) and part.isdigit() and int(part) < len(container):
            key = int(part)
        else:
            what = f"a list of {len(container)}" if isinstance(container, list) else type(container).__name__
            return _located(
                source_map,
                path,
                f"override {written!r}: {format_path(path)} is {what}, which has no item {part!r}",
                at_override,
            )
        path = (*path, key)
        if last:
            container[key] = value
        container = container[key]
    _forget(source_map, path)
    source_map.values[path] = (at_value, len(_shown(value)))
    return None


def _unknown(
    written: str,
    parent: ConfigPath,
    part: str,
    keys: list[str],
    source_map: SourceMap,
    at_override: Location,
) -> Diagnostic:
    where = format_path(parent) if parent else "the top level"
    match = closest(part, keys)
    hint = (
        f"did you mean {format_path((*parent, match))!r}?"
        if match
        else f"write +{written} to add a new key" + (f"; keys there: {', '.join(keys)}" if keys else "")
    )
    return _located(
        source_map, parent, f"override {written!r}: no key {part!r} in {where}", at_override, hint=hint
    )


def _located(
    source_map: SourceMap, parent: ConfigPath, message: str, at_override: Location, hint: str | None = None
) -> Diagnostic:
    """A fault at the mapping the override reached in the file, or at the override itself."""
    diagnostic = source_map.diagnostic(parent, message, key=True, hint=hint)
    if diagnostic.location is None:
        return Diagnostic(path=parent, message=message, location=at_override, hint=hint)
    return Diagnostic(
        path=parent,
        message=message,
        location=diagnostic.location,
        hint=hint,
        span=diagnostic.span,
        related=(("set by override", at_override),),
    )


def _forget(source_map: SourceMap, path: ConfigPath) -> None:
    """Drop the file positions of the value at `path` and of everything inside it."""
    depth = len(path)
    for inside in [p for p in source_map.values if p[:depth] == path]:
        del source_map.values[inside]
    # The key itself is still written in the file; only the keys inside the value go.
    for inside in [p for p in source_map.keys if p[:depth] == path and p != path]:
        del source_map.keys[inside]


def _shown(value: Any) -> str:
    """The value as it is shown on its `<overrides>` line: JSON, which is also YAML."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def parse_assignment(text: str) -> tuple[str, Any]:
    """`params.width=256` -> ("params.width", 256): the value read as YAML, so `${...}` also works.

    Raises ValueError for text without `=`, SpecError for a value that is not valid YAML.
    """
    path, equals, value = text.partition("=")
    path = path.strip()
    if not equals or not path:
        raise ValueError(f"{text!r} is not PATH=VALUE, such as params.width=256")
    return path, load_yaml_text(value, f"--set {path}").tree if value.strip() else None
