"""The checked plan of a model: what the check stage hands to the build stage.

Plans hold resolved registry entries, validated argument values and parsed `$refs`, and
nothing that still needs checking; building one can fail only in a user's constructor.
A built model keeps its plan and regenerates its forward from it, so nothing changes a
plan once the check stage made it.

NOTE: [Plans made by the thousand] Plans are frozen, but for `NodePlan` and `BlockPlan`,
made once per node and per block (thousands in a large spec), as is the `Ref` of each
`$ref` (graph.py). Frozen, they would cost up to three times as much to make (a frozen
dataclass sets each field through `object.__setattr__`: 0.7 ms more on a spec of 1000
blocks and nodes) and guard less than it seems: the plans' `kwargs` are dicts, which
freezing cannot guard, and which already make them unhashable. They have `__slots__`, so
no `__dict__` is allocated for each (0.1-0.3 ms less per check of 1000 blocks and nodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .errors import ConfigPath, Diagnostic
from .graph import Ref
from .registry import Entry

T = TypeVar("T")
CallKind = Literal["module", "fn", "method"]
ReturnKind = Literal["single", "tuple", "dict"]


@dataclass(slots=True)  # not frozen: NOTE: [Plans made by the thousand]
class BlockPlan:
    """A registered block to construct: its entry and validated arguments.

    Argument values are literals, nested `BlockPlan`s, or lists holding them.
    """

    path: ConfigPath
    entry: Entry
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class SubgraphPlan:
    """An instance of a sub-graph (`_type_: graph:NAME`): a container of its own modules,
    whose nodes run inlined in the forward of the graph that calls it."""

    path: ConfigPath
    name: str
    graph: GraphPlan


@dataclass(frozen=True)
class RepeatPlan:
    """`_repeat_: N`: N copies, each with its own weights, applied in sequence."""

    path: ConfigPath
    copies: tuple[BlockPlan | SubgraphPlan, ...]


ModulePlan = BlockPlan | SubgraphPlan | RepeatPlan


@dataclass(slots=True)  # not frozen: NOTE: [Plans made by the thousand]
class NodePlan:
    """One call of the forward pass, with its target resolved and `$refs` parsed."""

    name: str
    kind: CallKind
    target: str
    function: Callable[..., Any] | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    path: ConfigPath


@dataclass(frozen=True)
class GraphPlan:
    """One graph's inputs, modules, nodes in execution order, and outputs."""

    inputs: tuple[str, ...]
    modules: dict[str, ModulePlan]
    nodes: tuple[NodePlan, ...]
    outputs: tuple[Ref, ...] | dict[str, Ref]
    return_kind: ReturnKind
    warnings: tuple[Diagnostic, ...] = field(default=())
    # The nodes that read `$self.MODULE.ATTRIBUTE`: only built modules can tell whether the
    # attribute exists, so the build looks at these, not at every node.
    reading_self: tuple[NodePlan, ...] = field(default=())

    def returned(self, value_of: Callable[[Ref], T]) -> T | tuple[T, ...] | dict[str, T]:
        """The graph's result, shaped as `return` says, from each output's `value_of(ref)`."""
        if isinstance(self.outputs, dict):
            return {key: value_of(ref) for key, ref in self.outputs.items()}
        if self.return_kind == "single":
            return value_of(self.outputs[0])
        return tuple(value_of(ref) for ref in self.outputs)
