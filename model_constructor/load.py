"""From a path, a dict or a ModelSpec to a validated `ModelSpec` and its `SourceMap`.

The first half of the pipeline: load (once), apply overrides, interpolate, validate. Each
stage reports all of its faults at once; pydantic's errors are mapped back to file
positions here, so no stage after this one ever sees a location-less problem.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel

from .errors import ConfigPath, Diagnostic, SpecError, closest, did_you_mean
from .interpolation import interpolate, interpolate_data
from .overrides import apply_overrides
from .plain import plain_tree
from .plan import CallKind
from .source import SourceMap, load_yaml_file
from .spec import CALL, PATTERN_MEANINGS, SUPPORTED_SCHEMA_VERSIONS, ModelSpec

SpecSource = str | Path | Mapping[str, Any] | ModelSpec


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec, with where each part of it was written."""

    spec: ModelSpec
    source_map: SourceMap
    sources: dict[str, str] = field(default_factory=dict)

    def diagnostic(self, path: ConfigPath, message: str, **extra: Any) -> Diagnostic:
        return self.source_map.diagnostic(path, message, **extra)


def load(source: SpecSource, overrides: Mapping[str, Any] | None = None) -> LoadedSpec:
    """Run load, overrides, interpolate and validate on `source`."""
    if isinstance(source, ModelSpec):
        # Round-trip through data, as in `load_tree`, then the one walk of a dict. Checked in
        # full again: a spec built in Python may hold anything in its `Any` fields, lists
        # mutated since, or values pydantic never saw (`model_construct`).
        source = source.to_data()
    if isinstance(source, Mapping) and not overrides:
        # Copied and interpolated in one walk: NOTE: [One copy of data].
        source_map = SourceMap()
        return LoadedSpec(validate(interpolate_data(source, source_map, {}), source_map, {}), source_map, {})
    tree, source_map, sources = load_tree(source, overrides)
    # The result is bounded again: interpolation can repeat and nest values (NOTE: [YAML bounds]).
    resolved = interpolate(tree, source_map, sources)
    return LoadedSpec(validate(resolved, source_map, sources), source_map, sources)


def load_tree(
    source: SpecSource, overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], SourceMap, dict[str, str]]:
    """The plain tree of `source` with `overrides` applied, not yet interpolated or validated."""
    if isinstance(source, ModelSpec):
        # Interpolations written in Python are resolved as in a file: round-trip through data.
        source = source.to_data()
    if isinstance(source, (str, Path)):
        loaded = load_yaml_file(source)
        tree, source_map, sources = loaded.tree, loaded.source_map, {str(source): loaded.text}
    elif isinstance(source, Mapping):
        tree, source_map, sources = plain_tree(source, SourceMap(), {}), SourceMap(), {}
    else:
        raise TypeError(f"expected a path, a mapping or a ModelSpec, got {type(source).__name__}")
    if not isinstance(tree, dict):
        raise SpecError(
            [source_map.diagnostic((), "a spec must be a mapping with schema_version and model")],
            sources,
        )
    if overrides:
        tree = apply_overrides(tree, overrides, source_map, sources)
    return tree, source_map, sources


def validate(tree: dict[str, Any], source_map: SourceMap, sources: dict[str, str]) -> ModelSpec:
    return validate_section(ModelSpec, tree, (), source_map, sources)


SectionT = typing.TypeVar("SectionT", bound=BaseModel)


def validate_section(
    model: type[SectionT],
    data: Any,
    prefix: ConfigPath,
    source_map: SourceMap,
    sources: dict[str, str],
) -> SectionT:
    """`model.model_validate(data)` for the part of a spec written at `prefix`; faults as SpecError."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        diagnostics: dict[ConfigPath, Diagnostic] = {}
        for error in exc.errors():
            diag = _diagnostic(error, source_map, model, prefix, data)
            # A union (such as `outputs`) fails once per member: report its path once.
            diagnostics.setdefault(diag.path, diag)
        raise SpecError(list(diagnostics.values()), sources) from None


def _data_path(loc: tuple[int | str, ...], data: Any) -> ConfigPath:
    """pydantic's loc as a path into `data`, without the union-member tags (`list[str]`) it
    inserts. A part is such a tag only where `data` has no key of that name: keys may hold '['."""
    path: list[str | int] = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and "[" in part:
            continue
        else:
            data = None
        path.append(part)
    return tuple(path)


def _diagnostic(
    error: Any, source_map: SourceMap, model: type[BaseModel], prefix: ConfigPath, data: Any
) -> Diagnostic:
    kind = error["type"]
    relative = _data_path(error["loc"], data)
    path = (*prefix, *relative)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, relative[:-1])
        hint = did_you_mean(str(path[-1]), allowed) or (
            f"allowed keys: {', '.join(allowed)}" if allowed else None
        )
        return source_map.diagnostic(path, f"unknown key {path[-1]!r}", key=True, hint=hint)
    if kind == "missing":
        return source_map.diagnostic(path, f"missing required key {path[-1]!r}")
    if path == ("schema_version",):
        supported = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        return source_map.diagnostic(
            path,
            f"unsupported schema_version {error.get('input')!r}",
            hint=f"this version of model_constructor reads schema_version {supported}",
        )
    got = error.get("input")
    shown = repr(got) if len(repr(got)) <= 60 else repr(got)[:57] + "..."
    if kind == "string_pattern_mismatch" and (expected := PATTERN_MEANINGS.get(error["ctx"]["pattern"])):
        hint = _call_hint(got) if error["ctx"]["pattern"] == CALL else None
        return source_map.diagnostic(path, f"{expected}, got {shown}", hint=hint)
    return source_map.diagnostic(path, f"{error['msg'].rstrip('.')}, got {shown}")


def _call_hint(value: Any) -> str | None:
    """'did you mean' for a call whose kind is misspelled: `modul:proj` -> 'module:proj'."""
    kind, colon, target = str(value).partition(":")
    match = closest(kind, typing.get_args(CallKind)) if colon else None
    return f"did you mean '{match}:{target}'?" if match else None


def _allowed_keys(root: type[BaseModel], path: ConfigPath) -> list[str]:
    """The field names (aliases) of the spec model that sits at `path` below `root`, if any."""
    annotation: Any = root
    for part in path:
        model = _model_in(annotation)
        if model is not None and isinstance(part, str):
            fields = {f.alias or name: f for name, f in model.model_fields.items()}
            if part not in fields:
                return []
            annotation = fields[part].annotation
            continue
        args = typing.get_args(annotation)
        annotation = args[-1] if args else Any
    model = _model_in(annotation)
    if model is None:
        return []
    return sorted(f.alias or name for name, f in model.model_fields.items())


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class `annotation` names, directly or in a union such as `Settings | None`
    (the first one of a tagged union such as `model.graph`'s, members unwrapped)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    # Only a union: `dict[str, NodeSpec]` holds NodeSpecs under its keys, it is not one.
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Annotated:
            arg = typing.get_args(arg)[0]
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
