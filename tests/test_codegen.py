"""The forward is written straight from the plan, and the fx Graph only when read
(NOTE: [Source first, fx on demand] in codegen.py): both must describe the same forward.

A spec using every kind of call and value the generated code can hold is built; its
`model.code` must be the text fx writes for `model.graph`, and the forward fx compiles from
that graph (`model.recompile()`) must compute what ours computes, and keep the runtime note.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import build_checked, write_spec
from torch.fx.graph import _Namespace
from torch.fx.graph_module import _loader

from model_constructor import Registry, build_model
from model_constructor.codegen import _Names


def affine(x: torch.Tensor, scale: float, shift: float = 0.0) -> torch.Tensor:
    return x * scale + shift


REGISTRY = Registry()
REGISTRY.register_function("test.affine", affine)
REGISTRY.register_function("test.lambda_double", lambda x: x * 2)

SPEC = """\
schema_version: 1
model:
  graphs:
    pair:
      inputs: [x]
      modules:
        fc: {_type_: nn.Linear, in_features: 4, out_features: 4}
      nodes:
        h: {call: module:fc, args: [$x]}
        r: {call: fn:torch.relu, args: [$h]}
      outputs: [$h, $r]
      return: tuple
    block:
      inputs: [x]
      modules:
        fc: {_type_: nn.Linear, in_features: 4, out_features: 4}
      nodes:
        h: {call: module:fc, args: [$x]}
      outputs: [$h]
  graph:
    inputs: [x, y]
    modules:
      emb: {_type_: nn.Embedding, num_embeddings: 10, embedding_dim: 4}
      rnn: {_type_: nn.GRU, input_size: 4, hidden_size: 4, batch_first: true}
      blocks: {_type_: "graph:block", _repeat_: 2}
      pair: {_type_: "graph:pair"}
      unused: {_type_: nn.Identity}
    nodes:
      e: {call: module:emb, args: [$y]}
      seq: {call: module:rnn, args: [$e]}
      last: {call: fn:torch.select, args: [$seq.0], kwargs: {dim: 1, index: -1}}
      b: {call: module:blocks, args: [$last]}
      p: {call: module:pair, args: [$b]}
      both: {call: fn:torch.cat, args: [[$p.0, $p.1, $x]], kwargs: {dim: -1}}
      clipped: {call: fn:torch.clamp, args: [$both], kwargs: {min: -.inf, max: 10.5}}
      scaled: {call: fn:test.affine, args: [$clipped, 0.5], kwargs: {shift: 1.0}}
      doubled: {call: fn:test.lambda_double, args: [$scaled]}
      flat: {call: method:reshape, args: [$doubled, -1]}
      tied: {call: fn:F.linear, args: [$last, $self.emb.weight]}
    outputs: {flat: $flat, tied: $tied, hidden: $seq.1}
    return: dict
"""


def _line_of(text: str) -> int:
    return next(number for number, line in enumerate(SPEC.splitlines(), 1) if line.strip().startswith(text))


# The model is one instance of `pair`.
_PAIR_ONLY = SPEC.split("  graph:\n")[0] + "  graph: {_type_: 'graph:pair'}\n"


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, generator=generator), torch.randint(0, 10, (2, 3), generator=generator)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return write_spec(tmp_path, SPEC)


@pytest.fixture
def model(path: Path) -> Any:
    with pytest.warns(Warning, match="unused"):
        return build_checked(path, registry=REGISTRY)


def test_code_is_what_fx_writes_for_the_graph(model: Any) -> None:
    # build_checked compared the texts; this spec must reach the cases that matter.
    code = model.code
    assert "seq_0 = seq[0]" in code  # a block's runtime return, indexed when the forward runs
    assert "blocks_0 = getattr(blocks, '0')" in code  # a hoisted container
    assert "min = -inf" in code  # a float with no literal, as fx writes it
    assert "scaled = test_codegen_affine(clipped, 0.5, shift = 1.0)" in code  # a caller's function
    assert "emb_weight = self.emb.weight" in code  # $self.emb.weight
    assert "return {'flat': flat, 'tied': tied, 'hidden': seq_1}" in code


def test_fx_recompiled_forward_computes_the_same(model: Any) -> None:
    x, y = _inputs()
    ours = model(x, y)

    model.recompile()  # fx's own code for the graph becomes the forward
    theirs = model(x, y)

    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)


@pytest.mark.parametrize("recompiled", [False, True])
def test_runtime_note_names_the_node(model: Any, path: Path, recompiled: bool) -> None:
    _, y = _inputs()
    if recompiled:
        model.recompile()

    with pytest.raises(RuntimeError) as info:
        model(torch.randn(3, 4), y)  # batch 3 against 2: torch.cat of `both` fails

    assert [note for note in info.value.__notes__ if "raised in node" in note] == [
        f"raised in node 'both' at {path}:{_line_of('both:')}:7"
    ]


def test_graph_is_generated_when_first_read(tmp_path: Path) -> None:
    model = build_model(write_spec(tmp_path, _PAIR_ONLY))
    assert model._graph is None  # nothing read it yet

    graph = model.graph

    assert graph is model.graph
    assert graph.owning_module is model
    assert [n.meta.get("yaml_node") for n in graph.nodes if n.op == "call_module"] == ["h"]


def test_edited_graph_becomes_the_forward(tmp_path: Path) -> None:
    model = build_model(write_spec(tmp_path, _PAIR_ONLY))
    x = torch.randn(2, 4)
    node = next(n for n in model.graph.nodes if n.op == "call_function")
    node.target = torch.sigmoid

    model.recompile()

    h, r = model(x)
    torch.testing.assert_close(r, torch.sigmoid(h))
    assert "torch.sigmoid" in model.code


def test_assigned_graph_becomes_the_forward(tmp_path: Path) -> None:
    # Only the model's construction skips fx's compile of a graph (NOTE: [No empty forward]).
    model = build_model(write_spec(tmp_path, _PAIR_ONLY))
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(torch.neg, (x,)))

    model.graph = graph

    assert model.graph is graph
    assert "neg = torch.neg(x)" in model.code
    torch.testing.assert_close(model(torch.ones(2)), -torch.ones(2))


def test_build_compiles_one_forward(tmp_path: Path) -> None:
    path = write_spec(tmp_path, _PAIR_ONLY)
    before = _loader.next_id  # fx numbers each forward it compiles

    build_model(path)

    assert _loader.next_id == before + 1  # not an empty one first: NOTE: [No empty forward]


def test_values_without_a_literal_become_globals() -> None:
    data = {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": ["x"],
                "nodes": {
                    "z": {"call": "fn:torch.zeros_like", "args": ["$x"], "kwargs": {"dtype": torch.float64}},
                    "s": {"call": "fn:torch.add", "args": ["$z", math.nan]},
                },
                "outputs": ["$s"],
            }
        },
    }
    model = build_checked(data)

    out = model(torch.ones(2))

    assert out.dtype == torch.float64 and torch.isnan(out).all()
    assert "dtype = torch.float64" in model.code


def test_names_fx_changes_are_fx_names() -> None:
    data = {
        "schema_version": 1,
        "model": {
            "graphs": {
                "sub": {
                    "inputs": ["x"],
                    "nodes": {"h": {"call": "fn:torch.relu", "args": ["$x"]}},
                    "outputs": ["$h"],
                }
            },
            "graph": {
                "inputs": ["input", "y"],
                "modules": {"b": {"_type_": "graph:sub"}},
                "nodes": {
                    "b_h": {"call": "fn:torch.neg", "args": ["$input"]},
                    "h_2": {"call": "fn:torch.neg", "args": ["$b_h"]},
                    "sum": {"call": "fn:torch.add", "args": ["$b_h", "$h_2"]},
                    "t": {"call": "module:b", "args": ["$sum"]},  # inlined as b_h: taken
                    "h": {"call": "fn:torch.add", "args": ["$t", "$y"]},
                    "len": {"call": "fn:torch.neg", "args": ["$h"]},
                },
                "outputs": ["$len"],
            },
        },
    }
    model = build_checked(data)  # the code is fx's

    assert model.code.startswith("def forward(self, input, y):\n    input_1 = input\n")
    assert "b_h_1 = torch.relu(sum_1);  sum_1 = None" in model.code
    assert "len_1 = torch.neg(h);  h = None" in model.code
    torch.testing.assert_close(model(input=torch.ones(1), y=torch.ones(1)), -torch.ones(1))


@pytest.mark.parametrize(
    "candidates",
    [
        ["h", "h", "h_1", "h"],  # used, then a suffix taken, then used again
        ["h_5", "h", "h"],  # a suffix sets the count a later clash continues from
        ["input", "sum", "torch", "inf", "None", "class", "self"],  # builtins, keywords
        ["n1", "n_1", "n__1", "_1", "__1", "n_", "_", "n1_0"],  # digits, with and without a suffix
        ["é", "a.b", "1a", "", "layers_0_h1"],  # not identifiers as they stand
    ],
)
def test_names_are_fx_namespace_names(candidates: list[str]) -> None:
    # NOTE: [Kept names]: the shortcut must give fx's names, and leave fx's state behind.
    ours, theirs = _Names(), _Namespace()
    names = [ours.create_name(c, None) for c in candidates]

    assert names == [theirs.create_name(c, None) for c in candidates]
    assert ours.create_name("h", None) == theirs.create_name("h", None)
    token = object()
    assert ours.create_name("n1", token) == theirs.create_name("n1", token)  # one bound to an object
