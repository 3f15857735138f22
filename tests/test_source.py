"""The YAML loader itself (`source.py`): the plain values it builds and the position it records
for every key, value and item. Faults as a user meets them are in test_errors_load.py."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import pytest
from helpers import located

from model_constructor import SpecError
from model_constructor.source import LoadedYaml, SourceMap, load_yaml_text

PLAIN_DATA_HINT = "specs hold plain data only: mappings, lists, strings, numbers, booleans, null"


def load(text: str) -> LoadedYaml:
    return load_yaml_text(textwrap.dedent(text), "spec.yaml")


def load_fault(text: str) -> list[tuple[Any, ...]]:
    with pytest.raises(SpecError) as info:
        load(text)
    return located(info.value)


def positions(source_map: SourceMap, *, key: bool = False) -> dict[Any, tuple[int, int, int]]:
    """The line, column and span of every value (or key) that `source_map` holds."""
    table = source_map.keys if key else source_map.values
    found = {path: source_map.locate(path, key=key) for path in table}
    return {path: (at.line, at.col, span) for path, (at, span) in found.items() if at is not None}


def test_source_positions_of_every_key_value_and_item() -> None:
    loaded = load(
        """\
        # a comment
        top: plain
        quoted: "dq ${params.w}"
        single: 'sq'
        flow: {a: 1, b: [x, "y"], c: {d: ~}}
        block:
          - one
          - k: v
            k2: ${params.w}
          - [1, 2.5]
        literal: |
          line
        base: &base {w: 8, n: {x: 1}}
        merged: {<<: *base, w: 16}
        alias: *base
        """
    )
    base = {"w": 8, "n": {"x": 1}}
    assert loaded.tree == {
        "top": "plain",
        "quoted": "dq ${params.w}",
        "single": "sq",
        "flow": {"a": 1, "b": ["x", "y"], "c": {"d": None}},
        "block": ["one", {"k": "v", "k2": "${params.w}"}, [1, 2.5]],
        "literal": "line\n",
        "base": base,
        "merged": {"w": 16, "n": {"x": 1}},
        "alias": base,
    }
    assert list(loaded.tree["merged"]) == ["w", "n"]  # its own keys, then the merged ones
    # A value's span is its text, quotes included; an alias is where its anchor is written;
    # a merged key and its value are at the mapping that merges them.
    assert positions(loaded.source_map) == {
        (): (2, 1, 1),
        ("top",): (2, 6, 5),
        ("quoted",): (3, 9, 16),
        ("single",): (4, 9, 4),
        ("flow",): (5, 7, 1),
        ("flow", "a"): (5, 11, 1),
        ("flow", "b"): (5, 17, 1),
        ("flow", "b", 0): (5, 18, 1),
        ("flow", "b", 1): (5, 21, 3),
        ("flow", "c"): (5, 30, 1),
        ("flow", "c", "d"): (5, 34, 1),
        ("block",): (7, 3, 1),
        ("block", 0): (7, 5, 3),
        ("block", 1): (8, 5, 1),
        ("block", 1, "k"): (8, 8, 1),
        ("block", 1, "k2"): (9, 9, 11),
        ("block", 2): (10, 5, 1),
        ("block", 2, 0): (10, 6, 1),
        ("block", 2, 1): (10, 9, 1),
        ("literal",): (11, 10, 5),
        ("base",): (13, 7, 1),
        ("base", "w"): (13, 17, 1),
        ("base", "n"): (13, 23, 1),
        ("base", "n", "x"): (13, 27, 1),
        ("merged",): (14, 9, 1),
        ("merged", "w"): (14, 24, 1),
        ("merged", "n"): (14, 9, 1),
        ("merged", "n", "x"): (13, 27, 1),
        ("alias",): (13, 7, 1),
        ("alias", "w"): (13, 17, 1),
        ("alias", "n"): (13, 23, 1),
        ("alias", "n", "x"): (13, 27, 1),
    }
    assert positions(loaded.source_map, key=True) == {
        ("top",): (2, 1, 3),
        ("quoted",): (3, 1, 6),
        ("single",): (4, 1, 6),
        ("flow",): (5, 1, 4),
        ("flow", "a"): (5, 8, 1),
        ("flow", "b"): (5, 14, 1),
        ("flow", "c"): (5, 27, 1),
        ("flow", "c", "d"): (5, 31, 1),
        ("block",): (6, 1, 5),
        ("block", 1, "k"): (8, 5, 1),
        ("block", 1, "k2"): (9, 5, 2),
        ("literal",): (11, 1, 7),
        ("base",): (13, 1, 4),
        ("base", "w"): (13, 14, 1),
        ("base", "n"): (13, 20, 1),
        ("base", "n", "x"): (13, 24, 1),
        ("merged",): (14, 1, 6),
        ("merged", "w"): (14, 21, 1),
        ("merged", "n"): (14, 9, 1),
        ("merged", "n", "x"): (13, 24, 1),
        ("alias",): (15, 1, 5),
        ("alias", "w"): (13, 14, 1),
        ("alias", "n"): (13, 20, 1),
        ("alias", "n", "x"): (13, 24, 1),
    }


def test_source_aliases_expand_to_separate_values() -> None:
    tree = load("a: &x {b: [1]}\nc: *x\n").tree
    assert tree["a"] == tree["c"]
    assert tree["a"] is not tree["c"] and tree["a"]["b"] is not tree["c"]["b"]


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("12", 12),
        ("+12", 12),
        ("-0", 0),
        ("0o17", 15),
        ("017", 17),  # YAML 1.2: a decimal with a leading zero
        ("0x1F", 31),
        ("0b11", 3),
        ("1_000", 1000),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        (".inf", math.inf),
        ("-.INF", -math.inf),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("yes", "yes"),  # a boolean only in YAML 1.1
        ("on", "on"),
        ("1:30", "1:30"),
        ("'12'", "12"),
        ('"true"', "true"),
        ("!!str 12", "12"),
        ("!!int '12'", 12),
        ("!!float 1", 1.0),
        ("!!bool true", True),
        ("!!null ''", None),
        ("&anchored true", True),
        ("&anchored 12", 12),
        ("&anchored 2.5", 2.5),
        ("&anchored text", "text"),
        (">\n  folded\n  text\n", "folded text\n"),
        ("|-\n  literal\n  text\n", "literal\ntext"),
    ],
)
def test_source_scalar_resolved_as_yaml_1_2(written: str, value: Any) -> None:
    got = load(f"x: {written}\n").tree["x"]
    assert (got, type(got)) == (value, type(value))


def test_source_nan_is_a_float() -> None:
    got = load("x: .nan\n").tree["x"]
    assert isinstance(got, float) and math.isnan(got)


def test_source_yaml_1_1_document_resolved_as_1_1() -> None:
    tree = load("%YAML 1.1\n---\nx: [yes, off, 017, 1:30, 0b11]\n").tree
    assert tree == {"x": [True, False, 15, 90, 3]}
    assert [type(v) for v in tree["x"]] == [bool, bool, int, int, int]


def test_source_merge_of_a_list_first_mapping_wins() -> None:
    loaded = load(
        """\
        a: &a {x: 1, y: 1}
        b: &b {y: 2, z: 2}
        c: {<<: [*a, *b], w: 3}
        """
    )
    assert loaded.tree["c"] == {"w": 3, "x": 1, "y": 1, "z": 2}
    assert list(loaded.tree["c"]) == ["w", "x", "y", "z"]


def test_source_merge_of_a_mapping_that_merges() -> None:
    tree = load("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b}\n").tree
    assert list(tree["c"].items()) == [("y", 2), ("x", 1)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "m: {<<: 1}\n",
            (
                1,
                9,
                "YAML syntax error: expected a mapping or list of mappings for merging, but found scalar",
                None,
            ),
            id="scalar",
        ),
        pytest.param(
            "m: {<<: [{a: 1}, [2]]}\n",
            (1, 18, "YAML syntax error: expected a mapping for merging, but found sequence", None),
            id="list-of-non-mappings",
        ),
        pytest.param(
            "m: {<<: {a: 1}, <<: {b: 2}}\n",
            (1, 17, "duplicate key '<<'", "first written at line 1"),
            id="twice",
        ),
        pytest.param(
            "m: {<<: !custom {a: 1}}\n",
            (1, 9, "YAML tag '!custom' is not allowed", PLAIN_DATA_HINT),
            id="tagged",
        ),
    ],
)
def test_source_merge_fault(text: str, expected: tuple[Any, ...]) -> None:
    assert load_fault(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "a: 1\nb: 2\na: 3\n", (3, 1, "duplicate key 'a'", "first written at line 1"), id="first-written"
        ),
        pytest.param(
            "m:\n  a: 1\n  b: 2\n  b: 3\n",
            (4, 3, "duplicate key 'b'", "first written at line 3"),
            id="not-first-key",
        ),
        pytest.param(
            "${a}: 1\n${a}: 2\n", (2, 1, "duplicate key '${a}'", "first written at line 1"), id="interpolated"
        ),
        pytest.param(
            "1: a\ntrue: b\n", (2, 1, "duplicate key 'True'", "first written at line 1"), id="equal-scalars"
        ),
    ],
)
def test_source_duplicate_key_refused(text: str, expected: tuple[Any, ...]) -> None:
    assert load_fault(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!omap [b: 1]\n", (1, 4, "YAML tag '!!omap' is not allowed", PLAIN_DATA_HINT)),
        ("a: !!pairs [b: 1]\n", (1, 4, "unsupported YAML value of type list", None)),
        ("!!str a: 1\n", (1, 1, "YAML tag '!!str' is not allowed", PLAIN_DATA_HINT)),
        ("a: =\n", (1, 4, "YAML tag '!!value' is not allowed", PLAIN_DATA_HINT)),
        ("a: !!map [1]\n", (1, 4, "YAML syntax error: expected a mapping node, but found sequence", None)),
        # ruamel constructs these two itself, and refuses what is inside them first.
        ("a: !!set {b, b}\n", (1, 14, "duplicate key", "first written at line 1")),
        (
            "a: !custom {b: 1, b: 2}\n",
            (1, 4, "YAML syntax error: could not determine a constructor for the tag '!custom'", None),
        ),
        ("a: !!omap [b: 1, b: 2]\n", (1, 4, "YAML error: a sequence is not a valid !!omap value", None)),
        ("1.5: a\n", (1, 1, "mapping keys must be strings, got 1.5", "quote the key")),
    ],
)
def test_source_tagged_or_non_plain_refused(text: str, expected: tuple[Any, ...]) -> None:
    assert load_fault(text) == [expected]


def test_source_equals_sign_key_is_a_string() -> None:
    assert load("=: 1\n").tree == {"=": 1}


@pytest.mark.parametrize("alias", ["", "z: &z 1\nw: *z\n"], ids=["without-aliases", "with-aliases"])
def test_source_collection_keys_reported_alike(alias: str) -> None:
    # Without an alias the composer finds these itself (NOTE: [Counting without aliases]);
    # either way the one reported is the one the walk over the expanded tree meets first.
    text = f"{alias}a: {{? [1] : x}}\nb: {{? {{k: v}} : y, ? [2] : z}}\n"
    [(line, col, message, _)] = load_fault(text)
    assert (line - alias.count("\n"), col, message) == (2, 7, "mapping keys must be strings, got a mapping")
