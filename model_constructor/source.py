"""Load YAML once, into plain Python data plus a `SourceMap` from config paths to positions.

We use ruamel.yaml's round-trip loader rather than PyYAML or `typ="safe"` because it is the
loader that records a line and column for every key and value, which every later stage
needs for its messages. It constructs no Python objects from tags; we still refuse every
non-core tag, since a file that says `!!python/...` is either a mistake or an attack.

NOTE: [Unquoted interpolation]
Users write `{width: ${params.width}}`, which no YAML parser accepts: `{` opens a flow
mapping inside a flow mapping. Before parsing, every `${...}` is replaced by a placeholder
of the same length made of private-use characters, so every line and column stays true;
the placeholders are turned back into the original text in every key and string afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scanner import Scanner

from .errors import ConfigPath, Diagnostic, Location, SpecError

# NOTE: [YAML bounds]
# A spec from outside must not exhaust memory, time or the stack. The file is refused past
# MAX_FILE_BYTES before it is read. While ruamel composes it, nesting past MAX_DEPTH stops the
# composer at once: ruamel's scanner is quadratic in flow nesting (`[[[[...` costs seconds by
# the time Python's recursion limit would stop it). Before anything is constructed, the
# composed nodes, where an alias is one shared node, are counted as if every alias were
# expanded ("billion laughs": ten lines that expand to 10**9 values), in time linear in the
# document. `load.py` applies the same bounds again after interpolation, which can also
# repeat and nest values.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 1_000_000


def past_bounds(count: int, depth: int, values_note: str = "") -> str | None:
    """What a tree breaks, having `count` values so far and one at `depth`, or None."""
    if count > MAX_VALUES:
        return f"more than {MAX_VALUES} values{values_note}"
    if depth > MAX_DEPTH:
        return f"nesting deeper than {MAX_DEPTH} levels"
    return None


_INTERPOLATION = re.compile(r"\$\{[^}\n]*\}")
_MARK = "\ue000"
_PAD = "\ue001"
_DIGIT0 = 0xE100
_PLACEHOLDER = re.compile("\ue000([\ue100-\ue1ff]+)\ue001*")


@dataclass
class SourceMap:
    """Where each config path was written. Empty for specs given as Python data."""

    file: str | None = None
    values: dict[ConfigPath, tuple[Location, int]] = field(default_factory=dict)
    keys: dict[ConfigPath, tuple[Location, int]] = field(default_factory=dict)

    def locate(self, path: ConfigPath, *, key: bool = False) -> tuple[Location | None, int]:
        """The position (and underline width) of `path`, or of its nearest written ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return None, 1

    def diagnostic(self, path: ConfigPath, message: str, *, key: bool = False, **extra: Any) -> Diagnostic:
        location, span = self.locate(path, key=key)
        extra.setdefault("span", span)
        return Diagnostic(path=path, message=message, location=location, **extra)


@dataclass
class LoadedYaml:
    tree: Any
    source_map: SourceMap
    text: str


def protect_interpolations(text: str) -> tuple[str, list[str]]:
    """`text` with each `${...}` replaced by a same-length placeholder, and the originals.

    See NOTE: [Unquoted interpolation]. Also used by `fmt`, which finds the placeholders.
    """
    originals: list[str] = []

    def replace(match: re.Match[str]) -> str:
        index = len(originals)
        digits = ""
        while True:
            digits = chr(_DIGIT0 + index % 256) + digits
            index //= 256
            if not index:
                break
        body = _MARK + digits
        original = match.group(0)
        if len(body) + 1 > len(original):
            return original
        originals.append(original)
        return body + _PAD * (len(original) - len(body))

    return _INTERPOLATION.sub(replace, text), originals


def _restore(value: str, originals: list[str]) -> str:
    if _MARK not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        index = 0
        for digit in match.group(1):
            index = index * 256 + ord(digit) - _DIGIT0
        # Out of range only if a YAML escape ("\ue000") wrote one: not ours, left as written.
        return originals[index] if index < len(originals) else match.group(0)

    return _PLACEHOLDER.sub(replace, value)


def _location(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def load_yaml_file(path: str | Path) -> LoadedYaml:
    name = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise _file_error(name, f"file is {size} bytes, over the limit of {MAX_FILE_BYTES}")
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _file_error(name, f"cannot read spec file: {exc}") from None
    return load_yaml_text(text, name)


def _file_error(name: str, message: str) -> SpecError:
    return SpecError([Diagnostic(path=(), message=message, location=Location(name, 1, 1))])


class _Refused(Exception):
    """A document refused while composing or constructing it, at `mark` (internal)."""

    def __init__(self, message: str, mark: Any):
        super().__init__(message)
        self.message = message
        self.mark = mark


class _BoundedComposer(Composer):
    """ruamel's composer, stopped past MAX_DEPTH or MAX_VALUES. See NOTE: [YAML bounds]."""

    def __init__(self, loader: Any = None):
        super().__init__(loader=loader)
        self._nesting = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            return super().compose_node(parent, index)
        self._nesting += 1
        try:
            if self._nesting > MAX_DEPTH + 1:  # the document itself is level 0
                mark = self.parser.peek_event().start_mark
                raise _Refused(f"spec too large: nesting deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: Node) -> None:
    """Count the composed nodes as if every alias were expanded; iterative, linear."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [item for pair in node.value for item in pair]
        if done:
            size[id(node)] = 1 + sum(size[id(child)] for child in children)
            height[id(node)] = 1 + max((height[id(child)] for child in children), default=0)
            if size[id(node)] > MAX_VALUES:
                what = f"more than {MAX_VALUES} values (alias expansion?)"
                raise _Refused(f"spec too large: {what}", node.start_mark)
            if height[id(node)] > MAX_DEPTH + 1:
                what = f"nesting deeper than {MAX_DEPTH} levels through aliases"
                raise _Refused(f"spec too large: {what}", node.start_mark)
        elif id(node) in entered:
            if id(node) not in size:  # still being counted: it contains an alias to itself
                raise _Refused("an alias refers to a node that contains it", node.start_mark)
        else:
            entered.add(id(node))
            for key in children[::2] if isinstance(node, MappingNode) else ():
                if not isinstance(key, ScalarNode):  # ruamel would hash it: CommentedMap cannot be
                    kind = "mapping" if isinstance(key, MappingNode) else "sequence"
                    raise _Refused(f"mapping keys must be strings, got a {kind}", key.start_mark)
            stack.append((node, True))
            stack.extend((child, False) for child in children)


class _GuardedConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor, for values under an explicit core tag that ruamel
    cannot build (`!!int ''`, `!!bool x`, `!!set 1`): it fails on them with an IndexError,
    KeyError or AttributeError, which we report as a YAML error at the value."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (IndexError, KeyError, AttributeError, TypeError):
            tag = str(getattr(node.tag, "value", node.tag)).replace("tag:yaml.org,2002:", "!!")
            shown = repr(node.value) if isinstance(node, ScalarNode) else f"a {node.id}"
            raise _Refused(f"YAML error: {shown} is not a valid {tag} value", node.start_mark) from None


def load_yaml_text(text: str, file: str) -> LoadedYaml:
    """Parse `text` (the contents of `file`) exactly once."""
    sources = {file: text}
    if (at := text.find(_MARK)) != -1:  # it would read as a placeholder: NOTE: [Unquoted interpolation]
        line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        diag = Diagnostic(
            path=(),
            message="character U+E000 is reserved by model_constructor",
            location=Location(file, line, col),
        )
        raise SpecError([diag], sources)
    protected, originals = protect_interpolations(text)
    yaml = YAML(typ="rt")
    # The round-trip scanner's only addition is keeping comments, which we drop: its
    # `_gather_comments` ran on every token and took a fifth of the load (550 -> 430 ms at
    # 2008 lines, with the same data and the same position for every key, value and item).
    yaml.Scanner = Scanner
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _GuardedConstructor
    try:
        document = yaml.load(protected)
    except _Refused as exc:
        location = _location(file, exc.mark) if exc.mark is not None else Location(file, 1, 1)
        diag = Diagnostic(path=(), message=_restore(exc.message, originals), location=location)
        raise SpecError([diag], sources) from None
    except DuplicateKeyError as exc:
        first = exc.context_mark
        hint = f"first written at line {first.line + 1}" if first is not None else None
        key = _duplicate_key_name(exc, originals)
        diag = Diagnostic(
            path=(),
            message=f"duplicate key {key!r}" if key else "duplicate key",
            location=_location(file, exc.problem_mark),
            hint=hint,
            span=len(key) if key else 1,
        )
        raise SpecError([diag], sources) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = _restore(str(exc.problem or exc.context or "invalid YAML"), originals)
        location = _location(file, mark) if mark is not None else Location(file, 1, 1)
        raise SpecError(
            [Diagnostic(path=(), message=f"YAML syntax error: {problem}", location=location)],
            sources,
        ) from None
    except (YAMLError, RecursionError, ValueError) as exc:
        # ValueError: ruamel builds dates and ints as it parses (`2020-13-45`, an int of over
        # 4300 digits) and lets their errors through unmarked.
        message = "nesting too deep" if isinstance(exc, RecursionError) else _restore(str(exc), originals)
        raise _file_error(file, f"YAML error: {message}") from None
    source_map = SourceMap(file=file)
    # The document itself, so that a fault with no closer position (a missing top-level
    # key, a document that is not a mapping) still points into the file.
    collection = isinstance(document, (CommentedMap, CommentedSeq))
    line, col = (document.lc.line, document.lc.col) if collection else (0, 0)
    source_map.values[()] = (Location(file, line + 1, col + 1), 1)
    tree = _to_plain(document, file, originals, source_map, sources)
    return LoadedYaml(tree=tree, source_map=source_map, text=text)


def _duplicate_key_name(exc: DuplicateKeyError, originals: list[str]) -> str | None:
    match = re.search(r'found duplicate key "(.*?)" with value', str(exc.problem))
    return _restore(match.group(1), originals) if match else None


_STR_TAG = "tag:yaml.org,2002:str"
_CORE_MAPPING_TAGS = {None, "tag:yaml.org,2002:map"}
_CORE_SEQUENCE_TAGS = {None, "tag:yaml.org,2002:seq"}


def _to_plain(
    document: Any,
    file: str,
    originals: list[str],
    source_map: SourceMap,
    sources: dict[str, str],
) -> Any:
    """Copy ruamel's tree into dicts, lists and scalars, recording positions on the way.

    Iterative rather than recursive, so no input can overflow the Python stack.
    """
    problems: list[Diagnostic] = []
    lines = sources[file].splitlines()
    root_holder: list[Any] = [None]
    # Each item: (ruamel node, path, container to write into, key or index in it, depth).
    stack: list[tuple[Any, ConfigPath, Any, Any, int]] = [(document, (), root_holder, 0, 0)]
    count = 0
    while stack:
        node, path, parent, slot, depth = stack.pop()
        count += 1
        what = past_bounds(count, depth, " (alias expansion?)")
        if what is not None:
            located, _ = source_map.locate(path)
            problems.append(Diagnostic(path=path, message=f"spec too large: {what}", location=located))
            break
        if isinstance(node, CommentedMap):
            tag = node.tag.value
            if tag not in _CORE_MAPPING_TAGS:
                problems.append(_tag_problem(path, tag, source_map, originals))
                continue
            # Keys are inserted in file order now; their values are filled in as the stack
            # pops, which visits them last-pushed-first.
            out: dict[str, Any] = dict.fromkeys(_restore(k, originals) for k in node if isinstance(k, str))
            parent[slot] = out
            for raw_key in reversed(list(node)):
                if not isinstance(raw_key, str):
                    key_pos = node.lc.key(raw_key)
                    key_at = Location(file, key_pos[0] + 1, key_pos[1] + 1)
                    if isinstance(raw_key, TaggedScalar):  # `!!python/name:os.system : 1`
                        tagged = _tag_problem(path, str(raw_key.tag.value), source_map, originals)
                        problems.append(replace(tagged, location=key_at, span=1))
                        continue
                    problems.append(
                        Diagnostic(
                            path=path,
                            message=f"mapping keys must be strings, got {raw_key!r}",
                            location=key_at,
                            hint="quote the key",
                        )
                    )
                    continue
                key = _restore(raw_key, originals)
                child_path = (*path, key)
                if raw_key in (node.lc.data or {}):
                    key_line, key_col = node.lc.key(raw_key)
                    value_line, value_col = node.lc.value(raw_key)
                else:
                    # Merged in by `<<: *anchor`: ruamel records no position for it here, so
                    # point at the mapping that merges it.
                    key_line, key_col = value_line, value_col = node.lc.line, node.lc.col
                source_map.keys[child_path] = (Location(file, key_line + 1, key_col + 1), len(key))
                value = node[raw_key]
                source_map.values[child_path] = (
                    Location(file, value_line + 1, value_col + 1),
                    _span(value, lines, value_line, value_col, originals),
                )
                stack.append((value, child_path, out, key, depth + 1))
        elif isinstance(node, CommentedSeq):
            tag = node.tag.value
            if tag not in _CORE_SEQUENCE_TAGS:
                problems.append(_tag_problem(path, tag, source_map, originals))
                continue
            items: list[Any] = [None] * len(node)
            parent[slot] = items
            for index in range(len(node) - 1, -1, -1):
                child_path = (*path, index)
                line, col = node.lc.item(index)
                value = node[index]
                source_map.values[child_path] = (
                    Location(file, line + 1, col + 1),
                    _span(value, lines, line, col, originals),
                )
                stack.append((value, child_path, items, index, depth + 1))
        elif isinstance(node, TaggedScalar) and node.tag.value == _STR_TAG:
            parent[slot] = _restore(str(node.value), originals)
        elif isinstance(node, TaggedScalar):
            problems.append(_tag_problem(path, str(node.tag.value), source_map, originals))
        elif isinstance(node, bool):
            parent[slot] = bool(node)
        elif isinstance(node, int):
            parent[slot] = int(node)
        elif isinstance(node, float):
            parent[slot] = float(node)
        elif isinstance(node, str):
            parent[slot] = _restore(str(node), originals)
        elif node is None:
            parent[slot] = None
        else:
            located, span = source_map.locate(path)
            hint = "quote it to make it a string" if isinstance(node, date) else None
            problems.append(
                Diagnostic(
                    path=path,
                    message=f"unsupported YAML value of type {type(node).__name__}",
                    location=located,
                    span=span,
                    hint=hint,
                )
            )
    if problems:
        raise SpecError(problems, sources)
    return root_holder[0]


def _span(value: Any, lines: list[str], line: int, col: int, originals: list[str]) -> int:
    """How many characters the value takes on its line: its text, plus quotes if quoted."""
    if not isinstance(value, str):
        return 1
    length = len(_restore(value, originals))
    written = lines[line][col : col + 1] if line < len(lines) else ""
    return length + 2 if written in ("'", '"') else length


def _tag_problem(
    path: ConfigPath, tag: str | None, source_map: SourceMap, originals: list[str]
) -> Diagnostic:
    located, span = source_map.locate(path)
    written = _restore(str(tag), originals).replace("tag:yaml.org,2002:", "!!")
    return Diagnostic(
        path=path,
        message=f"YAML tag {written!r} is not allowed",
        location=located,
        span=span,
        hint="specs hold plain data only: mappings, lists, strings, numbers, booleans, null",
    )
