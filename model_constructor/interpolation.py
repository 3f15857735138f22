"""Resolve `${params.x}` and `${params.a * 2}` in a loaded tree, keeping types.

Expressions are parsed with `ast` and evaluated by walking a whitelist of node types
(numbers, strings, params paths, + - * / // % **, unary signs, parentheses), never by
`eval`: a spec is untrusted input, and OmegaConf's custom resolvers and mmcv's `eval`-based
configs show where a general evaluator leads. Results are bounded before they are computed,
so `${params.n ** 10 ** 10}` fails at once instead of exhausting memory.
"""

from __future__ import annotations

import ast
import difflib
import functools
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigPath, Diagnostic, Location, SpecError, format_path, source_lines
from .plain import MAX_INT_BITS as MAX_DATA_INT_BITS
from .plain import MAX_TEXT, BoundedCopy, PlainCopy, Unbounded, exact_plain_tree, plain_tree
from .source import MAX_FILE_BYTES, SourceMap

INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
MAX_INT_BITS = 64
MAX_STRING = 10_000
MAX_CHAIN = 100
# Longer expressions could nest deep enough to exhaust the parser or the Python stack.
MAX_EXPRESSION = 1_000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


class _Failure(Exception):
    """Aborts one interpolation; carries what to report (internal, never escapes)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        related: tuple[tuple[str, Location], ...] = (),
        *,
        already_reported: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.related = related
        # A use of a param whose definition failed: the definition's line carries the error.
        self.already_reported = already_reported


# NOTE: [Deferred interpolation]
# `${args.x}` (a sub-graph's argument) and `${index}` (a repeated copy's index) have a value
# only per instance, known at the check stage. Loading resolves every params reference and
# leaves strings that use them untouched, but only where they can have a value: args inside
# `model.graphs`, index inside the arguments of a module with `_repeat_`. Each instance then
# resolves its copy with `substitute`, which has the same rules and messages.
DEFERRED_ROOTS = frozenset({"args", "index"})
_ROOT_NOUNS = {"params": "param", "args": "sub-graph argument", "index": "name"}


def may_defer(tree: Any, path: ConfigPath, roots: frozenset[str]) -> str | None:
    """None if `roots` can all be resolved later at `path`, else what to tell the user."""
    # A sub-graph's body, not its `args`: a default cannot depend on the values it stands in for.
    if "args" in roots and not (path[:2] == ("model", "graphs") and len(path) > 3 and path[3] != "args"):
        return "${args.NAME} is only available in the body of a sub-graph defined under model.graphs"
    if "index" in roots and not _inside_repeated_module(tree, path):
        return "${index} is only available in the arguments of a module with _repeat_"
    return None


def _inside_repeated_module(tree: Any, path: ConfigPath) -> bool:
    for i, part in enumerate(path[:-2]):
        if part == "modules" and path[i + 2] != "_repeat_":
            module = tree
            for step in path[: i + 2]:
                module = module.get(step) if isinstance(module, dict) else None
            if isinstance(module, dict) and "_repeat_" in module:
                return True
    return False


@dataclass
class _Resolver:
    # Roots a `${...}` may name (`params`, and per instance `args`, `index`) and their values.
    scope: dict[str, Any]
    source_map: SourceMap
    sources: dict[str, str]
    # The tree being resolved, to tell where deferred roots may stand (may_defer).
    tree: Any = None
    deferrable: frozenset[str] = frozenset()
    problems: list[Diagnostic] = field(default_factory=list)
    resolved_params: dict[ConfigPath, Any] = field(default_factory=dict)
    failed_params: set[ConfigPath] = field(default_factory=set)
    in_progress: list[ConfigPath] = field(default_factory=list)
    # Each string resolved so far that defers nothing: its value, and how many characters it
    # made. A spec repeats a few (`${params.width}` 2000 times in a 1000-module spec), and
    # such a string resolves to the same value wherever it is written, since each param is
    # resolved once. Faults are not kept: each use is reported where it is written.
    strings: dict[str, tuple[Any, int]] = field(default_factory=dict)
    # Characters of the strings made so far: bounded like a file (NOTE: [YAML bounds]).
    made: int = 0
    # Tallies the resolved tree as `resolved` builds it: see NOTE: [Bounded copy, fast and exact].
    bounds: BoundedCopy = field(default_factory=BoundedCopy)
    # Of `strings`, those that resolve to a number or a bool, with what one use adds to the
    # text tally of `bounds`: `_resolved_dict` and `_resolved_list` place another use of one
    # in a single step.
    numbers: dict[str, tuple[Any, int]] = field(default_factory=dict)
    # Characters of the `${...}` strings met (some more than once): see NOTE: [One copy of data].
    written: int = 0

    def spend(self, made: int, path: ConfigPath) -> None:
        self.made += made
        if self.made > MAX_FILE_BYTES:
            message = f"spec too large: interpolations make more than {MAX_FILE_BYTES} characters"
            raise SpecError([self.source_map.diagnostic(path, message)], self.sources)

    def tree_value(self) -> dict[str, Any]:
        """The tree resolved, sharing each param's value wherever it is used."""
        out: dict[str, Any] = {}
        for key, value in self.tree.items():
            if key == "params" and isinstance(value, dict):
                out[key] = {name: self.top_param(name) for name in value}
            else:
                out[key] = self.value(value, (key,))
        return out

    def resolved_tree(self) -> dict[str, Any]:
        """`tree_value`, but copied throughout and counted against the bounds as it is built.

        Raises Unbounded past a bound: then the exact walk tells which value is the first
        past it (NOTE: [Bounded copy, fast and exact]).
        """
        bounds = self.bounds
        bounds.count(len(self.tree), 1)
        out: dict[str, Any] = {}
        for key, value in self.tree.items():
            if not isinstance(key, str):
                raise Unbounded
            if key == "params" and isinstance(value, dict):
                bounds.count(len(value), 2)
                out[key] = {name: bounds.copy(self.top_param(name), 2) for name in value}
            else:
                out[key] = self.resolved(value, (key,), 1)
        bounds.finish()
        return out

    def resolved(self, value: Any, path: ConfigPath, depth: int) -> Any:
        """A resolved copy of `value`, written at `path` and `depth` and already counted.

        Recursive, as deep as the tree: `bounds` stops it past MAX_DEPTH before it descends.
        """
        kind = type(value)
        if kind is dict:
            return self._resolved_dict(value, path, depth)
        if kind is list:
            return self._resolved_list(value, path, depth)
        if isinstance(value, str) and "${" in value:
            return self._interpolated(value, path, depth)
        return self.bounds.copy(value, depth)

    def _interpolated(self, text: str, path: ConfigPath, depth: int) -> Any:
        """The value of `text`, which holds `${...}`, counted at `depth`: a copy of its own,
        since a param's value may be used many times."""
        result = self.string(text, path)
        before = self.bounds.text
        copied = self.bounds.copy(result, depth)
        if type(result) in (int, float, bool) and text in self.strings:
            self.numbers[text] = (result, self.bounds.text - before)
        return copied

    # NOTE: [Resolving the usual values]
    # `_resolved_dict` and `_resolved_list` run once per container of a spec, their loops once
    # per value. Most values take the short way, in the loop itself: strings with nothing to
    # resolve, strings resolved before to a number (`${params.width}`, 2000 times in a
    # 1000-module spec), integers within the bound, and the containers below, with their text
    # tallied in a local. The rest go through `resolved`. The two loops differ only in how they
    # store a value and in the dict's key check: one loop for both (`out[key] =` into a list
    # made beforehand, the keys checked before it, integers counted by `BoundedCopy.integer`)
    # measured 0.5 to 0.6 ms slower on a 1000-module spec, of 2.

    def _resolved_dict(self, value: dict[Any, Any], path: ConfigPath, depth: int) -> dict[str, Any]:
        """A resolved copy of `value`, a dict written at `path` and `depth` and already counted."""
        bounds = self.bounds
        bounds.count(len(value), depth + 1)
        depth += 1
        numbers = self.numbers
        text = written = 0
        out: dict[str, Any] = {}
        for key, child in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise Unbounded  # reported by the exact walk, as in BoundedCopy
            kind = type(child)
            if kind is str:
                if "${" not in child:
                    text += len(child)
                    out[key] = child
                    continue
                if (number := numbers.get(child)) is not None:
                    out[key] = number[0]
                    text += number[1]
                    written += len(child)
                    continue
            elif kind is int and (bits := child.bit_length()) <= MAX_DATA_INT_BITS:
                text += bits // 3  # as BoundedCopy.integer
                out[key] = child
                continue
            elif kind is dict:
                out[key] = self._resolved_dict(child, (*path, key), depth)
                continue
            elif kind is list:
                out[key] = self._resolved_list(child, (*path, key), depth)
                continue
            out[key] = self.resolved(child, (*path, key), depth)
        bounds.text += text
        self.written += written
        return out

    def _resolved_list(self, value: list[Any], path: ConfigPath, depth: int) -> list[Any]:
        """`_resolved_dict` for a list."""
        bounds = self.bounds
        bounds.count(len(value), depth + 1)
        depth += 1
        numbers = self.numbers
        text = written = 0
        out: list[Any] = []
        for index, child in enumerate(value):
            kind = type(child)
            if kind is str:
                if "${" not in child:
                    text += len(child)
                    out.append(child)
                    continue
                if (number := numbers.get(child)) is not None:
                    out.append(number[0])
                    text += number[1]
                    written += len(child)
                    continue
            elif kind is int and (bits := child.bit_length()) <= MAX_DATA_INT_BITS:
                text += bits // 3  # as BoundedCopy.integer
                out.append(child)
                continue
            elif kind is dict:
                out.append(self._resolved_dict(child, (*path, index), depth))
                continue
            elif kind is list:
                out.append(self._resolved_list(child, (*path, index), depth))
                continue
            out.append(self.resolved(child, (*path, index), depth))
        bounds.text += text
        self.written += written
        return out

    def deferred(self, text: str, path: ConfigPath) -> bool:
        """Whether `text` names a root resolved later; raise if it cannot be resolved there."""
        roots = (
            frozenset(root for match in INTERPOLATION.finditer(text) for root in _root_names(match.group(1)))
            & self.deferrable
        )
        if not roots:
            return False
        problem = may_defer(self.tree, path, roots)
        if problem is not None:
            raise _Failure(problem)
        return True

    def top_param(self, name: str) -> Any:
        try:
            return self.param(("params", name))
        except _Failure as failure:
            if not failure.already_reported:
                self.problems.append(self.source_map.diagnostic(("params", name), failure.message))
            return None

    def value(self, value: Any, path: ConfigPath) -> Any:
        if isinstance(value, str):
            return self.string(value, path) if "${" in value else value
        if isinstance(value, dict):
            return {k: self.value(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def string(self, text: str, path: ConfigPath) -> Any:
        self.written += len(text)
        # Only strings that defer nothing are kept, so one found needs no `deferred` check.
        known = self.strings.get(text)
        if known is not None:
            result, made = known
            if made:
                self.spend(made, path)
            return result
        whole = INTERPOLATION.fullmatch(text)
        try:
            if self.deferred(text, path):
                return text
            if whole:
                result = self.expression(whole.group(1), path)
                made = len(result) if isinstance(result, str) else 0
                self.spend(made, path)
                self.strings[text] = (result, made)
                return result
            pieces = []
            for match in INTERPOLATION.finditer(text):
                result = self.expression(match.group(1), path)
                if isinstance(result, (dict, list)):
                    raise _Failure(
                        f"'${{{match.group(1)}}}' is a {type(result).__name__}, "
                        "which cannot be formatted into a string",
                        hint="use it as the whole value",
                    )
                pieces.append(str(result))
            made = sum(map(len, pieces))
            self.spend(made, path)
            parts = iter(pieces)
            result = INTERPOLATION.sub(lambda _: next(parts), text)
            self.strings[text] = (result, made)
            return result
        except _Failure as failure:
            self.report(path, text, failure)
            return None

    def report(self, path: ConfigPath, text: str, failure: _Failure) -> None:
        if failure.already_reported:
            return
        diag = self.source_map.diagnostic(path, failure.message, hint=failure.hint, related=failure.related)
        if diag.location is not None:
            diag = _point_into_string(diag, text, self.sources)
        self.problems.append(diag)

    def expression(self, source: str, path: ConfigPath) -> Any:
        if len(source) > MAX_EXPRESSION:
            raise _Failure(
                f"interpolation is {len(source)} characters long, over the limit of {MAX_EXPRESSION}",
                hint="split it into several params",
            )
        parsed = _parse(source)
        if parsed is None:
            raise _Failure(
                f"invalid interpolation '${{{source}}}'",
                hint="write a params path such as ${params.width}, optionally with + - * / // % **",
            ) from None
        try:
            return self.evaluate(parsed.body, source)
        except RecursionError:
            raise _Failure(f"'${{{source}}}' is nested too deeply") from None
        except _Failure as failure:
            if not failure.related:
                failure.related = self.definitions(parsed)
            raise

    def definitions(self, parsed: ast.AST) -> tuple[tuple[str, Location], ...]:
        """Where each params path named in an expression is defined, for the error's notes."""
        found: list[tuple[str, Location]] = []
        for node in ast.walk(parsed):
            if isinstance(node, (ast.Attribute, ast.Subscript)):
                try:
                    path = _name_path(node, "", self.scope)
                except _Failure:
                    continue
                location = self.source_map.written(path)
                name = f"{format_path(path)} is defined"
                if location is not None and all(name != seen for seen, _ in found):
                    found.append((name, location[0]))
        return tuple(found)

    def evaluate(self, node: ast.AST, source: str) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left = self.evaluate(node.left, source)
            right = self.evaluate(node.right, source)
            return _apply_binary(type(node.op), left, right, source)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            operand = self.evaluate(node.operand, source)
            if not _is_number(operand):
                raise _Failure(f"unary sign on a {type(operand).__name__} in '${{{source}}}'")
            return _UNARY[type(node.op)](operand)
        if isinstance(node, (ast.Attribute, ast.Name, ast.Subscript)):
            return self.param(_name_path(node, source, self.scope))
        raise _Failure(
            f"'{ast.unparse(node)}' is not allowed in '${{{source}}}'",
            hint="only params paths, numbers, strings and + - * / // % ** are allowed",
        )

    def param(self, path: ConfigPath) -> Any:
        if path in self.resolved_params:
            return self.resolved_params[path]
        if path in self.failed_params:
            raise _Failure("", already_reported=True)
        if path in self.in_progress:
            cycle = [*self.in_progress[self.in_progress.index(path) :], path]
            related = tuple(
                (f"{format_path(p)} is defined", loc)
                for p in cycle[:-1]
                if (loc := self.source_map.locate(p)[0]) is not None
            )
            raise _Failure(
                "interpolation cycle: " + " -> ".join(format_path(p) for p in cycle),
                related=related,
            )
        if len(self.in_progress) >= MAX_CHAIN:
            raise _Failure(f"params refer to each other more than {MAX_CHAIN} levels deep")
        raw = self.lookup(path)
        self.in_progress.append(path)
        before = len(self.problems)
        try:
            value = self.value(raw, path)
        finally:
            self.in_progress.pop()
        if len(self.problems) > before:
            self.failed_params.add(path)
            raise _Failure("", already_reported=True)
        self.resolved_params[path] = value
        return value

    def lookup(self, path: ConfigPath) -> Any:
        current: Any = self.scope
        for depth, part in enumerate(path):
            here = path[: depth + 1]
            if isinstance(current, dict) and isinstance(part, str) and part in current:
                current = current[part]
            elif isinstance(current, list) and isinstance(part, int) and -len(current) <= part < len(current):
                current = current[part]
            else:
                # Compare last names only: full paths all share `params.`, which makes any two
                # of them look alike to difflib ('params.heads' -> 'params.bad').
                siblings = {str(k): (*here[:-1], k) for k in current} if isinstance(current, dict) else {}
                close = difflib.get_close_matches(str(part), list(siblings), n=1, cutoff=0.6)
                raise _Failure(
                    f"unknown {_ROOT_NOUNS.get(str(path[0]), 'name')} '{format_path(here)}'",
                    hint=f"did you mean '{format_path(siblings[close[0]])}'?" if close else None,
                )
        return current


# Parsing is most of what interpolation costs, and a spec repeats a few expressions many
# times (`${params.width}` 2000 times in a 1000-module spec): each distinct one is parsed
# once, then read, never changed. Bounded, since specs are untrusted input.
@functools.lru_cache(maxsize=4096)
def _parse(source: str) -> ast.Expression | None:
    """The parsed body of one `${...}`, or None if it is not a valid expression."""
    try:
        return ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # ValueError: a null byte (Python 3.10); RecursionError, MemoryError: nesting
        # too deep for the parser.
        return None


@functools.lru_cache(maxsize=4096)
def _root_names(source: str) -> frozenset[str]:
    """The names an expression starts its paths from (`args` in `args.width * 2`)."""
    parsed = _parse(source) if len(source) <= MAX_EXPRESSION else None
    if parsed is None:
        return frozenset()  # reported when the expression is evaluated
    return frozenset(node.id for node in ast.walk(parsed) if isinstance(node, ast.Name))


def _name_path(node: ast.AST, source: str, scope: dict[str, Any]) -> ConfigPath:
    parts: list[str | int] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, (int, str))
        ):
            parts.append(node.slice.value)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        else:
            raise _Failure(f"'{ast.unparse(node)}' is not allowed in '${{{source}}}'")
    parts.reverse()
    root = parts[0]
    if root in scope and root != "params" and (len(parts) > 1 or not isinstance(scope[root], dict)):
        return tuple(parts)
    if root != "params" or len(parts) < 2:
        raise _Failure(
            f"'{ast.unparse(node)}' in '${{{source}}}' is not a params path",
            hint=f"did you mean 'params.{parts[0]}'?"
            if len(parts) == 1
            else "interpolations read params only, as ${params.NAME}",
        )
    return tuple(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _apply_binary(op: type[ast.operator], left: Any, right: Any, source: str) -> Any:
    symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//"}.get(
        op, "%" if op is ast.Mod else "**"
    )
    if _is_number(left) and _is_number(right):
        # Refuse before computing: 2 ** 10 ** 10 would take minutes and gigabytes.
        growing_power = op is ast.Pow and isinstance(left, int) and isinstance(right, int) and right > 0
        if growing_power and abs(left) > 1 and right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
            raise _Failure(f"'${{{source}}}' is too large (over {MAX_INT_BITS} bits)")
        try:
            result = _BINARY[op](left, right)
        except ZeroDivisionError:
            raise _Failure(f"division by zero in '${{{source}}}'") from None
        except OverflowError:
            raise _Failure(f"'${{{source}}}' overflows") from None
        if isinstance(result, complex):
            raise _Failure(f"'${{{source}}}' has no real result")
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise _Failure(f"'${{{source}}}' is too large (over {MAX_INT_BITS} bits)")
        if isinstance(result, float) and not math.isfinite(result):
            raise _Failure(f"'${{{source}}}' is not finite")
        return result
    if op is ast.Add and isinstance(left, str) and isinstance(right, str):
        if len(left) + len(right) > MAX_STRING:
            raise _Failure(f"'${{{source}}}' makes a string over {MAX_STRING} characters")
        return left + right
    if op is ast.Mult and {type(left), type(right)} == {str, int}:
        text, times = (left, right) if isinstance(left, str) else (right, left)
        if len(text) * max(times, 0) > MAX_STRING:
            raise _Failure(f"'${{{source}}}' makes a string over {MAX_STRING} characters")
        return text * min(times, MAX_STRING)  # equal; '' * 2 ** 63 would raise OverflowError
    raise _Failure(
        f"cannot apply '{symbol}' to {type(left).__name__} and {type(right).__name__} in '${{{source}}}'"
    )


def _point_into_string(diag: Diagnostic, text: str, sources: dict[str, str]) -> Diagnostic:
    """Move the caret from the start of the scalar to the `${` inside it, when on one line."""
    loc = diag.location
    assert loc is not None  # checked by the caller
    source = sources.get(loc.file)
    match = INTERPOLATION.search(text)
    if source is None or match is None:
        return diag
    lines = source_lines(source)
    if not 0 < loc.line <= len(lines):
        return diag
    written = lines[loc.line - 1][loc.col - 1 :]
    quote = 1 if written[:1] in "\"'" else 0
    if not written[quote:].startswith(text[: match.end()]):
        return diag
    col = loc.col + quote + match.start()
    return Diagnostic(
        path=diag.path,
        message=diag.message,
        location=Location(loc.file, loc.line, col),
        hint=diag.hint,
        span=match.end() - match.start(),
        related=diag.related,
    )


def interpolate(tree: Any, source_map: SourceMap, sources: dict[str, str]) -> Any:
    """Return a copy of `tree` with every `${params...}` resolved; raise SpecError listing all faults.

    The copy shares nothing with `tree` nor within itself (a param used twice is two
    copies), and is held to the bounds of NOTE: [YAML bounds] again: interpolation can
    repeat a value (`${params.big}` used many times) and nest values deeper than any file
    did. Interpolation faults are reported first, then the first value past a bound.
    Strings that use `${args...}` or `${index}` are left for `substitute`; see
    NOTE: [Deferred interpolation].
    """
    if not isinstance(tree, dict):
        return tree
    resolver = _resolver(tree, source_map, sources)
    try:
        resolved = resolver.resolved_tree()
    except Unbounded:
        # Past a bound: resolve again, each param's value shared by its uses, and let the
        # exact walk report the first value past the bound, after any interpolation fault.
        resolver = _resolver(tree, source_map, sources)
        shared = resolver.tree_value()
        if resolver.problems:
            raise SpecError(resolver.problems, sources) from None
        return exact_plain_tree(shared, source_map, sources)
    if resolver.problems:
        raise SpecError(resolver.problems, sources)
    return resolved


# NOTE: [One copy of data]
# A spec given as data is copied (plain.py) and then interpolated, which copies it again:
# two walks of every value. Where the data is plain already (dicts, lists and scalars, as a
# spec written in Python is), `interpolate_data` resolves it in one: `interpolate` itself,
# with a `PlainCopy` to count and copy, which gives up at anything `plain_tree` would turn
# into plain data, and with its params copied first, within the bounds (plain_tree's
# guard against a tree nested too deep for the recursive `value`). Every original value
# is then in the result, at the same depth or deeper, so the result's bounds hold for the
# data too, but for text: a `${...}` string may make less text than it has, so the walk
# tallies those strings (`written`) and the data is held to result + `written`. At any
# fault, or past that, the data is copied and interpolated as two walks again, to report
# just what those report: faults are rare, and so they pay for the walks twice.


def interpolate_data(data: Any, source_map: SourceMap, sources: dict[str, str]) -> Any:
    """`interpolate(plain_tree(data))`, in one walk where it can: see NOTE: [One copy of data]."""
    if type(data) is dict:
        resolved = _interpolate_plain(data, source_map, sources)
        if resolved is not None:
            return resolved
    return interpolate(plain_tree(data, source_map, sources), source_map, sources)


def _interpolate_plain(
    data: dict[str, Any], source_map: SourceMap, sources: dict[str, str]
) -> dict[str, Any] | None:
    """`data` interpolated, or None where `interpolate_data` has to take two walks."""
    params = data.get("params", {})
    if type(params) is not dict:
        return None
    try:
        resolver = _Resolver(
            scope={"params": PlainCopy().copy(params, 1)},
            source_map=source_map,
            sources=sources,
            tree=data,
            deferrable=DEFERRED_ROOTS,
            bounds=PlainCopy(),
        )
        resolved = resolver.resolved_tree()
    except (Unbounded, SpecError):
        return None
    if resolver.problems or resolver.bounds.text + resolver.written > MAX_TEXT:
        return None
    return resolved


def _resolver(tree: dict[str, Any], source_map: SourceMap, sources: dict[str, str]) -> _Resolver:
    params = tree.get("params")
    return _Resolver(
        scope={"params": params if isinstance(params, dict) else {}},
        source_map=source_map,
        sources=sources,
        tree=tree,
        deferrable=DEFERRED_ROOTS,
    )


def substitute(
    value: Any,
    path: ConfigPath,
    scope: dict[str, Any],
    source_map: SourceMap,
    sources: dict[str, str],
    *,
    tree: Any = None,
    deferrable: frozenset[str] = frozenset(),
) -> tuple[Any, list[Diagnostic]]:
    """Resolve the deferred interpolations in `value` (written at `path`) with one instance's
    `scope` ({"params": ..., "args": ..., "index": ...}); return the result and any faults.

    `tree` and `deferrable` leave roots for a later, inner instance, as in `interpolate`.
    """
    resolver = _Resolver(
        scope=scope, source_map=source_map, sources=sources, tree=tree, deferrable=deferrable
    )
    return resolver.value(value, path), resolver.problems
