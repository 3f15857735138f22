"""Plan -> the forward pass as straight-line code: Python source, or a torch.fx Graph.

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

NOTE: [Source first, fx on demand]
A build needs the forward's source, not an fx Graph: at 1000 nodes, creating the fx Nodes
took 6 ms and fx's `python_code` 6 ms more, as much again as compiling the source, in a
build whose whole overhead budget is about 24 ms (issue 5). So one walk of the plan
(`_Emitter`) drives either of two writers: `_SourceWriter` writes the forward's lines
directly, in fx's own format and names (what `model.code` shows), and `_GraphWriter` creates
the same calls as fx Nodes, for `model.graph`, built only when someone reads it. Both see
the same calls in the same order, so they cannot disagree on what the forward does; the
tests check that the code compiled from either computes the same result.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import fx

# fx's private helpers, so that our source reads exactly like fx's: the same unique names
# (never shadowing a builtin, a keyword or `torch`), attribute paths and function names.
from torch.fx.graph import _format_target, _illegal_names, _Namespace
from torch.fx.graph_module import _forward_from_src
from torch.fx.node import _get_qualified_name

from .errors import ConfigPath
from .graph import Ref
from .plan import BlockPlan, GraphPlan, ModulePlan, SubgraphPlan

_FX_OPS = {"fn": "call_function", "method": "call_method"}


class _Writer(Protocol):
    """Where `_Emitter` writes the forward: fx Nodes, or lines of Python.

    A call's `name` is dotted (`layers.0.h1`; its local is `layers_0_h1`). For a YAML node's
    call it names the node for messages, and `path` is where the spec writes that node; the
    calls the emitter adds (a container's lookup, an index) have no path.
    """

    def placeholder(self, name: str) -> Any: ...

    def get_attr(self, target: str) -> Any: ...

    def call(
        self,
        op: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        path: ConfigPath | None,
    ) -> Any: ...

    def output(self, value: Any) -> None: ...


class _Emitter:
    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.attributes: dict[str, Any] = {}
        self.containers: dict[str, Any] = {}

    def body(self, plan: GraphPlan, prefix: str, inputs: dict[str, Any]) -> Any:
        """Emit `plan`'s nodes with its modules under attribute path `prefix`; return its result."""
        scope = _Scope(self, prefix, dict(inputs))
        for step in plan.nodes:
            args = tuple(map(scope.materialize, step.args))
            kwargs = {key: scope.materialize(arg) for key, arg in step.kwargs.items()} if step.kwargs else {}
            if step.kind == "module":
                module = plan.modules[step.target]
                scope.values[step.name] = self.call(
                    module, prefix + step.target, args, kwargs, prefix + step.name, step.path
                )
            else:
                target: Any = step.function if step.kind == "fn" else step.target
                scope.values[step.name] = self.writer.call(
                    _FX_OPS[step.kind], target, args, kwargs, prefix + step.name, step.path
                )
        return plan.returned(scope.value_of)

    def call(
        self,
        module: ModulePlan,
        target: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        qualified: str,
        path: ConfigPath,
    ) -> Any:
        """Call the module at attribute path `target`: one node, an inlined body, or a chain.

        `qualified` names the call for messages: `h1`, `enc.h1` inside instance `enc`, `h.2`
        for copy 2 of a repeated block; `path` is the YAML node that calls it.
        """
        if isinstance(module, BlockPlan):
            parent, _, child = target.rpartition(".")
            if not parent:
                return self.writer.call("call_module", target, args, kwargs, qualified, path)
            # See NOTE: [Hoisted containers].
            container = self.container(parent)
            return self.writer.call("call_method", child, (container, *args), kwargs, qualified, path)
        if isinstance(module, SubgraphPlan):
            inputs = dict(zip(module.graph.inputs, args, strict=False))  # checked: len(args) <= inputs
            inputs.update(kwargs)
            return self.body(module.graph, target + ".", inputs)
        value = args[0]
        for index, copy in enumerate(module.copies):
            value = self.call(
                copy, f"{target}.{index}", (value, *args[1:]), kwargs, f"{qualified}.{index}", path
            )
        return value

    def container(self, target: str) -> Any:
        """The module at attribute path `target`, fetched once; see NOTE: [Hoisted containers]."""
        if target not in self.containers:
            parent, _, child = target.rpartition(".")
            self.containers[target] = (
                self.writer.call("call_function", getattr, (self.container(parent), child), {}, target, None)
                if parent
                else self.writer.get_attr(target)
            )
        return self.containers[target]

    def attribute(self, target: str) -> Any:
        if target not in self.attributes:
            self.attributes[target] = self.writer.get_attr(target)
        return self.attributes[target]


class _Scope:
    """The values of one graph body being emitted, by name: the writer's values, literals, or
    tuples and dicts of them (an inlined sub-graph's tuple or dict return), which `$ref.0` /
    `$ref.key` index statically.

    A class rather than closures in `body`: a recursive closure is a reference cycle, which
    kept every emitted value alive until the next garbage collection.
    """

    def __init__(self, emitter: _Emitter, prefix: str, values: dict[str, Any]) -> None:
        self.emitter = emitter
        self.prefix = prefix
        self.values = values
        self.indexed: dict[Ref, Any] = {}

    def value_of(self, ref: Ref) -> Any:
        if ref.name == "self":
            return self.emitter.attribute(self.prefix + ".".join(map(str, ref.index)))
        value = self.values[ref.name]
        if not ref.index:
            return value  # the usual `$name`
        for depth in range(1, len(ref.index) + 1):
            key = Ref(ref.name, ref.index[:depth])
            if key not in self.indexed:
                item = ref.index[depth - 1]
                if _holds(value, item):
                    self.indexed[key] = value[item]
                else:
                    # A runtime value, or a literal or static one that `item` does not fit
                    # (an input bound to it by the caller): indexed when the forward runs,
                    # as a block's return is. See NOTE: [Static returns] in instances.py.
                    name = "_".join([ref.name, *map(str, key.index)])
                    self.indexed[key] = self.emitter.writer.call(
                        "call_function", operator.getitem, (value, item), {}, name, None
                    )
            value = self.indexed[key]
        return value

    def materialize(self, value: Any) -> Any:
        if isinstance(value, Ref):
            return self.value_of(value)
        if isinstance(value, list):
            return [self.materialize(v) for v in value]
        if isinstance(value, dict):
            return {k: self.materialize(v) for k, v in value.items()}
        return value


def _holds(value: Any, item: str | int) -> bool:
    """Whether `value[item]` can be taken while generating: a static tuple, list or dict that has it."""
    if isinstance(value, (tuple, list)):
        return isinstance(item, int) and item < len(value)
    return isinstance(value, dict) and item in value


def _emit(plan: GraphPlan, writer: _Writer) -> None:
    """Write the top-level `plan` to `writer`: one placeholder per input, every call, the output."""
    emitter = _Emitter(writer)
    inputs = {name: writer.placeholder(name) for name in plan.inputs}
    writer.output(emitter.body(plan, "", inputs))


# ---- fx Graph -----------------------------------------------------------------------------------


class _GraphWriter:
    def __init__(self) -> None:
        self.graph = fx.Graph()

    def placeholder(self, name: str) -> fx.Node:
        return self.graph.placeholder(name)

    def get_attr(self, target: str) -> fx.Node:
        return self.graph.get_attr(target)

    def call(
        self,
        op: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        path: ConfigPath | None,
    ) -> fx.Node:
        node = self.graph.create_node(op, target, args, kwargs, name=name.replace(".", "_"))
        if path is not None:
            node.meta["yaml_node"] = name
            node.meta["yaml_path"] = path
        return node

    def output(self, value: Any) -> None:
        self.graph.output(value)


def generate_graph(plan: GraphPlan) -> fx.Graph:
    """The forward of the top-level `plan` as an fx Graph; see NOTE: [Source first, fx on demand]."""
    writer = _GraphWriter()
    _emit(plan, writer)
    # No `lint()` here: it walks the graph again (3 ms at 1000 nodes), for invariants that
    # hold by construction; the tests lint every graph they build.
    return writer.graph


# ---- Python source ------------------------------------------------------------------------------


class _Local:
    """A local variable of the generated forward, and the last statement that reads it (an
    index into `_SourceWriter.statements`), which releases it."""

    __slots__ = ("last_read", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.last_read: int | None = None


@dataclass(frozen=True)
class Source:
    """The generated forward: `text` defines `forward` when run with `globals`.

    `nodes` maps a line of `text` (numbered from 1) to the YAML node it calls (`enc.h1`), and
    `paths` each of those nodes to where the spec writes it.
    """

    text: str
    globals: dict[str, Any]
    nodes: dict[int, str]
    paths: dict[str, ConfigPath]


# The names fx's code may use without defining them (its `_custom_builtins`).
_BUILTINS: dict[str, Any] = {
    "inf": math.inf,
    "nan": math.nan,
    "NoneType": type(None),
    "torch": torch,
    "device": torch.device,
}


class _Names(_Namespace):
    """fx's namespace, with a shortcut for a name that fx keeps as it is.

    NOTE: [Kept names]
    fx's `create_name` runs a regular expression and six set and dict operations for every
    name: 0.43 us a name, 0.4 ms of a 1000-node forward. A name that is an unused ASCII
    identifier, neither a keyword nor a builtin (`_illegal_names`), and without fx's
    `_<digits>` suffix is one that fx keeps unchanged, and then fx only adds it to its used
    names (its `_base_count` entry is rewritten with the value just read from it). So does
    this shortcut, in 0.16 us; any other name, or one bound to an object (a global), takes
    fx's own path. The tests compare both on the names fx changes.
    """

    def create_name(self, candidate: str, obj: object | None) -> str:
        if (
            obj is None
            and candidate not in self._used_names
            and candidate not in _illegal_names
            and candidate.isascii()
            and candidate.isidentifier()
            # Without a `_<digits>` suffix (`n5`, not `n_5`): the digits that end it, if
            # any, follow a letter.
            and candidate.rstrip("0123456789")[-1] != "_"
        ):
            self._used_names.add(candidate)
            return candidate
        return super().create_name(candidate, obj)


class _SourceWriter:
    """Writes the forward as fx would print it: one statement per call, locals released after
    their last use (`h1 = None`), so intermediates are freed as early as in fx's code."""

    def __init__(self) -> None:
        self.namespace = _Names()
        self.globals: dict[str, Any] = dict(_BUILTINS)
        self.inputs: list[str] = []
        # Each statement: the local it defines (None: nothing to release after it), its text,
        # the locals it reads, and the YAML node it calls (or None).
        self.statements: list[tuple[_Local | None, str, list[_Local], str | None]] = []
        self.paths: dict[str, ConfigPath] = {}
        self.reads: list[_Local] = []

    def placeholder(self, name: str) -> _Local:
        local = _Local(self.namespace.create_name(name, None))
        # The signature keeps the input's own name, so `model(input=x)` works; a name the
        # namespace changed (a builtin's, `input`) is bound to its local first, as fx does,
        # and never released on its own (no local defined: fx releases no input).
        self.inputs.append(name)
        if local.name != name:
            self.statements.append((None, f"{local.name} = {name}", [], None))
        return local

    def get_attr(self, target: str) -> _Local:
        local = _Local(self.namespace.create_name(target.replace(".", "_"), None))
        self.statements.append((local, f"{local.name} = {_format_target('self', target)}", [], None))
        return local

    def call(
        self,
        op: str,
        target: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        path: ConfigPath | None,
    ) -> _Local:
        self.reads = []
        if op == "call_module":
            # A top-level module (NOTE: [Hoisted containers]), whose name the check made an
            # identifier: fx's `_format_target` would write the same.
            expression = f"self.{target}({self.arguments(args, kwargs)})"
        elif op == "call_method":
            expression = f"{_format_target(self.value(args[0]), target)}({self.arguments(args[1:], kwargs)})"
        elif target is operator.getitem:
            expression = f"{self.value(args[0])}[{self.value(args[1])}]"
        elif target is getattr and isinstance(args[1], str) and args[1].isidentifier():
            expression = f"{self.value(args[0])}.{args[1]}"
        else:
            expression = f"{self.function(target)}({self.arguments(args, kwargs)})"
        local = _Local(self.namespace.create_name(name.replace(".", "_"), None))
        if path is not None:
            self.paths[name] = path
        node = name if path is not None else None
        self.statements.append((local, f"{local.name} = {expression}", self.reads, node))
        return local

    def output(self, value: Any) -> None:
        self.reads = []
        self.statements.append((None, f"return {self.value(value)}", self.reads, None))

    def function(self, target: Callable[..., Any]) -> str:
        """How the forward names `target`: `torch.add` for torch's own, else a global of its own."""
        try:
            qualified = _get_qualified_name(target)
        except RuntimeError:  # fx cannot name a lambda without source
            qualified = getattr(target, "__qualname__", "fn")
        if qualified.startswith("torch.") and _resolve(qualified) is target:
            return qualified
        name = self.namespace.create_name(qualified, target)
        self.globals[name] = target
        return name

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if len(args) == 1 and not kwargs:
            return self.value(args[0])  # the usual call, `self.fc(h)`: no list to join
        values = list(map(self.value, args))
        if kwargs:
            values += [f"{key} = {self.value(value)}" for key, value in kwargs.items()]
        return ", ".join(values)

    def value(self, value: Any) -> str:
        """`value` as an expression; a local it reads is recorded in `self.reads`."""
        if type(value) is _Local:
            value.last_read = len(self.statements)  # the statement being written
            self.reads.append(value)
            return value.name
        if isinstance(value, tuple):
            items = [self.value(v) for v in value]
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        if isinstance(value, list):
            return f"[{', '.join(self.value(v) for v in value)}]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{key!r}: {self.value(v)}" for key, v in value.items()) + "}"
        if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
            return repr(value)  # `inf`, `nan`, `torch` and `device` are globals, as in fx's code
        # Anything else a spec built in Python may hold (a torch.dtype, say) is passed as a
        # global of its own, so the source never depends on a repr being valid Python.
        name = self.namespace.create_name(type(value).__name__.lower(), value)
        self.globals[name] = value
        return name

    def source(self) -> Source:
        """The whole function, each local set to None after the statement that reads it last."""
        lines = [f"def forward(self, {', '.join(self.inputs)}):" if self.inputs else "def forward(self):"]
        nodes: dict[int, str] = {}
        for index, (defined, text, reads, node) in enumerate(self.statements):
            if defined is not None:
                released = []
                for local in reads:  # a loop: a comprehension's frame costs more, per statement
                    if local.last_read == index:
                        released.append(local.name)
                if len(released) > 1:
                    released = list(dict.fromkeys(released))  # a local read twice: `add(h, h)`
                if defined.last_read is None:
                    released.append(defined.name)  # never read: released at once, as fx does
                if released:
                    text = f"{text};  {' = '.join(released)} = None"
            lines.append(text)
            if node is not None:
                nodes[len(lines)] = node
        return Source("\n    ".join(lines) + "\n", self.globals, nodes, self.paths)


def _resolve(qualified: str) -> Any:
    value: Any = torch
    for part in qualified.split(".")[1:]:
        value = getattr(value, part, None)
    return value


def generate_source(plan: GraphPlan) -> Source:
    """The forward of the top-level `plan` as Python source; see NOTE: [Source first, fx on demand]."""
    writer = _SourceWriter()
    _emit(plan, writer)
    return writer.source()


@dataclass(frozen=True)
class Forward:
    """The forward of a plan: its `source`, and the `function` compiled from it."""

    source: Source
    function: Callable[..., Any]


def generate_forward(plan: GraphPlan) -> Forward:
    """`generate_source(plan)`, compiled as fx compiles a GraphModule's code (so that
    tracebacks show its lines)."""
    source = generate_source(plan)
    return Forward(source, _forward_from_src(source.text, source.globals))
