"""The check stage: turn a validated spec into a `GraphPlan`, or report every fault in it.

It walks each graph (the top one here, sub-graph bodies through `instances.py`), asks a
`Checker` (checker.py) about every module and node, runs the graph checks of `graph.py`,
and checks outputs, `return` and what is never used. A plan
that comes out of here holds resolved targets and validated values only, so building it
runs no check and can fail only inside a user's own constructor.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Collection
from typing import Any

import torch

from .checker import Checker
from .errors import ConfigPath, Diagnostic, SpecError, did_you_mean
from .graph import (
    Ref,
    check_name,
    check_order,
    check_refs,
    dependencies,
    find_cycle,
    parse_refs,
    plain_names,
    refs_in,
    runs_in_order,
    topological_order,
)
from .instances import MAX_MODULES, check_indexes, planned_modules
from .load import LoadedSpec
from .plan import GraphPlan, ModulePlan, NodePlan, SubgraphPlan
from .registry import Registry
from .source import SourceMap
from .spec import GraphSpec, ModuleSpec

GRAPH_PATH: ConfigPath = ("model", "graph")
# Names the generated forward reads as globals (fx's `_custom_builtins`). Inputs become
# forward's parameters, so an input with one of these names would shadow it: `torch.neg(x)`
# would call a method of the input. Nodes and modules are renamed by fx, inputs cannot be.
INPUT_RESERVED = frozenset({"self", "torch", "device", "inf", "nan", "NoneType", "fx_pytree", "pytree"})
NODE_RESERVED = frozenset({"self"})  # `$self.MODULE` reads a module, not a node


# What fx can write into the generated forward as a literal (`torch.float32`, `inf`).
_CODE_LITERALS = (type(None), bool, int, float, str, Ref)
_TORCH_LITERALS = (torch.dtype, torch.device, torch.layout, torch.memory_format)
_LITERALS = _CODE_LITERALS + _TORCH_LITERALS
_PLAIN_LITERALS = frozenset(_CODE_LITERALS)


def _is_code(values: Collection[Any]) -> bool:
    """Whether `_not_code` would find nothing in `values`: a quick test, without paths, that
    keeps the usual node (a few $refs and numbers) from paying for the full walk."""
    if _PLAIN_LITERALS.issuperset(map(type, values)):  # the usual node, tested at C speed
        return True
    stack = list(values)
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is list:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.values())
        elif not isinstance(item, _LITERALS):
            return False
    return True


def _not_code(value: Any, path: ConfigPath, source_map: SourceMap) -> list[Diagnostic]:
    """A node's literal arguments become code in the forward; a spec written in Python could
    hold any object (a tensor, a module), whose repr is no Python."""
    problems: list[Diagnostic] = []
    stack: list[tuple[Any, ConfigPath]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            items = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, (*where, key)) for key, child in items)
        elif not isinstance(item, _LITERALS):
            message = f"a value of type {type(item).__name__} cannot be a node argument"
            hint = "node arguments are $refs and plain data; a tensor belongs in a module"
            problems.append(source_map.diagnostic(where, message, hint=hint))
    return problems


@functools.cache
def reserved_names(top_level: bool) -> frozenset[str]:
    """Module names that would shadow an attribute of the container they become children of:
    its class's, those its `__init__` sets (`training`, `graph_name`, ...), and those it
    declares for `build_model` to set (`fingerprint`)."""
    from .codegen import generate_forward
    from .model import BuiltModel, Subgraph
    from .spec import ModelSpec

    if not top_level:
        return frozenset(dir(Subgraph("", {}))) | {"self"}
    empty = {"schema_version": 1, "model": {"graph": {"inputs": [], "nodes": {}, "outputs": []}}}
    forward = generate_forward(GraphPlan((), {}, (), (), "tuple"))
    sample = BuiltModel({}, forward, ModelSpec.model_validate(empty))
    return frozenset(dir(sample)) | set(BuiltModel.__annotations__) | {"self"}


def check(loaded: LoadedSpec, registry: Registry) -> GraphPlan:
    """Check the spec against the registry; raise one SpecError listing every fault."""
    spec = loaded.spec
    checker = Checker(
        registry, loaded.source_map, loaded.sources, spec.model.graphs, spec.params, _check_graph
    )
    top = spec.model.graph
    plan = (
        _check_graph(checker, top, GRAPH_PATH) if isinstance(top, GraphSpec) else _top_instance(checker, top)
    )
    if checker.problems or plan is None:
        raise SpecError(_unique(checker.problems), loaded.sources)
    if (count := planned_modules(plan)) > MAX_MODULES:  # NOTE: [Instance bounds]
        message = f"spec too large: it builds {count} modules, over the limit of {MAX_MODULES}"
        raise SpecError([loaded.diagnostic((*GRAPH_PATH, "modules"), message)], loaded.sources)
    return dataclasses.replace(plan, warnings=tuple(_unique(checker.warnings)))


def _top_instance(checker: Checker, spec: ModuleSpec) -> GraphPlan | None:
    """`model.graph: {_type_: graph:NAME, ...}`: that sub-graph's modules are the model's."""
    if spec.subgraph is None or spec.repeat_ is not None:
        checker.report(
            (*GRAPH_PATH, "_repeat_" if spec.repeat_ is not None else "_type_"),
            "model.graph must be a graph, or one instance of a sub-graph (_type_: graph:NAME)",
            hint="declare blocks under model.graph.modules",
        )
        return None
    instance = checker.single(spec, GRAPH_PATH)
    if not isinstance(instance, SubgraphPlan):
        return None
    # Checked as a sub-graph's body, its module names were held to Subgraph's attributes;
    # as the model's children they must not shadow the model's.
    reserved = reserved_names(True)
    for name in instance.graph.modules:
        if name in reserved:
            checker.report(
                ("model", "graphs", instance.name, "modules", name),
                f"module name {name!r} is reserved by the built model",
                key=True,
                hint="rename it",
            )
    return None if checker.problems else instance.graph


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Drop repeats: a sub-graph used twice reports a fault of its body once."""
    seen: dict[tuple[ConfigPath, str], Diagnostic] = {}
    for diagnostic in diagnostics:
        seen.setdefault((diagnostic.path, diagnostic.message), diagnostic)
    return list(seen.values())


def _check_graph(checker: Checker, graph: GraphSpec, graph_path: ConfigPath) -> GraphPlan | None:
    source_map = checker.source_map
    problems = checker.problems
    problems_before = len(problems)
    for index, name in enumerate(graph.inputs):
        if (
            p := check_name(name, (*graph_path, "inputs", index), "input", source_map, INPUT_RESERVED)
        ) is not None:
            problems.append(p)
        elif name in graph.inputs[:index]:  # two parameters of forward with one name
            problems.append(
                source_map.diagnostic((*graph_path, "inputs", index), f"input {name!r} is listed twice")
            )
    modules: dict[str, ModulePlan | None] = {}
    reserved = reserved_names(graph_path == GRAPH_PATH)
    names_plain = plain_names(graph.modules, reserved)
    for name, module_spec in graph.modules.items():
        path = (*graph_path, "modules", name)
        if not names_plain and (p := check_name(name, path, "module", source_map, reserved)) is not None:
            problems.append(p)
        modules[name] = checker.module(module_spec, path)

    node_names = list(graph.nodes)
    if not plain_names(node_names, NODE_RESERVED) or not set(graph.inputs).isdisjoint(node_names):
        for name in node_names:
            path = (*graph_path, "nodes", name)
            if (p := check_name(name, path, "node", source_map, NODE_RESERVED)) is not None:
                problems.append(p)
            elif name in graph.inputs:
                problems.append(
                    source_map.diagnostic(path, f"node {name!r} has the name of a graph input", key=True)
                )
    nodes: dict[str, NodePlan | None] = {}
    uses: dict[str, list[Ref]] = {}
    tied: set[str] = set()  # modules read as `$self.MODULE...`
    reading_self: list[str] = []  # nodes that read them
    for name, node in graph.nodes.items():
        path = (*graph_path, "nodes", name)
        before = len(problems)
        refs: list[Ref] = []
        args = parse_refs(node.args, (*path, "args"), source_map, problems, refs)
        kwargs = {}
        if node.kwargs:
            kwargs = parse_refs(node.kwargs, (*path, "kwargs"), source_map, problems, refs)
            # The generated forward passes each keyword by name, so it must be an identifier.
            keywords = (check_name(k, (*path, "kwargs", k), "keyword", source_map) for k in kwargs)
            problems += filter(None, keywords)
        if not (_is_code(args) and (not kwargs or _is_code(kwargs.values()))):
            problems += _not_code({"args": args, "kwargs": kwargs}, path, source_map)
        # A malformed $ref stays a string; binding it would add a second, misleading error.
        checker.bind_arguments = len(problems) == before
        # NOTE: [Ref order] Refs are used last written first (the order of `refs_in`): the
        # cycle a report follows and the order of reference errors depend on it, and
        # `_located` finds the path of each ref by `refs_in`.
        refs.reverse()
        uses[name] = refs
        for ref in refs:  # a loop, not a comprehension: most nodes have a ref or two, none $self
            if ref.name == "self":
                located = _located(graph, graph_path, name, source_map)
                problems += _check_self_refs(located, graph, source_map, tied)
                uses[name] = [ref for ref in refs if ref.name != "self"]
                reading_self.append(name)
                break
        nodes[name] = checker.node(name, path, node.call, tuple(args), kwargs, graph, modules)

    def locate(user: str) -> list[tuple[Ref, ConfigPath]]:  # `uses[user]`, with paths
        return [
            (ref, where) for ref, where in _located(graph, graph_path, user, source_map) if ref.name != "self"
        ]

    written = node_names if graph.order is None else graph.order
    if runs_in_order(written, uses, graph.inputs):  # the usual case: refs known, `order` (or none) right
        order = list(written)
    else:
        problems.extend(check_refs(uses, [*graph.inputs, *node_names], source_map, locate))
        order = _repaired_order(graph, graph_path, uses, node_names, source_map, problems)

    outputs = _check_outputs(checker, graph, graph_path, [*graph.inputs, *node_names])
    if outputs is not None:
        problems.extend(check_indexes(graph, graph_path, modules, uses, locate, outputs, source_map))
    if len(problems) > problems_before or outputs is None:
        return None
    planned = typing.cast("tuple[NodePlan, ...]", tuple([nodes[name] for name in order]))
    checker.warnings.extend(_unused(graph, graph_path, planned, uses, outputs, tied, source_map))
    return GraphPlan(
        inputs=tuple(graph.inputs),
        modules={name: plan for name, plan in modules.items() if plan is not None},
        nodes=planned,
        outputs=outputs,
        return_kind=graph.return_,
        reading_self=tuple([typing.cast("NodePlan", nodes[name]) for name in reading_self]),
    )


def _located(
    graph: GraphSpec, graph_path: ConfigPath, name: str, source_map: SourceMap
) -> list[tuple[Ref, ConfigPath]]:
    """The refs of node `name`, in the order of NOTE: [Ref order], each with its path: found
    again, by `refs_in`, for the few nodes a report needs them for."""
    node = graph.nodes[name]
    path = (*graph_path, "nodes", name)
    arguments = {
        "args": parse_refs(node.args, (*path, "args"), source_map, []),
        "kwargs": parse_refs(node.kwargs, (*path, "kwargs"), source_map, []) if node.kwargs else {},
    }
    return [(ref, (*path, *where)) for ref, where in refs_in(arguments)]


def _check_self_refs(
    refs: list[tuple[Ref, ConfigPath]], graph: GraphSpec, source_map: SourceMap, tied: set[str]
) -> list[Diagnostic]:
    """`$self.emb.weight` reads an attribute of one of this graph's modules (tied weights).

    Checks the `$self` refs among a node's `refs` (with their paths), and adds the modules
    they read to `tied`.
    """
    problems = []
    for ref, path in refs:
        if ref.name != "self":
            continue
        module = str(ref.index[0]) if ref.index else ""
        if module not in graph.modules:
            problems.append(
                source_map.diagnostic(
                    path,
                    f"'{ref}' names no module of this graph",
                    hint=did_you_mean(module, list(graph.modules))
                    or "write $self.MODULE or $self.MODULE.ATTRIBUTE, e.g. $self.embed.weight",
                )
            )
        if ref.index:
            tied.add(module)
    return problems


def _repaired_order(
    graph: GraphSpec,
    graph_path: ConfigPath,
    uses: dict[str, list[Ref]],
    node_names: list[str],
    source_map: SourceMap,
    problems: list[Diagnostic],
) -> list[str]:
    """The order to run a graph that `runs_in_order` refused: a cycle or a wrong `order` is
    reported; nodes merely written out of order are sorted. (A graph refused only for an
    unknown ref keeps its written order: that order runs, so each step below finds it.)"""
    deps = dependencies(uses, node_names)
    if (cycle := find_cycle(deps, node_names)) is not None:
        problems.append(
            source_map.diagnostic(
                (*graph_path, "nodes", cycle[0]),
                "dependency cycle: " + " -> ".join(cycle),
                key=True,
                hint="a node cannot use its own result, directly or through other nodes",
            )
        )
        return node_names
    if graph.order is not None:
        problems.extend(check_order(graph.order, deps, node_names, graph_path, source_map))
        return list(graph.order)
    return topological_order(deps, node_names)


def _check_outputs(
    checker: Checker, graph: GraphSpec, graph_path: ConfigPath, known: list[str]
) -> tuple[Ref, ...] | dict[str, Ref] | None:
    source_map = checker.source_map
    path = (*graph_path, "outputs")
    items = list(graph.outputs.items()) if isinstance(graph.outputs, dict) else list(enumerate(graph.outputs))
    refs: dict[str | int, Ref] = {}
    before = len(checker.problems)
    for key, written in items:
        ref = parse_refs(written, (*path, key), source_map, checker.problems)
        if not isinstance(ref, Ref):
            checker.report((*path, key), f"output {written!r} is not a reference", hint="write $name")
        else:
            refs[key] = ref
    located = [(r, (*path, k)) for k, r in refs.items()]
    checker.problems.extend(
        check_refs({"outputs": list(refs.values())}, known, source_map, lambda _: located)
    )
    return_path = (*graph_path, "return")
    count = len(items)
    if graph.return_ == "single" and (isinstance(graph.outputs, dict) or count != 1):
        checker.report(
            return_path,
            f"return: single needs exactly one output, got {count}",
            hint="use return: tuple (or dict for named outputs)",
        )
    elif graph.return_ == "tuple" and isinstance(graph.outputs, dict):
        checker.report(return_path, "return: tuple needs outputs as a list", hint="use return: dict")
    elif graph.return_ == "dict" and not isinstance(graph.outputs, dict):
        checker.report(
            return_path, "return: dict needs outputs as a mapping of name to $ref", hint="use return: tuple"
        )
    if len(checker.problems) > before:
        return None
    if isinstance(graph.outputs, dict):
        return {str(k): r for k, r in refs.items()}
    return tuple(refs.values())


def _unused(
    graph: GraphSpec,
    graph_path: ConfigPath,
    nodes: tuple[NodePlan, ...],
    uses: dict[str, list[Ref]],
    outputs: tuple[Ref, ...] | dict[str, Ref],
    tied: set[str],
    source_map: SourceMap,
) -> list[Diagnostic]:
    """Warnings for the modules no node calls and the nodes whose results nothing uses."""
    called = {node.target for node in nodes if node.kind == "module"}
    called |= tied
    used = {ref.name for refs in uses.values() for ref in refs}
    used |= {ref.name for ref in (outputs.values() if isinstance(outputs, dict) else outputs)}
    warnings = [
        source_map.diagnostic(
            (*graph_path, "modules", name),
            f"module {name!r} is never called (it is still built and kept in state_dict)",
            key=True,
            severity="warning",
        )
        for name in graph.modules
        if name not in called
    ]
    warnings += [
        source_map.diagnostic(
            (*graph_path, "nodes", name),
            f"the result of node {name!r} is never used",
            key=True,
            severity="warning",
        )
        for name in graph.nodes
        if name not in used
    ]
    return warnings
