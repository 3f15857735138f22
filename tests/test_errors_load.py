"""Loading a spec file: YAML faults, unsafe tags, the top-level shape, and the seed's `${...}`."""

from __future__ import annotations

import copy
import gc
import textwrap
from pathlib import Path

import pytest
import ruamel.yaml
from helpers import load_error, located, write_spec

from model_constructor import ModelSpec, SpecError, build_model, load_spec

SEED = Path(__file__).resolve().parents[1] / "examples" / "seed"
SEED_YAML = SEED / "configs" / "models" / "my_model.yaml"

# The rest of a valid spec, for cases whose fault is above it.
GRAPH = """\
model:
  graph:
    inputs: [x]
    nodes:
      h1: {call: method:relu, args: [$x]}
    outputs: [$h1]
"""

PLAIN_DATA_HINT = "specs hold plain data only: mappings, lists, strings, numbers, booleans, null"


def assert_reported(exc: SpecError, path: Path, expected: tuple[int, int, str, str | None]) -> None:
    """`exc` holds exactly the one fault `expected`, and its rendered headline says so."""
    assert located(exc) == [expected]
    line, col, message, hint = expected
    headline = str(exc).splitlines()[0]
    assert headline.startswith(f"{path}:{line}:{col}: error: ")
    assert headline.endswith(f"{message} ({hint})" if hint else message)


# ---- YAML faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "schema_version: 1\nparams: {width: 1]\n" + GRAPH,
            (2, 18, "YAML syntax error: expected ',' or '}', but got ']'", None),
            id="syntax-error",
        ),
        pytest.param(
            "schema_version: 1\nparams:\n  a: 1\n b: 2\n" + GRAPH,
            (4, 2, "YAML syntax error: expected <block end>, but found '<block mapping start>'", None),
            id="bad-indentation",
        ),
        pytest.param(
            "schema_version: 1\nparams:\n  width: 1\n  width: 2\n" + GRAPH,
            (4, 3, "duplicate key 'width'", "first written at line 3"),
            id="duplicate-key",
        ),
        pytest.param(
            "schema_version: 1\nparams: {1: a}\n" + GRAPH,
            (2, 10, "mapping keys must be strings, got 1", "quote the key"),
            id="non-string-key",
        ),
    ],
)
def test_load_yaml_fault(tmp_path: Path, text: str, expected: tuple[int, int, str, str | None]) -> None:
    path = write_spec(tmp_path, text)
    assert_reported(load_error(path), path, expected)


def test_load_syntax_error_renders_excerpt_and_caret(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "schema_version: 1\nparams: {width: 1]\n" + GRAPH)
    assert str(load_error(path)) == (
        f"{path}:2:18: error: <root>: YAML syntax error: expected ',' or '}}', but got ']'\n"
        " 2 | params: {width: 1]\n"
        "   |                  ^"
    )


def test_load_duplicate_key_inside_flow_mapping(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "schema_version: 1\nparams: {width: 1, depth: 2, width: 3}\n" + GRAPH)
    assert located(load_error(path)) == [(2, 30, "duplicate key 'width'", "first written at line 2")]


# ---- unsafe and non-core tags -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        (
            "!!python/object/apply:os.system ['touch {marker}']",
            "!!python/object/apply:os.system",
        ),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!!python/object:pathlib.Path {{}}", "!!python/object:pathlib.Path"),
        ("!!python/tuple [1, 2]", "!!python/tuple"),
        ("!custom {{a: 1}}", "!custom"),
        ("!env HOME", "!env"),
    ],
)
def test_load_tag_refused(tmp_path: Path, value: str, tag: str) -> None:
    marker = tmp_path / "ran"
    path = write_spec(tmp_path, f"schema_version: 1\nparams:\n  x: {value.format(marker=marker)}\n" + GRAPH)
    exc = load_error(path)
    assert located(exc) == [(3, 6, f"YAML tag {tag!r} is not allowed", PLAIN_DATA_HINT)]
    assert not marker.exists()


def test_load_tags_all_reported(tmp_path: Path) -> None:
    text = """\
        schema_version: 1
        params:
          a: !!python/name:os.system
          b: [1, !custom x]
        """
    path = write_spec(tmp_path, textwrap.dedent(text) + GRAPH)
    assert located(load_error(path)) == [
        (3, 6, "YAML tag '!!python/name:os.system' is not allowed", PLAIN_DATA_HINT),
        (4, 10, "YAML tag '!custom' is not allowed", PLAIN_DATA_HINT),
    ]


@pytest.mark.parametrize(
    ("value", "message", "hint"),
    [
        ("!!binary aGVsbG8=", "unsupported YAML value of type bytes", None),
        ("!!set {a, b}", "unsupported YAML value of type CommentedSet", None),
        ("2020-01-01", "unsupported YAML value of type date", "quote it to make it a string"),
    ],
)
def test_load_non_plain_value_refused(tmp_path: Path, value: str, message: str, hint: str | None) -> None:
    path = write_spec(tmp_path, f"schema_version: 1\nparams:\n  x: {value}\n" + GRAPH)
    assert located(load_error(path)) == [(3, 6, message, hint)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2020-13-45", "YAML error: month must be in 1..12"),
        ("9" * 5000, "YAML error: Exceeds the limit (4300 digits) for integer string conversion"),
    ],
)
def test_load_value_ruamel_cannot_build(tmp_path: Path, value: str, message: str) -> None:
    # ruamel raises these without a position: the error names the file, at its start.
    path = write_spec(tmp_path, f"schema_version: 1\nparams:\n  x: {value}\n" + GRAPH)
    exc = load_error(path)
    [(line, col, got, hint)] = located(exc)
    assert (line, col, hint) == (1, 1, None)
    assert got.startswith(message)


def test_load_deep_nesting_refused(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "schema_version: 1\nparams: {a: " + "[" * 70 + "]" * 70 + "}\n" + GRAPH)
    [(line, col, message, hint)] = located(load_error(path))
    assert (line, col, message, hint) == (2, 76, "spec too large: nesting deeper than 64 levels", None)


def test_load_merge_key_accepted(tmp_path: Path) -> None:
    text = """\
        schema_version: 1
        params:
          base: &base {width: 8, depth: 2}
          wide: {<<: *base, width: 16}
          same:
            <<: *base
        """
    path = write_spec(tmp_path, textwrap.dedent(text) + GRAPH)
    params = load_spec(path).params
    assert params["wide"] == {"width": 16, "depth": 2}
    assert params["same"] == {"width": 8, "depth": 2}


# ---- the top level ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "schema_version: 1\nparms: {}\n" + GRAPH,
            (2, 1, "unknown key 'parms'", "did you mean 'params'?"),
            id="unknown-key-near",
        ),
        pytest.param(
            "schema_version: 1\nextras: {}\n" + GRAPH,
            (2, 1, "unknown key 'extras'", "allowed keys: imports, model, params, schema_version, settings"),
            id="unknown-key-far",
        ),
        pytest.param(
            "schema_version: 2\n" + GRAPH,
            (
                1,
                17,
                "unsupported schema_version 2",
                "this version of model_constructor reads schema_version 1",
            ),
            id="schema-version-2",
        ),
        pytest.param(
            'schema_version: "1"\n' + GRAPH,
            (
                1,
                17,
                "unsupported schema_version '1'",
                "this version of model_constructor reads schema_version 1",
            ),
            id="schema-version-quoted",
        ),
        pytest.param(
            "params: {}\n" + GRAPH,
            (1, 1, "missing required key 'schema_version'", None),
            id="schema-version-missing",
        ),
        pytest.param(
            "# a spec\nschema_version: 1\n",
            (2, 1, "missing required key 'model'", None),
            id="model-missing",
        ),
    ],
)
def test_load_top_level_fault(tmp_path: Path, text: str, expected: tuple[int, int, str, str | None]) -> None:
    path = write_spec(tmp_path, text)
    assert_reported(load_error(path), path, expected)


def test_load_unknown_top_level_key_renders_hint_and_caret(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "schema_version: 1\nparms: {}\n" + GRAPH)
    assert str(load_error(path)) == (
        f"{path}:2:1: error: parms: unknown key 'parms' (did you mean 'params'?)\n"
        " 2 | parms: {}\n"
        "   | ^~~~~"
    )


def test_load_pattern_faults_say_what_was_expected(tmp_path: Path) -> None:
    text = """\
schema_version: 1
model:
  graph:
    inputs: [x]
    modules:
      m: {_type_: "nn Linear", in_features: 2, out_features: 2}
    nodes:
      y: {call: modul:m, args: [$x]}
      z: {call: mod, args: [$y]}
    outputs: [$z]
"""
    exc = load_error(write_spec(tmp_path, text))

    assert located(exc) == [
        (6, 19, "expected a registry key such as 'nn.Linear', or 'graph:NAME', got 'nn Linear'", None),
        (
            8,
            17,
            "expected 'module:NAME', 'fn:KEY' or 'method:NAME', got 'modul:m'",
            "did you mean 'module:m'?",
        ),
        (9, 17, "expected 'module:NAME', 'fn:KEY' or 'method:NAME', got 'mod'", None),
    ]
    assert "[A-Za-z" not in str(exc)  # the regular expressions stay out of the message


def test_load_nested_block_faults_each_at_its_own_key(tmp_path: Path) -> None:
    text = """\
schema_version: 1
model:
  graph:
    inputs: [x]
    modules:
      m:
        _type_: nn.Sequential
        block: {_type_: 5}
        layers:
          - {_type_: nn.ReLU}
          - {_type_: nn.ReLU, _repeat_: 0}
    nodes:
      y: {call: module:m, args: [$x]}
    outputs: [$y]
"""
    exc = load_error(write_spec(tmp_path, text))

    assert [d.path for d in exc.diagnostics] == [
        ("model", "graph", "modules", "m", "block", "_type_"),
        ("model", "graph", "modules", "m", "layers", 1, "_repeat_"),
    ]
    assert located(exc, hint=False) == [
        (8, 25, "Input should be a valid string, got 5"),
        (11, 41, "_repeat_ must be a whole number from 1 to 10000, got 0"),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("- a\n- b\n", 1),
        ("just a string\n", 1),
        ("42\n", 1),
        ("", 1),
        ("# a comment\n\n[schema_version, model]\n", 3),
    ],
)
def test_load_non_mapping_document(tmp_path: Path, text: str, line: int) -> None:
    path = write_spec(tmp_path, text)
    exc = load_error(path)
    assert located(exc) == [(line, 1, "a spec must be a mapping with schema_version and model", None)]
    assert str(exc).startswith(f"{path}:{line}:1: error: <root>: a spec must be a mapping")


# ---- the seed's unquoted ${...} ---------------------------------------------------------------


@pytest.mark.usefixtures("seed_blocks")
def test_load_seed_unquoted_interpolation_accepted() -> None:
    spec = load_spec(SEED_YAML)
    modules = spec.model.graph.modules
    assert modules["proj"].kwargs == {"in_features": 128, "out_features": 128}
    assert modules["mix"].kwargs == {"width": 128, "dropout": 0.1}


def seed_with(tmp_path: Path, old: str, new: str) -> tuple[Path, int, str]:
    """The seed spec with one edit; returns its path, and the edited line's number and text."""
    text = SEED_YAML.read_text()
    assert text.count(old) == 1
    text = text.replace(old, new)
    path = tmp_path / "configs" / "models" / "my_model.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    [(number, line)] = [(i, line) for i, line in enumerate(text.splitlines(), 1) if new in line]
    return path, number, line


@pytest.mark.usefixtures("seed_blocks")
@pytest.mark.parametrize(
    ("old", "new", "at", "message", "hint"),
    [
        pytest.param(
            "dropout: ${params.dropout}",
            "dropot: ${params.dropout}",
            "dropot",
            "unknown argument 'dropot' for block 'my_project.token_mixer'",
            "did you mean 'dropout'?",
            id="unknown-kwarg",
        ),
        pytest.param(
            "out_features: ${params.width}",
            "out_features: ${params.widht}",
            "${params.widht}",
            "unknown param 'params.widht'",
            "did you mean 'params.width'?",
            id="unknown-param",
        ),
        pytest.param(
            "out_features: ${params.width}}",
            "out_features: ${params.width}]",
            "]",
            "YAML syntax error: expected ',' or '}', but got ']'",
            None,
            id="syntax-error",
        ),
        pytest.param(
            "out_features: ${params.width}}",
            "out_features: !!python/name:os.system ''}",
            "!!python",
            "YAML tag '!!python/name:os.system' is not allowed",
            PLAIN_DATA_HINT,
            id="python-tag",
        ),
    ],
)
def test_load_seed_positions_after_interpolation_exact(
    tmp_path: Path, old: str, new: str, at: str, message: str, hint: str | None
) -> None:
    path, line, text = seed_with(tmp_path, old, new)
    exc = load_error(path)
    col = text.index(at) + 1
    # The fault sits after one or more unquoted ${...} on the same line.
    assert "${params.width}" in text[: col - 1]
    assert located(exc) == [(line, col, message, hint)]
    assert str(exc).startswith(f"{path}:{line}:{col}: error: ")


@pytest.mark.usefixtures("seed_blocks")
def test_load_seed_unknown_kwarg_renders_like_a_compiler(tmp_path: Path) -> None:
    path, _, line = seed_with(tmp_path, "width: ${params.width}, dropout", "widht: ${params.width}, dropout")
    assert str(load_error(path)) == (
        f"{path}:16:45: error: model.graph.modules.mix.widht: unknown argument 'widht' for block "
        "'my_project.token_mixer' (did you mean 'width'?)\n"
        f" 16 | {line}\n"
        "    |                                             ^~~~~"
    )


@pytest.mark.parametrize("quote", ['"', "'"])
def test_load_quoted_interpolation_keeps_type(tmp_path: Path, quote: str) -> None:
    spec_text = """\
        schema_version: 1
        params: {{width: 128, dropout: 0.1, name: gelu}}
        model:
          graph:
            inputs: [x]
            modules:
              proj: {{_type_: nn.Linear, in_features: {q}${{params.width}}{q}, out_features: 4}}
              drop: {{_type_: nn.Dropout, p: {q}${{params.dropout}}{q}}}
              act: {{_type_: nn.GELU, approximate: {q}none{q}}}
            nodes:
              h1: {{call: module:proj, args: [$x]}}
              h2: {{call: module:drop, args: [$h1]}}
              h3: {{call: module:act, args: [$h2]}}
            outputs: [$h3]
        """
    quoted = load_spec(write_spec(tmp_path, spec_text.format(q=quote), "quoted.yaml"))
    unquoted = load_spec(write_spec(tmp_path, spec_text.format(q=""), "unquoted.yaml"))
    assert quoted == unquoted
    in_features = quoted.model.graph.modules["proj"].kwargs["in_features"]
    p = quoted.model.graph.modules["drop"].kwargs["p"]
    assert (in_features, type(in_features)) == (128, int)
    assert (p, type(p)) == (0.1, float)


def test_load_file_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        params: {width: 4}
        model:
          graph:
            inputs: [x]
            modules:
              proj: {_type_: nn.Linear, in_features: ${params.width}, out_features: ${params.width}}
            nodes:
              h1: {call: module:proj, args: [$x]}
            outputs: [$h1]
        """,
    )
    calls: list[object] = []
    original = ruamel.yaml.YAML.get_constructor_parser

    # Every way of parsing with a YAML object (load, compose, load_all) starts here.
    def counting(self: ruamel.yaml.YAML, stream: object) -> object:
        calls.append(stream)
        return original(self, stream)

    monkeypatch.setattr(ruamel.yaml.YAML, "get_constructor_parser", counting)
    build_model(path)
    assert len(calls) == 1
    load_spec(path)
    assert len(calls) == 2


# ---- a ModelSpec given to load ----------------------------------------------------------------

PYTHON_SPEC = {
    "schema_version": 1,
    "params": {"n": 2},
    "model": {
        "graph": {
            "inputs": ["x"],
            "nodes": {"h1": {"call": "method:relu", "args": ["$x"]}},
            "outputs": ["$h1"],
        }
    },
}


def test_load_leaves_the_parse_to_reference_counting(tmp_path: Path) -> None:
    # ruamel's parser objects point at each other; they held the SourceMap (one Location per
    # value), so every load left tens of thousands of objects to the cyclic collector.
    modules = "\n".join(
        f"      l{i}: {{_type_: nn.Linear, in_features: ${{params.width}}, out_features: ${{params.width}}}}"
        for i in range(200)
    )
    nodes = "\n".join(
        f"      n{i}: {{call: module:l{i}, args: [${'x' if i == 0 else f'n{i - 1}'}]}}" for i in range(200)
    )
    text = (
        "schema_version: 1\nparams: {width: 4}\nmodel:\n  graph:\n    inputs: [x]\n"
        f"    modules:\n{modules}\n    nodes:\n{nodes}\n    outputs: [$n199]\n"
    )
    path = write_spec(tmp_path, text)
    position = type(
        load_error(write_spec(tmp_path, "schema_version: 1\n", "bad.yaml")).diagnostics[0].location
    )
    load_spec(path)
    gc.collect()
    gc.disable()
    try:
        load_spec(path)
        # The positions of this file's 1,400 values, needed only while it loads.
        positions = [o for o in gc.get_objects() if type(o) is position and o.file == str(path)]
    finally:
        gc.enable()

    assert positions == []


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic's dump warns of the mutated list
def test_load_model_spec_mutated_after_validation_checked_again() -> None:
    spec = ModelSpec.model_validate(copy.deepcopy(PYTHON_SPEC))
    spec.model.graph.inputs.append(3)  # type: ignore[arg-type]

    with pytest.raises(SpecError) as info:
        load_spec(spec)

    assert str(info.value) == "error: model.graph.inputs[1]: Input should be a valid string, got 3"


def test_load_model_spec_never_validated_checked() -> None:
    graph = ModelSpec.model_validate(copy.deepcopy(PYTHON_SPEC)).model
    spec = ModelSpec.model_construct(schema_version=2, model=graph)

    with pytest.raises(SpecError) as info:
        load_spec(spec)

    assert str(info.value) == (
        "error: schema_version: unsupported schema_version 2 "
        "(this version of model_constructor reads schema_version 1)"
    )


def test_load_model_spec_interpolated_into_a_copy() -> None:
    spec = ModelSpec.model_validate(copy.deepcopy(PYTHON_SPEC))
    spec.model.graph.nodes["h1"].kwargs["k"] = "${params.n}"

    loaded = load_spec(spec)

    assert loaded.model.graph.nodes["h1"].kwargs == {"k": 2}
    assert spec.model.graph.nodes["h1"].kwargs == {"k": "${params.n}"}
    assert loaded.model.graph.inputs is not spec.model.graph.inputs
