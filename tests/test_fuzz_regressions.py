"""Each escape the fuzz campaigns found (docs/reliability.md), as the located SpecError it is now.

Before the fix, each of these raised something else from deep inside the pipeline: a
SyntaxError from fx compiling the generated forward, an IndexError or KeyError from ruamel or
from mapping pydantic's error locations, an OverflowError from Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helpers
import pytest
import torch
from helpers import located, write_spec

from model_constructor import SpecError, build_model

HINT_REF = "write a $ref, such as $x"


def load_error(tmp_path: Path, text: str) -> SpecError:
    return helpers.load_error(write_spec(tmp_path, text, encoding="utf-8"))


def graph(inputs: str, node: str) -> str:
    head = f"schema_version: 1\nmodel:\n  graph:\n    inputs: {inputs}\n"
    return f"{head}    nodes:\n      h: {node}\n    outputs: [$h]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            graph("[x, x]", "{call: method:relu, args: [$x]}"),
            (4, 17, "input 'x' is listed twice", None),
            id="input-twice",  # was: SyntaxError, duplicate argument 'x' in function definition
        ),
        pytest.param(
            graph("[x]", '{call: fn:torch.softmax, args: [$x], kwargs: {"a b": 1, dim: -1}}'),
            (6, 56, "keyword name 'a b' is not a Python identifier", "use letters, digits and _"),
            id="keyword-not-identifier",  # was: SyntaxError in the generated call
        ),
        pytest.param(
            graph("[x]", "{call: method:transpose, args: [0, 1]}"),
            (6, 42, "method 'transpose' needs the tensor as its first argument in args", HINT_REF),
            id="method-on-a-literal",  # was: SyntaxError, `0.transpose(1)`
        ),
        pytest.param(
            '{"X[j": null}\n',
            (1, 2, "unknown key 'X[j'", "allowed keys: imports, model, params, schema_version, settings"),
            id="key-with-a-bracket",  # was: IndexError, taken for a pydantic union tag
        ),
        pytest.param(
            "schema_version: 1\n? [model]\n: 1\n",
            (2, 3, "mapping keys must be strings, got a sequence", None),
            id="complex-key",  # was: TypeError from ruamel, unhashable CommentedMap
        ),
        pytest.param(
            "schema_version: 1\nparams:\n  x: a\ue000\ue100\ue001\n",
            (3, 7, "character U+E000 is reserved by model_constructor", None),
            id="placeholder-character",  # was: IndexError, read as an interpolation placeholder
        ),
    ],
)  # fmt: skip
def test_fuzz_regression_refused_with_location(
    tmp_path: Path, text: str, expected: tuple[int, int, str, str | None]
) -> None:
    assert expected in located(load_error(tmp_path, text))


class _Opaque:
    """An object that a spec written in Python can hold and fx cannot write as code."""


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(_Opaque(), "_Opaque"), (torch.ones(2), "Tensor"), (torch.nn.ReLU(), "ReLU")],
)
def test_fuzz_regression_node_argument_that_is_no_code_refused(value: Any, type_name: str) -> None:
    # Was: SyntaxError from fx, which writes the repr `<_Opaque object at 0x...>` into forward.
    spec = {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": ["x"],
                "nodes": {"h": {"call": "fn:torch.softmax", "args": ["$x", [value]]}},
                "outputs": ["$h"],
            }
        },
    }
    with pytest.raises(SpecError) as info:
        build_model(spec)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.path == ("model", "graph", "nodes", "h", "args", 1, 0)
    assert diagnostic.message == f"a value of type {type_name} cannot be a node argument"


def test_fuzz_regression_node_argument_torch_dtype_allowed() -> None:
    spec = {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": ["x"],
                "nodes": {"h": {"call": "method:to", "args": ["$x"], "kwargs": {"dtype": torch.float64}}},
                "outputs": ["$h"],
            }
        },
    }
    assert build_model(spec)(torch.ones(2)).dtype == torch.float64
