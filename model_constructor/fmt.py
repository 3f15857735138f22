"""`fmt`: rewrite a spec into standard YAML by quoting the `${...}` that standard parsers reject.

Users write `{width: ${params.width}}`, which our loader accepts (see NOTE: [Unquoted
interpolation] in `source.py`) but which no other YAML tool parses: editors flag the whole
file. `fmt` quotes those values, `{width: "${params.width}"}`, which means the same thing.

We edit the text rather than dump a ruamel round trip: an edit that only adds quotes keeps
every comment, blank line, key order, indentation and flow-or-block choice exactly as written,
where a round trip re-wraps long lines and normalizes spacing. The edit is verified: a standard
parser (ruamel `typ="safe"`, with no pre-pass) must read from the result exactly the data our
loader reads from the original, or the file is refused and left as it is.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent, ScalarEvent

from .errors import Diagnostic, Location, SpecError
from .source import load_yaml_text, protect_interpolations

_UNPARSED = object()


def format_spec_text(text: str, file: str) -> str:
    """`text` (the contents of `file`) as standard YAML that means the same; unchanged if it is.

    Raises SpecError if the text does not load, or cannot be made standard by quoting.
    """
    meaning = load_yaml_text(text, file).tree
    if _standard_tree(text) == meaning:
        return text
    protected, _ = protect_interpolations(text)
    # First only what standard YAML rejects, `${...}` inside flow collections; then, if that
    # is not enough (a `${...}` holding ': ' or ' #' in block context), every plain one.
    for flow_only in (True, False):
        result = _quote(text, _plain_interpolations(protected, text, flow_only))
        if _standard_tree(result) == meaning:
            return result
    raise SpecError(
        [
            Diagnostic(
                path=(),
                message="cannot rewrite this spec into standard YAML by quoting its ${...} values",
                location=Location(file, 1, 1),
                hint='quote each ${...} by hand, as "${params.width}"',
            )
        ],
        {file: text},
    )


def _standard_tree(text: str) -> Any:
    try:
        return YAML(typ="safe", pure=True).load(text)
    except (YAMLError, ValueError, RecursionError):
        return _UNPARSED


def _plain_interpolations(protected: str, text: str, flow_only: bool) -> list[tuple[int, int]]:
    """The (start, end) offsets of unquoted one-line scalars that hold a `${...}`.

    `protected` has the same length as `text`, so offsets found in one hold in the other.
    """
    spans: list[tuple[int, int]] = []
    flow: list[bool] = []
    for event in YAML(typ="rt").parse(protected):
        if isinstance(event, CollectionStartEvent):
            flow.append(bool(event.flow_style) or (bool(flow) and flow[-1]))
        elif isinstance(event, CollectionEndEvent):
            flow.pop()
        elif isinstance(event, ScalarEvent) and event.style is None:
            start, end = event.start_mark.index, event.end_mark.index
            written = text[start:end]
            in_flow = bool(flow) and flow[-1]
            if "${" in written and "\n" not in written and (in_flow or not flow_only):
                spans.append((start, end))
    return spans


def _quote(text: str, spans: list[tuple[int, int]]) -> str:
    out = []
    last = 0
    for start, end in spans:
        written = text[start:end]
        if '"' in written or "\\" in written:
            quoted = "'" + written.replace("'", "''") + "'"
        else:
            quoted = f'"{written}"'
        out += [text[last:start], quoted]
        last = end
    out.append(text[last:])
    return "".join(out)
