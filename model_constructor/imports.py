"""The import stage: check every `imports` entry against the trust boundary, then import it.

Every name is checked before the first one is imported, because importing runs the
module's code: a spec from outside must not be able to run anything it names. Prefixes
match on dotted boundaries (`my_project.` admits `my_project.blocks`, not `my_project_evil`),
which is the mistake a plain `startswith` makes.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence

from .errors import Diagnostic, SpecError
from .load import LoadedSpec
from .registry import Registry
from .source import SourceMap

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _base(prefix: str) -> str:
    return prefix.rstrip(".")


def admits(prefix: str, name: str) -> bool:
    """Whether `prefix` admits module `name`, on a dotted boundary."""
    base = _base(prefix)
    return bool(base) and (name == base or name.startswith(base + "."))


def effective_prefixes(loaded: LoadedSpec, caller: Sequence[str] | None) -> list[str]:
    """The file's prefixes, narrowed to the caller's; raise if the file tries to widen them."""
    written = loaded.spec.settings.allowed_import_prefixes
    if caller is None:
        return list(written or [])
    if written is None:
        return list(caller)
    problems = [
        loaded.diagnostic(
            ("settings", "allowed_import_prefixes", index),
            f"prefix {prefix!r} widens the caller's trust boundary",
            hint=f"the caller allows only: {', '.join(caller) or 'nothing'}",
        )
        for index, prefix in enumerate(written)
        if not any(admits(allowed, _base(prefix)) for allowed in caller)
    ]
    if problems:
        raise SpecError(problems, loaded.sources)
    return list(written)


def run_imports(loaded: LoadedSpec, registry: Registry, prefixes: Sequence[str]) -> None:
    """Import each module named in the spec's `imports` and call its `register(registry)`."""
    import_blocks(loaded.spec.imports, registry, prefixes, loaded.source_map, loaded.sources)


def import_blocks(
    names: Sequence[str],
    registry: Registry,
    prefixes: Sequence[str] | None,
    source_map: SourceMap,
    sources: dict[str, str],
) -> None:
    """Check every name against `prefixes`, then import each and call its `register(registry)`.

    `prefixes=None` means the names come from the caller, not from a spec file (such as
    `json_schema(imports=...)`): they are trusted as they are. Problems are reported at
    `("imports", index)`.
    """
    problems: list[Diagnostic] = []
    for index, name in enumerate(names):
        path = ("imports", index)
        if name.startswith("."):
            problems.append(source_map.diagnostic(path, f"relative import {name!r} is not allowed"))
        elif not _MODULE_NAME.match(name):
            problems.append(source_map.diagnostic(path, f"{name!r} is not a module name"))
        elif prefixes is not None and not any(admits(prefix, name) for prefix in prefixes):
            problems.append(
                source_map.diagnostic(
                    path,
                    f"import {name!r} is outside the allowed import prefixes",
                    hint=(
                        f"allowed: {', '.join(prefixes)}"
                        if prefixes
                        else "add its prefix to settings.allowed_import_prefixes"
                    ),
                )
            )
    if problems:
        raise SpecError(problems, sources)

    for index, name in enumerate(names):
        path = ("imports", index)
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise SpecError(
                [source_map.diagnostic(path, f"cannot import {name!r}: {type(exc).__name__}: {exc}")],
                sources,
            ) from exc
        register = getattr(module, "register", None)
        if not callable(register):
            raise SpecError(
                [
                    source_map.diagnostic(
                        path,
                        f"module {name!r} has no register(registry) function",
                        hint="define `def register(registry): registry.register_module(...)` in it",
                    )
                ],
                sources,
            )
        try:
            register(registry)
        except Exception as exc:
            raise SpecError(
                [source_map.diagnostic(path, f"{name}.register(registry) failed: {exc}")],
                sources,
            ) from exc
