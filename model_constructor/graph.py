"""Graph checks: references, names, cycles, `order`, outputs and `return`, and a topological order.

Everything here works on names only, before any module exists, so a broken graph is
reported in full without constructing anything. Cycle search and ordering are iterative:
a graph thousands of nodes deep must not overflow the Python stack.
"""

from __future__ import annotations

import heapq
import keyword
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigPath, Diagnostic, did_you_mean
from .source import SourceMap

_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+)*)$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = frozenset(keyword.kwlist)


# Not frozen, hashed by value all the same (codegen keys a dict by Ref), and never changed
# once parsed: NOTE: [Plans made by the thousand] in plan.py.
@dataclass(slots=True, unsafe_hash=True)
class Ref:
    """`$name` or `$name.0.key`: the value of a graph input or node, optionally indexed."""

    name: str
    index: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return "$" + ".".join([self.name, *map(str, self.index)])


def parse_refs(
    value: Any,
    path: ConfigPath,
    source_map: SourceMap,
    problems: list[Diagnostic],
    found: list[Ref] | None = None,
) -> Any:
    """Replace `$ref` strings in `value` (nested lists and dicts too) with `Ref`; `$$x` -> `$x`.

    Each Ref of the result (parsed, or a `Ref` already in `value`) is appended to `found`, in
    document order: the check stage needs them, and a second walk of every node's arguments
    (`refs_in`) would cost as much as this one. Their paths are not: `refs_in` finds those,
    for the few refs that are reported.
    """
    if isinstance(value, list):  # first: a node's args
        items: list[Any] = []
        for i, item in enumerate(value):
            # The usual item, `$name` (a node's arguments are mostly that), without a call.
            name = item[1:] if type(item) is str and item[:1] == "$" else ""
            if found is not None and name.isascii() and name.isidentifier():
                item = Ref(name)
                found.append(item)
                items.append(item)
            else:
                items.append(parse_refs(item, (*path, i), source_map, problems, found))
        return items
    if isinstance(value, str):
        if not value.startswith("$"):
            return value
        if value.startswith("$$"):
            return value[1:]
        name = value[1:]
        if name.isascii() and name.isidentifier():  # `$name`, the usual ref, without the regex
            value = Ref(name)
        elif (match := _REF.match(value)) is not None:
            index = tuple(int(p) if p.isdigit() else p for p in match.group(2).split(".")[1:])
            value = Ref(match.group(1), index)
        else:
            problems.append(
                source_map.diagnostic(
                    path,
                    f"invalid reference {value!r}",
                    hint="write $name, $name.0 or $name.key; write $$ for a literal '$'",
                )
            )
            return value
    if isinstance(value, Ref):
        if found is not None:
            found.append(value)
        return value
    if isinstance(value, dict):
        return {k: parse_refs(v, (*path, k), source_map, problems, found) for k, v in value.items()}
    return value


def contains_ref(value: Any) -> bool:
    """Whether a Ref is inside `value` (as `refs_in(value)` would find one, without listing them)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Ref):
            return True
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return False


def refs_in(value: Any) -> list[tuple[Ref, tuple[str | int, ...]]]:
    """Every Ref inside `value`, with its position relative to `value`."""
    found: list[tuple[Ref, tuple[str | int, ...]]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if isinstance(item, Ref):
            found.append((item, where))
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in enumerate(item))
        elif isinstance(item, dict):
            stack.extend((v, (*where, k)) for k, v in item.items())
    return found


def check_name(
    name: str, path: ConfigPath, what: str, source_map: SourceMap, reserved: frozenset[str] = frozenset()
) -> Diagnostic | None:
    """A name that becomes Python code (argument, attribute) must be a plain identifier."""
    # The regex matches every ASCII identifier, which str methods find at a fraction of its
    # cost; it still judges the rest.
    plain = name.isascii() and name.isidentifier()
    if (not plain and not _IDENTIFIER.match(name)) or keyword.iskeyword(name):
        return source_map.diagnostic(
            path,
            f"{what} name {name!r} is not a Python identifier",
            key=True,
            hint="use letters, digits and _",
        )
    if name in reserved:
        return source_map.diagnostic(
            path, f"{what} name {name!r} is reserved by the built model", key=True, hint="rename it"
        )
    return None


def plain_names(names: Iterable[str], reserved: frozenset[str]) -> bool:
    """Whether `check_name` would find nothing wrong with any of `names`: the usual case,
    found at C speed, without a call per name."""
    names = list(names)
    return (
        all(map(str.isidentifier, names))
        and "".join(names).isascii()
        and _KEYWORDS.isdisjoint(names)
        and reserved.isdisjoint(names)
    )


def check_refs(
    uses: Mapping[str, list[Ref]],
    known: Sequence[str],
    source_map: SourceMap,
    locate: Callable[[str], list[tuple[Ref, ConfigPath]]],
) -> list[Diagnostic]:
    """Each node's refs must name a graph input or a node. `locate(user)` gives `uses[user]`
    with each ref's path, to report it at."""
    known_set = set(known)
    if known_set.issuperset([ref.name for refs in uses.values() for ref in refs]):
        return []  # the usual case, found without a list per node
    problems = []
    for user, refs in uses.items():
        if known_set.issuperset([ref.name for ref in refs]):
            continue  # the usual case: the suggestions below cost O(nodes) per node
        unknown = [(ref, path) for ref, path in locate(user) if ref.name not in known_set]
        # A node cannot use itself, so it is no suggestion for its own refs.
        candidates = [name for name in known if name != user]
        problems += [
            source_map.diagnostic(
                path,
                f"unknown reference '${ref.name}'",
                hint=did_you_mean(ref.name, candidates) or f"known names: {', '.join(candidates) or 'none'}",
                span=len(str(ref)),
            )
            for ref, path in unknown
        ]
    return problems


def dependencies(uses: Mapping[str, list[Ref]], nodes: Sequence[str]) -> dict[str, list[str]]:
    """node -> the nodes whose results it uses (graph inputs left out), in first-use order."""
    node_set = set(nodes)
    deps = {}
    for name in nodes:
        used = [ref.name for ref in uses.get(name, ()) if ref.name in node_set]
        deps[name] = list(dict.fromkeys(used)) if len(used) > 1 else used
    return deps


def runs_in_order(order: Sequence[str], uses: Mapping[str, list[Ref]], inputs: Iterable[str]) -> bool:
    """Whether `order` lists every node of `uses` once, each after the nodes whose results it
    uses, and every other ref names one of `inputs`.

    Such an order proves the graph has no cycle, and `check_refs` would find nothing. When it
    is the declaration order, it is also the one `topological_order` returns (Kahn's
    algorithm taking the first declared node ready), so a graph written in running order, the
    usual case, is checked and ordered in one pass, without `dependencies`.
    """
    if len(order) != len(uses):
        return False
    done: set[str] = set()
    known = set(inputs)
    for name in order:
        refs = uses.get(name)
        if refs is None or name in done:
            return False
        for ref in refs:
            # A node's result, once computed, or else an input (a node shadows an input).
            if ref.name not in done and (ref.name in uses or ref.name not in known):
                return False
        done.add(name)
    return True


def find_cycle(deps: Mapping[str, list[str]], nodes: Sequence[str]) -> list[str] | None:
    """One dependency cycle, as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in nodes:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, next_index = stack.pop()
            if next_index == 0:
                state[node] = 1
                path.append(node)
            children = deps.get(node, [])
            if next_index < len(children):
                stack.append((node, next_index + 1))
                child = children[next_index]
                if state.get(child) == 1:
                    return [*path[path.index(child) :], child]
                if not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def topological_order(deps: Mapping[str, list[str]], nodes: Sequence[str]) -> list[str]:
    """Kahn's algorithm, ties broken by declaration order, so the result is deterministic."""
    position = {name: i for i, name in enumerate(nodes)}
    users: dict[str, list[str]] = {name: [] for name in nodes}
    waiting = {name: len(deps[name]) for name in nodes}
    for name in nodes:
        for dep in deps[name]:
            users[dep].append(name)
    ready = [position[name] for name in nodes if waiting[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = nodes[heapq.heappop(ready)]
        order.append(name)
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, position[user])
    return order


def check_order(
    order: Sequence[str],
    deps: Mapping[str, list[str]],
    nodes: Sequence[str],
    graph_path: ConfigPath,
    source_map: SourceMap,
) -> list[Diagnostic]:
    """A written `order` lists every node exactly once, each after the nodes it uses."""
    problems: list[Diagnostic] = []
    order_path = (*graph_path, "order")
    position: dict[str, int] = {}
    for index, name in enumerate(order):
        path = (*order_path, index)
        if name not in deps:
            problems.append(
                source_map.diagnostic(
                    path, f"order names unknown node {name!r}", hint=did_you_mean(name, nodes)
                )
            )
        elif name in position:
            problems.append(source_map.diagnostic(path, f"order lists node {name!r} twice"))
        else:
            position[name] = index
    missing = [name for name in nodes if name not in position]
    if missing:
        problems.append(
            source_map.diagnostic(
                order_path,
                f"order leaves out node(s) {', '.join(missing)}",
                hint="list every node, or remove order to have one computed",
            )
        )
    for name, index in position.items():
        for dep in deps[name]:
            if dep in position and position[dep] > index:
                problems.append(
                    source_map.diagnostic(
                        (*order_path, index),
                        f"order runs {name!r} before {dep!r}, whose result it uses",
                        hint=f"move {dep!r} before {name!r}",
                        span=len(name),
                    )
                )
    return problems
