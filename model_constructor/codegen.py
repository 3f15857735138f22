"""Plan -> torch.fx Graph: the forward pass as straight-line code.

Sub-graphs and repeats are inlined: an instance's nodes become nodes of the calling graph,
calling `self.enc.attn(...)` directly, and a repeat of N unrolls into N calls. The forward
is then one flat function with no per-call loop, no nested module dispatch, and nothing for
`torch.compile` to break on. The containers (`Subgraph`, `nn.ModuleList`) only own the
weights, so state_dict keys nest as the spec does: `enc.attn.in_proj_weight`, `layers.0....`.

NOTE: [Hoisted containers]
fx writes a `call_module` of `layers.0.fc1` as `getattr(self.layers, "0").fc1(x)`: three
`nn.Module.__getattr__` lookups per call, each a failed attribute lookup plus a Python call
(about 0.3 us, 0.8 us on a loaded machine). A repeated sub-graph of four calls paid eight
more lookups per copy than hand-written code (`for layer in self.layers: x = layer(x)`),
and the generated forward of a 122-node residual MLP ran 1.17x slower than hand-written
code at batch 1 (benchmarks/forward.py). So a module below the top level is called through
its container, fetched once per forward into a local, as hand-written code does:

    layers = self.layers
    layers_0 = getattr(layers, "0")
    layers_0_h1 = layers_0.norm(x)

In the graph that is a `get_attr` of the top-level container, `getattr` calls below it, and a
`call_method` of the child's name on its container, which fx's Interpreter, Dynamo and
export run like any method call. Top-level modules stay `call_module` nodes (`self.proj(x)`
is already what hand-written code does). Module swaps (`model.layers[0].fc1 = ...`) still
take effect, since every lookup happens at call time.
"""

from __future__ import annotations

import operator
from typing import Any

from torch import fx

from .graph import Ref
from .plan import BlockPlan, GraphPlan, ModulePlan, NodePlan, SubgraphPlan

_FX_OPS = {"fn": "call_function", "method": "call_method"}


class _Emitter:
    def __init__(self) -> None:
        self.graph = fx.Graph()
        self.attributes: dict[str, fx.Node] = {}
        self.containers: dict[str, fx.Node] = {}

    def body(self, plan: GraphPlan, prefix: str, inputs: dict[str, Any]) -> Any:
        """Emit `plan`'s nodes with its modules under attribute path `prefix`; return its result.

        Values are fx Nodes, literals, or tuples and dicts of them (an inlined sub-graph's
        tuple or dict return), which `$ref.0` / `$ref.key` index statically.
        """
        values = dict(inputs)
        indexed: dict[Ref, Any] = {}

        def value_of(ref: Ref) -> Any:
            if ref.name == "self":
                return self.attribute(prefix + ".".join(map(str, ref.index)))
            value = values[ref.name]
            for depth in range(1, len(ref.index) + 1):
                key = Ref(ref.name, ref.index[:depth])
                if key not in indexed:
                    item = ref.index[depth - 1]
                    if _holds(value, item):
                        indexed[key] = value[item]
                    else:
                        # A runtime value, or a literal or static one that `item` does not fit
                        # (an input bound to it by the caller): indexed when the forward runs,
                        # as a block's return is. See NOTE: [Static returns] in instances.py.
                        name = "_".join([ref.name, *map(str, key.index)])
                        indexed[key] = self.graph.create_node(
                            "call_function", operator.getitem, (value, item), name=name
                        )
                value = indexed[key]
            return value

        def materialize(value: Any) -> Any:
            if isinstance(value, Ref):
                return value_of(value)
            if isinstance(value, list):
                return [materialize(v) for v in value]
            if isinstance(value, dict):
                return {k: materialize(v) for k, v in value.items()}
            return value

        for step in plan.nodes:
            args = tuple(materialize(list(step.args)))
            kwargs = materialize(step.kwargs)
            if step.kind == "module":
                module = plan.modules[step.target]
                values[step.name] = self.call(
                    module, prefix + step.target, args, kwargs, step, prefix + step.name
                )
            else:
                target: Any = step.function if step.kind == "fn" else step.target
                values[step.name] = self.node(
                    _FX_OPS[step.kind], target, args, kwargs, step, prefix + step.name
                )

        return plan.returned(value_of)

    def call(
        self,
        module: ModulePlan,
        target: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        step: NodePlan,
        qualified: str,
    ) -> Any:
        """Call the module at attribute path `target`: one node, an inlined body, or a chain.

        `qualified` names the call for messages: `h1`, `enc.h1` inside instance `enc`, `h.2`
        for copy 2 of a repeated block.
        """
        if isinstance(module, BlockPlan):
            parent, _, child = target.rpartition(".")
            if not parent:
                return self.node("call_module", target, args, kwargs, step, qualified)
            # See NOTE: [Hoisted containers].
            return self.node("call_method", child, (self.container(parent), *args), kwargs, step, qualified)
        if isinstance(module, SubgraphPlan):
            inputs = dict(zip(module.graph.inputs, args, strict=False))  # checked: len(args) <= inputs
            inputs.update(kwargs)
            return self.body(module.graph, target + ".", inputs)
        value = args[0]
        for index, copy in enumerate(module.copies):
            value = self.call(
                copy, f"{target}.{index}", (value, *args[1:]), kwargs, step, f"{qualified}.{index}"
            )
        return value

    def node(
        self,
        op: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        step: NodePlan,
        qualified: str,
    ) -> fx.Node:
        # fx names become Python locals: `layers.0.attn` -> layers_0_attn.
        node = self.graph.create_node(op, target, args, kwargs, name=qualified.replace(".", "_"))
        node.meta["yaml_node"] = qualified
        node.meta["yaml_path"] = step.path
        return node

    def container(self, target: str) -> fx.Node:
        """The module at attribute path `target`, fetched once; see NOTE: [Hoisted containers]."""
        if target not in self.containers:
            parent, _, child = target.rpartition(".")
            name = target.replace(".", "_")
            self.containers[target] = (
                self.graph.create_node("call_function", getattr, (self.container(parent), child), name=name)
                if parent
                else self.graph.get_attr(target)
            )
        return self.containers[target]

    def attribute(self, target: str) -> fx.Node:
        if target not in self.attributes:
            self.attributes[target] = self.graph.get_attr(target)
        return self.attributes[target]


def _holds(value: Any, item: str | int) -> bool:
    """Whether `value[item]` can be taken while generating: a static tuple, list or dict that has it."""
    if isinstance(value, (tuple, list)):
        return isinstance(item, int) and item < len(value)
    return isinstance(value, dict) and item in value


def generate(plan: GraphPlan) -> fx.Graph:
    """The fx Graph of the top-level `plan`: one placeholder per input, then every call."""
    emitter = _Emitter()
    inputs = {name: emitter.graph.placeholder(name) for name in plan.inputs}
    emitter.graph.output(emitter.body(plan, "", inputs))
    # No `lint()` here: it walks the graph again (3 ms at 1000 nodes) on every build, for
    # invariants that hold by construction; the tests lint every graph they build.
    return emitter.graph
