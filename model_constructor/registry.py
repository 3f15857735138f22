"""`Registry`: the only names a spec can reach, by key, with a signature policy per entry.

A spec never resolves a dotted path to an object (Hydra's `_target_: os.system` problem):
`_type_` and `fn:` look keys up here, and nothing else. Each build gets its own registry,
started from the built-ins and extended by the spec's `imports`, so one build's
registrations never leak into another's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

import torch

SignaturePolicy = Literal["strict", "lax", "none"]
EntryKind = Literal["module", "function"]
POLICIES: tuple[SignaturePolicy, ...] = ("strict", "lax", "none")

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """A registered block class or function."""

    key: str
    target: Callable[..., Any]
    kind: EntryKind
    signature_policy: SignaturePolicy

    @property
    def import_path(self) -> str:
        """`module.qualname` of the target. A callable object without a qualname (such as a
        `functools.partial`) is named by its class: its repr holds a memory address, which
        would make the architecture fingerprint differ between processes."""
        target = self.target if hasattr(self.target, "__qualname__") else type(self.target)
        return f"{getattr(target, '__module__', None) or '?'}.{target.__qualname__}"


class Registry:
    """Block classes (for `_type_`) and functions (for `call: fn:KEY`), by key."""

    def __init__(self) -> None:
        self._entries: dict[EntryKind, dict[str, Entry]] = {"module": {}, "function": {}}

    @classmethod
    def with_builtins(cls) -> Registry:
        """A new registry holding every `nn.*` module and the curated `torch.*` / `F.*` functions."""
        registry = cls()
        for kind, entries in _builtin_entries().items():
            registry._entries[kind].update(entries)
        return registry

    def copy(self) -> Registry:
        other = Registry()
        for kind, entries in self._entries.items():
            other._entries[kind].update(entries)
        return other

    def update(self, other: Registry) -> None:
        """Add every entry of `other`; a key taken by a different object is an error."""
        for entries in other._entries.values():
            for entry in entries.values():
                self._add(entry)

    @overload
    def register_module(
        self, key: str, cls: None = None, *, signature_policy: SignaturePolicy = "strict"
    ) -> Callable[[T], T]: ...

    @overload
    def register_module(
        self, key: str, cls: type[torch.nn.Module], *, signature_policy: SignaturePolicy = "strict"
    ) -> type[torch.nn.Module]: ...

    def register_module(
        self,
        key: str,
        cls: type[torch.nn.Module] | None = None,
        *,
        signature_policy: SignaturePolicy = "strict",
    ) -> Any:
        """Register an `nn.Module` subclass under `key`; without `cls`, return a decorator."""
        if cls is None:
            return lambda target: self.register_module(key, target, signature_policy=signature_policy)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise TypeError(f"register_module({key!r}, ...) needs an nn.Module subclass, got {cls!r}")
        self._add(Entry(key, cls, "module", signature_policy))
        return cls

    @overload
    def register_function(
        self, key: str, fn: None = None, *, signature_policy: SignaturePolicy = "strict"
    ) -> Callable[[T], T]: ...

    @overload
    def register_function(self, key: str, fn: T, *, signature_policy: SignaturePolicy = "strict") -> T: ...

    def register_function(
        self,
        key: str,
        fn: Callable[..., Any] | None = None,
        *,
        signature_policy: SignaturePolicy = "strict",
    ) -> Any:
        """Register a function for `call: fn:KEY`; without `fn`, return a decorator."""
        if fn is None:
            return lambda target: self.register_function(key, target, signature_policy=signature_policy)
        if not callable(fn) or isinstance(fn, type):
            raise TypeError(f"register_function({key!r}, ...) needs a function, got {fn!r}")
        self._add(Entry(key, fn, "function", signature_policy))
        return fn

    def _add(self, entry: Entry) -> None:
        if not _KEY.match(entry.key):
            raise ValueError(
                f"invalid registry key {entry.key!r}: use dotted identifiers such as 'my_project.token_mixer'"
            )
        if entry.signature_policy not in POLICIES:
            raise ValueError(
                f"invalid signature_policy {entry.signature_policy!r} for {entry.key!r}; "
                f"expected one of {', '.join(POLICIES)}"
            )
        table = self._entries[entry.kind]
        existing = table.get(entry.key)
        if existing is not None:
            if existing.target is entry.target and existing.signature_policy == entry.signature_policy:
                return  # the same register() runs again: a no-op
            raise ValueError(
                f"{entry.kind} key {entry.key!r} is already registered to {existing.import_path} "
                f"(policy {existing.signature_policy!r}); cannot register {entry.import_path} "
                f"(policy {entry.signature_policy!r}) under it"
            )
        table[entry.key] = entry

    def get(self, kind: EntryKind, key: str) -> Entry | None:
        return self._entries[kind].get(key)

    def keys(self, kind: EntryKind) -> list[str]:
        return sorted(self._entries[kind])

    def __contains__(self, key: object) -> bool:
        return any(key in table for table in self._entries.values())

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(t)} {kind}s" for kind, t in self._entries.items())
        return f"Registry({counts})"


_BUILTINS: dict[EntryKind, dict[str, Entry]] | None = None


def _builtin_entries() -> dict[EntryKind, dict[str, Entry]]:
    # Built lazily: `import model_constructor` should cost nothing beyond torch itself.
    global _BUILTINS
    if _BUILTINS is None:
        from . import torch_builtins

        registry = Registry()
        torch_builtins.register(registry)
        _BUILTINS = registry._entries
    return _BUILTINS
