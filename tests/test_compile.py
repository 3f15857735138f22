"""A built model works under torch.compile(fullgraph=True) and torch.export, like hand-written code."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from helpers import Activated

from model_constructor import BuiltModel, Registry, SpecWarning, build_model

pytestmark = pytest.mark.slow


# Every kind of call and ref, and a dict return: each is something the tracer must follow.
SPEC = """\
    schema_version: 1
    params: {width: 4}
    model:
      graph:
        inputs: [x]
        modules:
          attn: {_type_: nn.MultiheadAttention, embed_dim: "${params.width}", num_heads: 2, batch_first: true}
          mix:
            _type_: test.mixer
            width: ${params.width}
            activation: {_type_: nn.GELU, approximate: tanh}
          spare: {_type_: nn.Linear, in_features: 1, out_features: 1}
        nodes:
          a: {call: module:attn, args: [$x, $x, $x], kwargs: {need_weights: false}}
          m: {call: module:mix, args: [$a.0]}
          s: {call: fn:torch.add, args: [$m, $x], kwargs: {alpha: 0.5}}
          t: {call: method:transpose, args: [$s, 1, 2]}
          c: {call: fn:torch.cat, args: [[$t, $t]], kwargs: {dim: -1}}
          p: {call: fn:F.softmax, args: [$c], kwargs: {dim: -1}}
        outputs: {probs: $p, mixed: $m}
        return: dict
"""


@pytest.fixture
def model(tmp_path: Path) -> BuiltModel:
    path = tmp_path / "model.yaml"
    path.write_text(textwrap.dedent(SPEC))
    registry = Registry()
    registry.register_module("test.mixer", Activated)
    torch.manual_seed(0)
    with pytest.warns(SpecWarning, match="module 'spare' is never called"):
        built = build_model(path, registry=registry)
    return built.eval()


def test_compile_fullgraph_matches_eager(model: BuiltModel) -> None:
    torch._dynamo.reset()
    x = torch.randn(2, 3, 4)
    compiled = torch.compile(model, fullgraph=True)

    with torch.no_grad():
        expected = model(x)
        result = compiled(x)
        again = compiled(x + 1)

    assert list(result) == ["probs", "mixed"]
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(again, model(x + 1))


def test_compile_export_matches_eager(model: BuiltModel) -> None:
    x = torch.randn(2, 3, 4)

    exported = torch.export.export(model, (x,))

    with torch.no_grad():
        expected = model(x)
        result = exported.module()(x)
    assert list(result) == ["probs", "mixed"]
    torch.testing.assert_close(result, expected)
    # The exported program keeps the YAML module names as its parameter names.
    assert set(exported.state_dict) == set(model.state_dict())
