"""The architecture fingerprint: a hash that changes whenever the built architecture can.

A checkpoint is only meaningful for the architecture it was trained with, and a state_dict
does not say which one that was: two specs that differ in a dropout, an activation or the
wiring of the forward give the same keys and shapes, and load "strictly" into each other.
So we hash what decides the architecture rather than the state_dict:

- the resolved spec (`model.spec`: after overrides and interpolation) as canonical JSON,
  keys sorted and no whitespace, so neither dict order nor the file's formatting counts;
- every registry key the spec uses (each `_type_`, each `call: fn:KEY`) with the import
  path of the class or function it resolved to in that build, so the same YAML built
  against a different registration under the same key fingerprints differently.

The YAML text itself is not hashed (comments and formatting are not the architecture), nor
is anything that differs between processes: no `hash()` (salted per process), no `id()` or
memory address, no file path (the spec holds none; positions live in the SourceMap).

`module_fingerprints` hash the same things for each top-level module alone (its resolved
spec, the sub-graphs it uses, its blocks' import paths), so that a mismatch can name the
modules that differ (checkpoint.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .registry import EntryKind, Registry
from .spec import SUBGRAPH_PREFIX, ModelSpec

# Bumped whenever what is hashed changes, so that old and new fingerprints never agree by accident.
FORMAT = 1


def fingerprints(spec: ModelSpec, registry: Registry) -> tuple[str, dict[str, str]]:
    """The fingerprint of the model built from `spec` with `registry`, and one per top-level
    module, in spec order; each a sha256 hex digest."""
    data = spec.to_data()
    model = data.get("model", {})
    graphs: dict[str, Any] = model.get("graphs", {})
    whole = _digest({"format": FORMAT, "spec": data, "registry": _used_entries(data, registry)})
    per_module = {}
    for name, module in model.get("graph", {}).get("modules", {}).items():
        part = {"module": module, "graphs": _used_graphs(module, graphs)}
        per_module[name] = _digest({"format": FORMAT, **part, "registry": _used_entries(part, registry)})
    return whole, per_module


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True, default=_as_json)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _as_json(value: Any) -> Any:
    # A spec built in Python may hold a value JSON has no form for (a torch.dtype): it counts
    # by type and repr, which is stable for such values (an object whose repr is its address
    # is not reproducible from a spec file anyway). A set's repr follows the hash seed: sorted.
    shown = sorted(map(repr, value)) if isinstance(value, (set, frozenset)) else repr(value)
    return {"__object__": f"{type(value).__module__}.{type(value).__qualname__}", "repr": shown}


def _walk(data: Any) -> list[dict[str, Any]]:
    """Every mapping inside `data`, iteratively (a spec is at most MAX_DEPTH deep, but cheap to be sure)."""
    found: list[dict[str, Any]] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _used_entries(data: Any, registry: Registry) -> dict[EntryKind, dict[str, str]]:
    """Registry key -> import path, for each `_type_` and `fn:` key used in `data`.

    `graph:NAME` types are not registry keys: the sub-graph is part of the spec itself.
    """
    used: dict[EntryKind, dict[str, str]] = {"module": {}, "function": {}}
    for mapping in _walk(data):
        wanted: list[tuple[EntryKind, str]] = []
        block, call = mapping.get("_type_"), mapping.get("call")
        if isinstance(block, str) and not block.startswith(SUBGRAPH_PREFIX):
            wanted.append(("module", block))
        if isinstance(call, str) and call.startswith("fn:"):
            wanted.append(("function", call[len("fn:") :]))
        for kind, key in wanted:
            entry = registry.get(kind, key)
            if entry is not None:
                used[kind][key] = entry.import_path
    return used


def _used_graphs(module: Any, graphs: dict[str, Any]) -> dict[str, Any]:
    """The sub-graph definitions `module` uses, directly or through other sub-graphs."""
    used: dict[str, Any] = {}
    pending = [module]
    while pending:
        for mapping in _walk(pending.pop()):
            block = mapping.get("_type_")
            if isinstance(block, str) and block.startswith(SUBGRAPH_PREFIX):
                name = block[len(SUBGRAPH_PREFIX) :]
                if name in graphs and name not in used:
                    used[name] = graphs[name]
                    pending.append(graphs[name])
    return used
