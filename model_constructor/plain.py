"""Copy caller data (mappings, sequences, pydantic models) into bounded plain data.

A spec given as Python data, or a value a caller overrides, is copied before anything else
touches it, so nothing we do can mutate the caller's objects, and it is held to the same
bounds as a spec file (NOTE: [YAML bounds] in source.py), so a dict nested 100,000 deep or
holding itself is refused like an oversized file, not by overflowing the stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from .errors import ConfigPath, Diagnostic, SpecError
from .source import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, SourceMap, past_bounds

# After interpolation a spec holds no more text than a spec file may (NOTE: [YAML bounds]),
# and no integer too long for Python to turn into text (sys.get_int_max_str_digits, 4300
# digits): such an int could not be formatted into a string, a message or the fingerprint.
MAX_TEXT = MAX_FILE_BYTES
MAX_INT_BITS = 14_000

# NOTE: [Bounded copy, fast and exact]
# A spec given as data is copied (here), and every spec's interpolated result is built as a
# copy (interpolation.py), both within the bounds: this runs on every value of a spec, twice
# per build from data. Within the bounds, only the totals matter: `BoundedCopy` copies
# recursively, with no paths, and tallies values and text; it checks the depth before it
# descends and the count of a container's values before it reads them, so no tree costs it
# more than the bounds allow. At anything that would be reported (a bound passed, a key
# that is not a string) it raises `Unbounded`, and the caller starts over with the exact
# walk, `exact_plain_tree`, which visits the values in order with their paths and reports
# the first value past a bound. Faults are rare, so they pay for the walk twice.


class Unbounded(Exception):
    """The fast copy met something the exact walk reports, or, copying data that must be
    plain, something that is not (internal, never escapes)."""


class BoundedCopy:
    """Copies plain data while counting it against the bounds of NOTE: [YAML bounds].

    One instance tallies one tree: the root is counted when it is made. Raises `Unbounded`
    past a bound or at a key that is not a string; see NOTE: [Bounded copy, fast and exact].
    """

    __slots__ = ("text", "values")

    def __init__(self) -> None:
        self.values = 1  # the root
        self.text = 0  # characters of strings, and digits of integers

    def count(self, children: int, depth: int) -> None:
        """Count `children` more values at `depth`."""
        if children:
            self.values += children
            if self.values > MAX_VALUES or depth > MAX_DEPTH:
                raise Unbounded

    def finish(self) -> None:
        """Check the total text, which only grows, once the whole tree is counted."""
        if self.text > MAX_TEXT:
            raise Unbounded

    def copy(self, item: Any, depth: int) -> Any:
        """A copy of `item`, a value at `depth` that is already counted."""
        kind = type(item)
        if kind is str:
            self.text += len(item)
            return item
        if kind is dict:
            return self._mapping(item.items(), len(item), depth)
        if kind is list:
            return self._sequence(item, depth)
        if kind is int:
            return self.integer(item)
        if kind is float or item is None or kind is bool:
            return item
        return self._other(item, depth)

    def _other(self, item: Any, depth: int) -> Any:
        """`copy` of what is not of a plain type: subclasses, models, other mappings."""
        # After the plain types: `isinstance` against ABCs is slow.
        if isinstance(item, BaseModel):
            return self.copy(item.model_dump(by_alias=True, exclude_defaults=True), depth)
        if isinstance(item, str):
            self.text += len(item)
            return item
        if isinstance(item, int):
            return self.integer(item)
        if isinstance(item, Mapping):
            pairs = list(item.items())
            return self._mapping(pairs, len(pairs), depth)
        if isinstance(item, (list, tuple)):
            return self._sequence(item, depth)
        return item

    def _mapping(self, pairs: Iterable[tuple[Any, Any]], size: int, depth: int) -> dict[str, Any]:
        self.count(size, depth + 1)
        out: dict[str, Any] = {}
        text = 0
        for key, child in pairs:
            if type(key) is not str and not isinstance(key, str):
                raise Unbounded
            if type(child) is str:
                text += len(child)
                out[key] = child
            else:
                out[key] = self.copy(child, depth + 1)
        self.text += text
        return out

    def _sequence(self, items: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        self.count(len(items), depth + 1)
        return [self.copy(child, depth + 1) for child in items]

    def integer(self, item: int) -> int:
        """`item`, an int, counted."""
        bits = item.bit_length()
        if bits > MAX_INT_BITS:
            raise Unbounded
        self.text += bits // 3  # about its number of digits
        return item


class PlainCopy(BoundedCopy):
    """A `BoundedCopy` of data that must be plain already: it raises `Unbounded` at a model,
    a tuple, or a mapping or list of a type of its own, which `BoundedCopy` would convert."""

    __slots__ = ()

    def _other(self, item: Any, depth: int) -> Any:
        if isinstance(item, (BaseModel, Mapping, list, tuple)):
            raise Unbounded
        return super()._other(item, depth)


def plain_tree(value: Any, source_map: SourceMap, sources: dict[str, str]) -> Any:
    """A copy of `value` as dicts, lists and scalars, within the bounds of NOTE: [YAML bounds].

    Copies caller data, so that nothing we do can mutate it. No input (a dict nested 100,000
    deep, or holding itself) can overflow the stack; a value is counted each time it occurs,
    so shared values count as often as they are used.
    """
    bounds = BoundedCopy()
    try:
        copied = bounds.copy(value, 0)
        bounds.finish()
    except Unbounded:
        return exact_plain_tree(value, source_map, sources)
    return copied


def exact_plain_tree(value: Any, source_map: SourceMap, sources: dict[str, str]) -> Any:
    """`plain_tree`, walked value by value in order, with paths: it reports the first value
    past a bound and every key that is not a string. Iterative, so no input overflows the stack.
    See NOTE: [Bounded copy, fast and exact]."""
    root: list[Any] = [None]
    stack: list[tuple[Any, ConfigPath, Any, Any, int]] = [(value, (), root, 0, 0)]
    problems: list[Diagnostic] = []
    count = text = 0
    while stack:
        item, path, parent, slot, depth = stack.pop()
        count += 1
        if isinstance(item, BaseModel):
            item = item.model_dump(by_alias=True, exclude_defaults=True)
        too_large = past_bounds(count, depth)
        if too_large is None:
            if isinstance(item, str):
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
        if isinstance(item, Mapping):
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
