"""The check stage's shortcuts give what the full checks would.

Blocks whose arguments pass their validator are not searched for unknown names (NOTE:
[Arguments as a TypedDict]), sub-graphs with the same declared arguments share one argument
model per process (NOTE: [Argument models]), and a graph written in running order is
checked and ordered in one pass (`runs_in_order`): each must still tell apart what only
looks alike, and report at every place it applies.
"""

from __future__ import annotations

from pathlib import Path

from helpers import build_checked, build_error, located, write_spec

from model_constructor.build import plan_for
from model_constructor.load import load
from model_constructor.plan import BlockPlan

STACK = """\
    schema_version: 1
    model:
      graph:
        inputs: [x]
        modules:
          a: {_type_: nn.Linear, in_features: 4, out_features: 4, bias: %s}
          b: {_type_: nn.Linear, in_features: 4, out_features: 4, bias: %s}
          c: {_type_: nn.Linear, in_features: 4, out_features: 4, bias: %s}
        nodes:
          h1: {call: module:a, args: [$x]}
          h2: {call: module:b, args: [$h1]}
          h3: {call: module:c, args: [$h2]}
        outputs: [$h3]
    """


def test_blocks_with_the_same_arguments_get_equal_but_separate_arguments(tmp_path: Path) -> None:
    plan = plan_for(load(write_spec(tmp_path, STACK % ("true", "true", "true"))).spec)

    kwargs = [module.kwargs for module in plan.modules.values() if isinstance(module, BlockPlan)]
    assert kwargs == [{"in_features": 4, "out_features": 4, "bias": True}] * 3
    assert len({id(k) for k in kwargs}) == 3


def test_an_equal_value_of_another_type_is_validated_on_its_own(tmp_path: Path) -> None:
    # `1 == True`: the second block's bias must not pass as the first one's did.
    exc = build_error(write_spec(tmp_path, STACK % ("true", "1", "1")))

    assert [(line, col, message) for line, col, message, _ in located(exc)] == [
        (line, 69, "argument 'bias' of block 'nn.Linear': Input should be a valid boolean, got 1")
        for line in (7, 8)
    ]


def test_subgraphs_that_differ_only_in_a_default_keep_their_own(tmp_path: Path) -> None:
    text = """\
        schema_version: 1
        model:
          graphs:
            block:
              args: {width: {type: int, default: %s}}
              inputs: [x]
              modules:
                lin: {_type_: nn.Linear, in_features: "${args.width}", out_features: 2}
              nodes:
                y: {call: module:lin, args: [$x]}
              outputs: [$y]
          graph:
            inputs: [x]
            modules:
              m: {_type_: "graph:block"}
            nodes:
              y: {call: module:m, args: [$x]}
            outputs: [$y]
        """
    assert build_checked(write_spec(tmp_path, text % "1")).m.lin.in_features == 1
    assert build_checked(write_spec(tmp_path, text % "5")).m.lin.in_features == 5
    # `true == 1`, but the model made for the default 1 must not take it.
    exc = build_error(write_spec(tmp_path, text % "true"))
    assert [message for _, _, message, _ in located(exc)] == [
        "default of argument 'width' of sub-graph 'block': Input should be a valid integer, got True"
    ]


def test_a_written_order_that_runs_is_kept(tmp_path: Path) -> None:
    text = """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            nodes:
              a: {call: method:relu, args: [$x]}
              b: {call: method:neg, args: [$x]}
              c: {call: fn:torch.add, args: [$a, $b]}
            order: [b, a, c]
            outputs: [$c]
        """
    plan = plan_for(load(write_spec(tmp_path, text)).spec)

    assert [node.name for node in plan.nodes] == ["b", "a", "c"]


def test_arguments_that_fail_validation_are_searched_for_unknown_names_too(tmp_path: Path) -> None:
    text = """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              a: {_type_: nn.Linear, in_features: "4", out_featres: 4}
              b: {_type_: nn.GELU, approximate: 1, extra: 2}
            nodes:
              h1: {call: module:a, args: [$x]}
              h2: {call: module:b, args: [$h1]}
            outputs: [$h2]
        """
    exc = build_error(write_spec(tmp_path, text))

    assert located(exc) == [
        (
            6,
            43,
            "argument 'in_features' of block 'nn.Linear': Input should be a valid integer, got '4'",
            "strict blocks take numbers and booleans unquoted",
        ),
        # Misspelled, so reported once, as unknown, and not again as a missing out_features.
        (6, 48, "unknown argument 'out_featres' for block 'nn.Linear'", "did you mean 'out_features'?"),
        (7, 41, "argument 'approximate' of block 'nn.GELU': Input should be a valid string, got 1", None),
        (7, 44, "unknown argument 'extra' for block 'nn.GELU'", "valid arguments: approximate"),
    ]


def test_an_unknown_ref_in_a_graph_that_runs_in_order_is_reported_once(tmp_path: Path) -> None:
    text = """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            nodes:
              a: {call: method:relu, args: [$x]}
              b: {call: fn:torch.add, args: [$a, $y]}
              c: {call: method:neg, args: [$b]}
            order: [a, b, c]
            outputs: [$c]
        """
    exc = build_error(write_spec(tmp_path, text))

    assert located(exc) == [(7, 42, "unknown reference '$y'", "known names: x, a, c")]
