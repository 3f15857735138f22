"""Copy caller data (mappings, sequences, pydantic models) into bounded plain data.

A spec given as Python data, or a value a caller overrides, is copied before anything else
touches it, so nothing we do can mutate the caller's objects, and it is held to the same
bounds as a spec file (NOTE: [YAML bounds] in source.py), so a dict nested 100,000 deep or
holding itself is refused like an oversized file, not by overflowing the stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .errors import ConfigPath, Diagnostic, SpecError
from .source import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, SourceMap, past_bounds

# After interpolation a spec holds no more text than a spec file may (NOTE: [YAML bounds]),
# and no integer too long for Python to turn into text (sys.get_int_max_str_digits, 4300
# digits): such an int could not be formatted into a string, a message or the fingerprint.
MAX_TEXT = MAX_FILE_BYTES
MAX_INT_BITS = 14_000


def plain_tree(value: Any, source_map: SourceMap, sources: dict[str, str]) -> Any:
    """A copy of `value` as dicts, lists and scalars, within the bounds of NOTE: [YAML bounds].

    Copies caller data, so that nothing we do can mutate it. Iterative, so that no input
    (a dict nested 100,000 deep, or holding itself) can overflow the stack; a value is
    counted each time it occurs, so shared values count as often as they are used.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, ConfigPath, Any, Any, int]] = [(value, (), root, 0, 0)]
    problems: list[Diagnostic] = []
    count = text = 0
    while stack:
        item, path, parent, slot, depth = stack.pop()
        count += 1
        # This runs once per value of a spec, twice per build: plain str, dict and list take
        # the short way, since `isinstance` against BaseModel and Mapping (ABCs) is slow.
        kind = type(item)
        if kind is str and count <= MAX_VALUES and depth <= MAX_DEPTH:
            text += len(item)
            if text <= MAX_TEXT:
                parent[slot] = item
                continue
        if kind is not dict and kind is not list and isinstance(item, BaseModel):
            item = item.model_dump(by_alias=True, exclude_defaults=True)
        too_large = past_bounds(count, depth)
        if too_large is None:
            if isinstance(item, str) and kind is not str:  # a str's length was counted above
                text += len(item)
            elif isinstance(item, int) and item.bit_length() > MAX_INT_BITS:
                too_large = f"an integer of more than {MAX_INT_BITS} bits"
            elif isinstance(item, int):
                text += item.bit_length() // 3  # about its number of digits
        if text > MAX_TEXT:
            too_large = f"more than {MAX_TEXT} characters of strings and numbers"
        if too_large is not None:
            problems.append(source_map.diagnostic(path, f"spec too large: {too_large}"))
            break
        if kind is dict or (kind is not list and isinstance(item, Mapping)):
            out: dict[str, Any] = {}
            parent[slot] = out
            # Children are filled in as they are popped: last pushed, first filled.
            for key, child in reversed(list(item.items())):
                if isinstance(key, str):
                    stack.append((child, (*path, key), out, key, depth + 1))
                else:
                    problems.append(source_map.diagnostic(path, f"mapping keys must be strings, got {key!r}"))
        elif isinstance(item, (list, tuple)):
            items: list[Any] = [None] * len(item)
            parent[slot] = items
            stack.extend((item[i], (*path, i), items, i, depth + 1) for i in reversed(range(len(item))))
        else:
            parent[slot] = item
    if problems:
        raise SpecError(problems, sources)
    return root[0]
