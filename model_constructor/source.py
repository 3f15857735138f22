"""Load YAML once, into plain Python data plus a `SourceMap` from config paths to positions.

We parse with ruamel.yaml, whose composed nodes carry the line and column of every key, value
and item, which every later stage needs for its messages, and build the plain data and the
`SourceMap` straight from those nodes (`_PlainConstructor`). ruamel's round-trip constructor
built CommentedMaps that we then copied (70 of the 445 ms that 2008 lines took to load); it
now constructs only the values that are not strings, mappings or lists, so numbers,
booleans and null resolve exactly as it resolves them (YAML 1.2 unless the file says
`%YAML 1.1`). Nothing constructs Python objects from tags; we still refuse every non-core
tag, since a file that says `!!python/...` is either a mistake or an attack.

NOTE: [Unquoted interpolation]
Users write `{width: ${params.width}}`, which no YAML parser accepts: `{` opens a flow
mapping inside a flow mapping. Before parsing, every `${...}` is replaced by a placeholder
of the same length made of private-use characters, so every line and column stays true;
the placeholders are turned back into the original text in every key and string afterwards.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scanner import Scanner

from .errors import ConfigPath, Diagnostic, Location, SpecError, source_lines

# NOTE: [YAML bounds]
# A spec from outside must not exhaust memory, time or the stack. The file is refused past
# MAX_FILE_BYTES before it is read. While ruamel composes it, nesting past MAX_DEPTH stops the
# composer at once: ruamel's scanner is quadratic in flow nesting (`[[[[...` costs seconds by
# the time Python's recursion limit would stop it). Before anything is constructed, the
# composed nodes, where an alias is one shared node, are counted as if every alias were
# expanded ("billion laughs": ten lines that expand to 10**9 values), in time linear in the
# document (NOTE: [Counting without aliases]). This also bounds the plain tree built from
# them, aliases and merges expanded. `interpolate` (interpolation.py) builds its result
# within the same bounds, since interpolation can also repeat and nest values.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 1_000_000


def past_bounds(count: int, depth: int) -> str | None:
    """What a tree breaks, having `count` values so far and one at `depth`, or None."""
    if count > MAX_VALUES:
        return f"more than {MAX_VALUES} values"
    if depth > MAX_DEPTH:
        return f"nesting deeper than {MAX_DEPTH} levels"
    return None


_INTERPOLATION = re.compile(r"\$\{[^}\n]*\}")
_MARK = "\ue000"
_PAD = "\ue001"
_DIGIT0 = 0xE100
_PLACEHOLDER = re.compile("\ue000([\ue100-\ue1ff]+)\ue001*")


# NOTE: [Packed positions]
# A SourceMap holds a position for every key and value written in its file: 15,000 at 2008
# lines. As a Location and a (Location, span) tuple each, they were 45,000 objects that the
# parse made and the end of the build freed. A position in the map's own file is one int
# instead, `line << 64 | col << 32 | span`, and its Location is made when a lookup asks for
# it, which only faults and the nodes of a built model do: a build from that file measured
# 3 to 4 ms less outside its parse, and the parse about 5 ms less.
# Positions elsewhere (an override's line in `<overrides>`) stay (Location, span) tuples.
# Fields of 32 bits: a column or span of 2**32 would take a line of 4 GiB.
Position = int | tuple[Location, int]
_FIELD = (1 << 32) - 1


def _unpacked(file: str | None, position: Position) -> tuple[Location, int]:
    """`position`, packed if in `file`, as its Location and span. See NOTE: [Packed positions]."""
    if isinstance(position, tuple):
        return position
    assert file is not None, "a packed position is in the map's own file"
    return Location(file, position >> 64, position >> 32 & _FIELD), position & _FIELD


@dataclass
class SourceMap:
    """Where each config path was written. Empty for specs given as Python data.

    `values` and `keys` hold each path's Position: packed if in `file`, else a Location and
    the underline's width (NOTE: [Packed positions]). Read them through the methods.
    """

    file: str | None = None
    values: dict[ConfigPath, Position] = field(default_factory=dict)
    keys: dict[ConfigPath, Position] = field(default_factory=dict)

    def locate(self, path: ConfigPath, *, key: bool = False) -> tuple[Location | None, int]:
        """The position (and underline width) of `path`, or of its nearest written ancestor."""
        found = self._nearest(path, key)
        return (None, 1) if found is None else _unpacked(self.file, found)

    def named(self, paths: Mapping[str, ConfigPath]) -> NamedPositions:
        """Where the key of each of `paths` is written (or its nearest written ancestor), by
        name, kept packed: the few that are ever asked for become Locations then."""
        positions = {}
        if self.keys or self.values:
            for name, path in paths.items():
                if (found := self._nearest(path, True)) is not None:
                    positions[name] = found
        return NamedPositions(self.file, positions)

    def written(self, path: ConfigPath) -> tuple[Location, int] | None:
        """The position (and underline width) of the value at `path`, if it is written."""
        found = self.values.get(path)
        return None if found is None else _unpacked(self.file, found)

    def diagnostic(self, path: ConfigPath, message: str, *, key: bool = False, **extra: Any) -> Diagnostic:
        location, span = self.locate(path, key=key)
        extra.setdefault("span", span)
        return Diagnostic(path=path, message=message, location=location, **extra)

    def _nearest(self, path: ConfigPath, key: bool) -> Position | None:
        if key and (found := self.keys.get(path)) is not None:
            return found
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return None


@dataclass
class NamedPositions:
    """Positions by name (a built model's nodes), from `SourceMap.named`."""

    file: str | None = None
    positions: dict[str, Position] = field(default_factory=dict)

    def location(self, name: str) -> Location | None:
        found = self.positions.get(name)
        return None if found is None else _unpacked(self.file, found)[0]


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


def _packed(mark: Any) -> int:
    """The position of `mark`, packed with a span of 0. See NOTE: [Packed positions]."""
    line: int = mark.line + 1
    col: int = mark.column + 1
    return line << 64 | col << 32


_FILE_START = 1 << 64 | 1 << 32  # line 1, column 1, packed


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

    def __init__(self, message: str, mark: Any, hint: str | None = None, span: int = 1):
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.hint = hint
        self.span = span


class _BoundedComposer(Composer):
    """ruamel's composer, stopped past MAX_DEPTH or MAX_VALUES. See NOTE: [YAML bounds]."""

    def __init__(self, loader: Any = None):
        super().__init__(loader=loader)
        self._nesting = 0
        self._composed = 0  # nodes, aliases not counted
        self._aliased = False
        self._bad_key: Node | None = None  # the last collection used as a key

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            self._aliased = True
            return super().compose_node(parent, index)
        self._nesting += 1
        self._composed += 1
        try:
            if self._nesting > MAX_DEPTH + 1:  # the document itself is level 0
                mark = self.parser.peek_event().start_mark
                raise _Refused(f"spec too large: nesting deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        for key, _ in node.value:
            if not isinstance(key, ScalarNode):
                self._bad_key = key
                break
        return node

    def compose_document(self) -> Any:
        self._composed, self._aliased, self._bad_key = 0, False, None
        node = super().compose_document()
        # NOTE: [Counting without aliases]
        # With no alias, the composed nodes are the expanded tree: their number is its size,
        # the composer has bounded its depth, and no node can contain itself. Only a
        # collection used as a key is left to refuse, and `_check_expansion`, which walks the
        # tree in the reverse of the order the composer completes nodes, would meet the last
        # one first. This skips a walk that took 30 ms of a 440 ms load at 2008 lines.
        if self._aliased or self._composed > MAX_VALUES:
            _check_expansion(node)
        elif self._bad_key is not None:
            raise _collection_key(self._bad_key)
        return node


def _collection_key(key: Node) -> _Refused:
    kind = "mapping" if isinstance(key, MappingNode) else "sequence"
    return _Refused(f"mapping keys must be strings, got a {kind}", key.start_mark)


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
                if not isinstance(key, ScalarNode):
                    raise _collection_key(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"  # `=`: ruamel reads it as the string '=' in a key

# A mapping's string keys with their key and value nodes, each flagged if merged in by `<<`.
_Entry = tuple[str, Node, Node, bool]


class _PlainConstructor(RoundTripConstructor):
    """Builds the document as dicts, lists and scalars, and records where each was written.

    ruamel's round-trip constructor built CommentedMaps that we then copied into dicts; this
    builds the plain tree and the SourceMap from the composed nodes in one walk, iterative so
    that no input can overflow the Python stack. Mappings, sequences and untagged strings are
    built here. Every other value (numbers, booleans, null, dates, anything tagged) is
    constructed by ruamel's own round-trip constructor, so it resolves exactly as before, YAML
    1.1 documents included, and is then converted to a plain value or refused.
    """

    def __init__(
        self,
        file: str,
        originals: list[str],
        lines: Sequence[str],
        preserve_quotes: Any = None,
        loader: Any = None,
    ):
        super().__init__(preserve_quotes=preserve_quotes, loader=loader)
        self.file = file
        self.originals = originals
        self.lines = lines
        self.source_map = SourceMap(file=file)
        # The document itself has a position, so that a fault with no closer one (a missing
        # top-level key, a document that is not a mapping) still points into the file. A
        # collection's is where it starts, any other document's the file's start.
        self.source_map.values[()] = _FILE_START | 1
        self.problems: list[Diagnostic] = []
        # One str per distinct key, as json's decoder keeps (its `memo`): the scanner makes
        # one per key written, 7,000 for 2,000 distinct at 2008 lines, which the build reads
        # and frees again. Sharing them measured 0.7 to 1.1 ms less per build from that file.
        self._key_texts: dict[str, str] = {}
        # Collections created but not filled yet: (node, path, the dict or list to fill).
        self._pending: list[tuple[Node, ConfigPath, Any]] = []

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        """ruamel's construction, with the errors it raises on values under an explicit core
        tag that it cannot build (`!!int ''`, `!!bool x`, `!!set 1`) reported at the value."""
        try:
            return super().construct_object(node, deep=deep)
        except (IndexError, KeyError, AttributeError, TypeError, AssertionError):
            tag = str(getattr(node.tag, "value", node.tag)).replace("tag:yaml.org,2002:", "!!")
            shown = repr(node.value) if isinstance(node, ScalarNode) else f"a {node.id}"
            raise _Refused(f"YAML error: {shown} is not a valid {tag} value", node.start_mark) from None

    def construct_document(self, node: Any) -> Any:
        at = _packed(node.start_mark) if isinstance(node, (MappingNode, SequenceNode)) else _FILE_START
        self.source_map.values[()] = at | 1
        tree = self._value(node, (), at)
        while self._pending:
            node, path, out = self._pending.pop()
            filled = len(self._pending)
            if isinstance(out, dict):
                self._fill_mapping(node, path, out)
            else:
                self._fill_sequence(node, path, out)
            self._pending[filled:] = self._pending[filled:][::-1]  # so they are filled in file order
        return tree

    def _location_at(self, at: int) -> Location:
        return _unpacked(self.file, at)[0]

    def _value(self, node: Node, path: ConfigPath, at: int) -> Any:
        """The plain value of `node`, written at `at`; a collection is filled in later."""
        if _is_text(node):
            return _restore(node.value, self.originals)
        tag = node.tag
        if tag == _MAP_TAG and isinstance(node, MappingNode):
            mapping: dict[str, Any] = {}
            self._pending.append((node, path, mapping))
            return mapping
        if tag == _SEQ_TAG and isinstance(node, SequenceNode):
            items: list[Any] = []
            self._pending.append((node, path, items))
            return items
        return self._converted(self.construct_object(node, deep=True), node, path, at)

    def _converted(self, value: Any, node: Node, path: ConfigPath, at: int) -> Any:
        """ruamel's value for `node` as a plain value; anything else is a problem."""
        if isinstance(value, TaggedScalar) and value.tag.value == _STR_TAG:
            return _restore(str(value.value), self.originals)
        if isinstance(value, (TaggedScalar, CommentedMap, CommentedSeq)):
            self.problems.append(_tag_problem(path, node.tag, self._location_at(at), self.originals))
        elif isinstance(value, (bool, ScalarBoolean)):  # ScalarBoolean: an anchored boolean
            return bool(value)
        elif isinstance(value, int):
            return int(value)
        elif isinstance(value, float):
            return float(value)
        elif isinstance(value, str):
            return _restore(str(value), self.originals)
        elif value is not None:
            hint = "quote it to make it a string" if isinstance(value, date) else None
            message = f"unsupported YAML value of type {type(value).__name__}"
            at_value = self._location_at(at)
            self.problems.append(Diagnostic(path=path, message=message, location=at_value, hint=hint))
        return None

    def _fill_mapping(self, node: MappingNode, path: ConfigPath, out: dict[str, Any]) -> None:
        keys, values = self.source_map.keys, self.source_map.values
        for key, key_node, value_node, merged in self._entries(node, path):
            child = (*path, key)
            if merged:
                # Where the key is written is in another mapping: point at the one merging it,
                # as the round-trip loader did.
                key_at = value_at = _packed(node.start_mark)
            else:
                key_at, value_at = _packed(key_node.start_mark), _packed(value_node.start_mark)
            keys[child] = key_at | len(key)
            value = out[key] = self._value(value_node, child, value_at)
            values[child] = value_at | self._span(value, value_node, value_at)

    def _fill_sequence(self, node: SequenceNode, path: ConfigPath, out: list[Any]) -> None:
        values = self.source_map.values
        for index, item in enumerate(node.value):
            child = (*path, index)
            at = _packed(item.start_mark)
            value = self._value(item, child, at)
            out.append(value)
            values[child] = at | self._span(value, item, at)

    def _span(self, value: Any, node: Node, at: int) -> int:
        """How many characters a string takes on its line: its text, plus quotes if quoted."""
        if not isinstance(value, str) or node.ctag.handle is not None:  # `!!str x`: the tag is first
            return 1
        line_number, col = at >> 64, at >> 32 & _FIELD
        line = self.lines[line_number - 1] if line_number <= len(self.lines) else ""
        return len(value) + 2 if line[col - 1 : col] in ("'", '"') else len(value)

    def _entries(self, node: MappingNode, path: ConfigPath) -> list[_Entry]:
        """The mapping's string keys in order, then those merged in by `<<` that it lacks.

        Duplicate keys are refused, and keys that are not strings recorded as problems. Merges
        follow ruamel: its own keys win, then each merged mapping in order, whose own merges
        count as its keys. The recursion follows `<<` values, so it is no deeper than the
        nesting that NOTE: [YAML bounds] limits.
        """
        sources: list[MappingNode] = []
        first_merge: Node | None = None
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node))
                continue
            if first_merge is not None:
                raise _duplicate(first_merge, key_node, "<<")
            sources = self._merge_sources(node, value_node, path)
            first_merge = key_node
        written: dict[Any, Node] = {}
        entries: list[_Entry] = []
        for key_node, value_node in own:
            key = self._key(key_node)
            if key in written:
                raise _duplicate(written[key], key_node, str(key))
            written[key] = key_node
            if isinstance(key, str):
                entries.append((key, key_node, value_node, False))
            else:
                self.problems.append(self._key_problem(key, key_node, path))
        for source in sources:
            for key, key_node, value_node, _ in self._entries(source, path):
                if key not in written:
                    written[key] = key_node
                    entries.append((key, key_node, value_node, True))
        return entries

    def _merge_sources(self, node: MappingNode, value: Node, path: ConfigPath) -> list[MappingNode]:
        """The mappings that `<<: value` merges into `node`, with ruamel's errors."""
        if isinstance(value, MappingNode):
            sources = [value]
        elif isinstance(value, SequenceNode):
            sources = []
            for item in value.value:
                if not isinstance(item, MappingNode):
                    found = f"expected a mapping for merging, but found {item.id}"
                    raise ConstructorError(
                        "while constructing a mapping", node.start_mark, found, item.start_mark
                    )
                sources.append(item)
        else:
            found = "expected a mapping or list of mappings for merging, but found scalar"
            raise ConstructorError("while constructing a mapping", node.start_mark, found, value.start_mark)
        # ruamel merged a tagged mapping's keys without a word; a tag is refused wherever it is.
        for tagged in sources if isinstance(value, MappingNode) else [value, *sources]:
            if tagged.tag != (_MAP_TAG if isinstance(tagged, MappingNode) else _SEQ_TAG):
                at = _location(self.file, tagged.start_mark)
                self.problems.append(_tag_problem(path, tagged.tag, at, self.originals))
        return sources

    def _key(self, node: Node) -> Any:
        """A key as ruamel constructs it: a string (its `${...}` restored), or another scalar."""
        if _is_text(node) or node.tag == _VALUE_TAG:
            key = _restore(node.value, self.originals)
            return self._key_texts.setdefault(key, key)
        key = self.construct_object(node, deep=True)
        return _restore(str(key), self.originals) if isinstance(key, str) else key

    def _key_problem(self, key: Any, node: Node, path: ConfigPath) -> Diagnostic:
        at = _location(self.file, node.start_mark)
        if isinstance(key, TaggedScalar):  # `!!python/name:os.system : 1`
            return _tag_problem(path, str(key.tag.value), at, self.originals)
        message = f"mapping keys must be strings, got {key!r}"
        return Diagnostic(path=path, message=message, location=at, hint="quote the key")


def _is_text(node: Node) -> bool:
    """Whether ruamel would construct `node` as its text unchanged: a scalar resolved as a
    string, with no tag written, and not folded (`>`), whose text marks where lines fold."""
    if not isinstance(node, ScalarNode):
        return False
    ctag = node.ctag
    return ctag.handle is None and ctag.suffix == _STR_TAG and node.style != ">"


def _duplicate(first: Node, again: Node, key: str) -> _Refused:
    hint = f"first written at line {first.start_mark.line + 1}"
    return _Refused(f"duplicate key {key!r}", again.start_mark, hint=hint, span=len(key))


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
    yaml.Constructor = functools.partial(_PlainConstructor, file, originals, source_lines(text))
    try:
        tree = yaml.load(protected)
        constructor = yaml.constructor
    except _Refused as exc:
        location = _location(file, exc.mark) if exc.mark is not None else Location(file, 1, 1)
        message = _restore(exc.message, originals)
        diag = Diagnostic(path=(), message=message, location=location, hint=exc.hint, span=exc.span)
        raise SpecError([diag], sources) from None
    except DuplicateKeyError as exc:  # in a tagged mapping or set, which ruamel constructs
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
    finally:
        # NOTE: [Parser cycles]
        # ruamel's YAML object and its parts point at each other (each part's `loader`), so
        # reference counting never frees them: they, and through our constructor the whole
        # SourceMap (then 40,000 objects at 2000 lines), waited for the cyclic collector,
        # which then took 7 ms longer on a build from a file. Without the YAML object's references
        # to its parts there is no cycle left, and all of it is freed as soon as it is unused.
        yaml.__dict__.clear()
    if constructor.problems:
        raise SpecError(constructor.problems, sources)
    return LoadedYaml(tree=tree, source_map=constructor.source_map, text=text)


def _duplicate_key_name(exc: DuplicateKeyError, originals: list[str]) -> str | None:
    match = re.search(r'found duplicate key "(.*?)" with value', str(exc.problem))
    return _restore(match.group(1), originals) if match else None


def _tag_problem(path: ConfigPath, tag: str | None, at: Location, originals: list[str]) -> Diagnostic:
    written = _restore(str(tag), originals).replace("tag:yaml.org,2002:", "!!")
    return Diagnostic(
        path=path,
        message=f"YAML tag {written!r} is not allowed",
        location=at,
        hint="specs hold plain data only: mappings, lists, strings, numbers, booleans, null",
    )
