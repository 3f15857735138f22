"""Instances of sub-graphs and repeated modules, checked once per instance.

A sub-graph (`model.graphs.NAME`) is checked like a block: its instance's arguments
against its declared `args` (strict pydantic, as a block's signature), then its body with
those arguments substituted, as a graph of its own. Its faults are reported at the lines
of the definition, each with a note naming the instance, so a fault is found where it is
written. A repeated module is checked once per copy when its arguments use `${index}`,
and once in all when they do not.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import pydantic

from .errors import ConfigPath, Diagnostic, SpecError, did_you_mean, format_path
from .graph import Ref
from .interpolation import substitute
from .load import validate_section
from .plan import BlockPlan, ModulePlan, RepeatPlan, SubgraphPlan
from .source import SourceMap
from .spec import ARG_TYPES, MAX_REPEAT, GraphSpec, ModuleSpec, SubgraphSpec

if TYPE_CHECKING:
    from .checker import Checker
    from .plan import GraphPlan

# NOTE: [Instance bounds]
# Sub-graphs nest and multiply like YAML aliases: ten graphs that each use the previous one
# ten times are 10**10 instances in thirty lines. Each instance is checked on its own, so the
# check stops past MAX_INSTANCES of them or MAX_NESTING levels (which also keeps the recursive
# check far from the end of the stack). A repeat builds copies of one checked plan, so what a
# plan constructs is counted apart: `planned_modules`, at most MAX_MODULES.
MAX_INSTANCES = 10_000
MAX_NESTING = 32
MAX_MODULES = 100_000


# NOTE: [Argument models]
# A sub-graph's arguments are validated by a pydantic model made from its `args`, and making
# one costs about 0.2 ms, as much as checking the rest of a small model. Equal declarations
# make equal models, so one is shared by every check in the process whose declaration has
# the same names, types and defaults. Only defaults of exact types int, bool, str and None
# are compared, with their type, as `True == 1`: equal such values validate alike (a float,
# where `-0.0 == 0.0`, or a list makes the model anew).
_Declaration = tuple[tuple[str, str, type, Any], ...]
_SCALAR_DEFAULTS = frozenset({int, bool, str, type(None)})


def _args_model(definition: SubgraphSpec) -> type[pydantic.BaseModel]:
    declaration = tuple(
        (name, arg.type, type(arg.default), arg.default) for name, arg in definition.args.items()
    )
    if _SCALAR_DEFAULTS.issuperset(kind for _, _, kind, _ in declaration):
        return _shared_args_model(declaration)
    return _make_args_model(declaration)


@functools.lru_cache(maxsize=256)
def _shared_args_model(declaration: _Declaration) -> type[pydantic.BaseModel]:
    return _make_args_model(declaration)


def _make_args_model(declaration: _Declaration) -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {
        f"a{index}": (ARG_TYPES[kind], pydantic.Field(default=default, alias=name))
        for index, (name, kind, _, default) in enumerate(declaration)
    }
    # validate_default: a default is checked like a given value, where an instance relies on it.
    config = pydantic.ConfigDict(strict=True, extra="forbid", validate_default=True)
    model: type[pydantic.BaseModel] = pydantic.create_model("SubgraphArguments", __config__=config, **fields)
    return model


def _note_since(checker: Checker, before: int, note: str, at: ConfigPath) -> None:
    """Add `note`, located at `at`, to each problem reported since there were `before`."""
    location = checker.source_map.locate(at)[0]
    if location is not None:
        checker.problems[before:] = [
            dataclasses.replace(d, related=(*d.related, (note, location))) for d in checker.problems[before:]
        ]


def check_subgraph(
    checker: Checker,
    spec: ModuleSpec,
    path: ConfigPath,
    check_graph: Callable[[Checker, GraphSpec, ConfigPath], Any],
) -> SubgraphPlan | None:
    """Check one instance of `_type_: graph:NAME` written at `path`."""
    name = spec.subgraph
    assert name is not None  # the caller dispatches on it
    definition = checker.graphs.get(name)
    if definition is None:
        checker.report(
            (*path, "_type_"),
            f"unknown sub-graph {name!r}",
            hint=did_you_mean(name, list(checker.graphs))
            or f"define it under model.graphs (defined: {', '.join(checker.graphs) or 'none'})",
        )
        return None
    if name in checker.active_graphs:
        cycle = " -> ".join([*checker.active_graphs[checker.active_graphs.index(name) :], name])
        checker.report((*path, "_type_"), f"sub-graph {name!r} contains itself: {cycle}")
        return None
    checker.instances += 1
    if checker.instances > MAX_INSTANCES or len(checker.active_graphs) >= MAX_NESTING:
        what = f"more than {MAX_INSTANCES} sub-graph instances"
        if checker.instances <= MAX_INSTANCES:
            what = f"sub-graphs nested more than {MAX_NESTING} deep"
        diagnostic = checker.source_map.diagnostic((*path, "_type_"), f"spec too large: {what}")
        raise SpecError([diagnostic], checker.sources)
    args = _check_arguments(checker, name, definition, spec, path)
    if args is None:
        return None

    definition_path: ConfigPath = ("model", "graphs", name)
    body = definition.model_dump(by_alias=True, exclude={"args"}, exclude_defaults=True)
    resolved, problems = substitute(
        body,
        definition_path,
        {"params": checker.params, "args": args},
        checker.source_map,
        checker.sources,
        tree={"model": {"graphs": {name: body}}},
        deferrable=frozenset({"index"}),
    )
    before = len(checker.problems)
    checker.problems.extend(problems)
    plan = None
    if not problems:
        try:
            graph = validate_section(
                GraphSpec, resolved, definition_path, checker.source_map, checker.sources
            )
        except SpecError as exc:
            checker.problems.extend(exc.diagnostics)
        else:
            checker.active_graphs.append(name)
            try:
                plan = check_graph(checker, graph, definition_path)
            finally:
                checker.active_graphs.pop()
    _note_since(checker, before, f"in the instance {format_path(path)}", path)
    if plan is None or len(checker.problems) > before:
        return None
    return SubgraphPlan(path=path, name=name, graph=plan)


def _check_arguments(
    checker: Checker, name: str, definition: SubgraphSpec, spec: ModuleSpec, path: ConfigPath
) -> dict[str, Any] | None:
    given = spec.kwargs
    before = len(checker.problems)
    for key, value in given.items():
        if isinstance(value, ModuleSpec):
            checker.report(
                (*path, key),
                f"argument {key!r} of sub-graph {name!r} is a block spec",
                hint="sub-graph arguments are plain values; declare the block as a module of the sub-graph",
            )
    checker.argument_names(
        list(given),
        list(definition.args),
        [key for key, arg in definition.args.items() if arg.required],
        f"sub-graph {name!r}",
        path,
        missing_hint=lambda key: f"declared at model.graphs.{name}.args.{key} as {definition.args[key].type}",
    )
    if len(checker.problems) > before:
        return None
    if name not in checker.args_models:
        checker.args_models[name] = _args_model(definition)
    try:
        validated = checker.args_models[name].model_validate(given)
    except pydantic.ValidationError as exc:
        fields = checker.args_models[name].model_fields
        for error in exc.errors():
            # A default's error names the field (`a0`), a given value's the alias (`width`).
            first = str(error["loc"][0])
            key = (fields[first].alias or first) if first in fields else first
            problem = f"{error['msg'].rstrip('.')}, got {error.get('input')!r}"
            if key in given:
                checker.report((*path, *error["loc"]), f"argument {key!r} of sub-graph {name!r}: {problem}")
            else:  # reported at the definition, once however many instances rely on it
                checker.report(
                    ("model", "graphs", name, "args", key, "default"),
                    f"default of argument {key!r} of sub-graph {name!r}: {problem}",
                )
        return None
    return {
        info.alias or field: getattr(validated, field) for field, info in type(validated).model_fields.items()
    }


def check_repeat(
    checker: Checker,
    spec: ModuleSpec,
    path: ConfigPath,
    check_one: Callable[[ModuleSpec, ConfigPath], BlockPlan | SubgraphPlan | None],
) -> RepeatPlan | None:
    """Check `_repeat_: N` written at `path`: N copies of the module, `${index}` per copy."""
    count = spec.repeat_
    count_path = (*path, "_repeat_")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_REPEAT:
        checker.report(
            count_path,
            f"_repeat_ must be a whole number from 1 to {MAX_REPEAT}, got {count!r}",
        )
        return None
    data = spec.model_dump(by_alias=True, exclude={"repeat_"}, exclude_defaults=True)
    per_index = _interpolates(data)
    copies: list[BlockPlan | SubgraphPlan] = []
    for index in range(count if per_index else 1):
        before = len(checker.problems)
        plan = _check_copy(checker, data, path, index, check_one)
        if plan is None:
            if per_index:
                _note_since(checker, before, f"in copy {index}, where ${{index}} is {index}", count_path)
            return None  # the first failing copy is reported; the others would repeat it
        copies.append(plan)
    return RepeatPlan(path=path, copies=tuple(copies if per_index else copies * count))


def _check_copy(
    checker: Checker,
    data: dict[str, Any],
    path: ConfigPath,
    index: int,
    check_one: Callable[[ModuleSpec, ConfigPath], BlockPlan | SubgraphPlan | None],
) -> BlockPlan | SubgraphPlan | None:
    resolved, problems = substitute(
        data, path, {"params": checker.params, "index": index}, checker.source_map, checker.sources
    )
    if problems:
        checker.problems.extend(problems)
        return None
    try:
        copy_spec = validate_section(ModuleSpec, resolved, path, checker.source_map, checker.sources)
    except SpecError as exc:
        checker.problems.extend(exc.diagnostics)
        return None
    return check_one(copy_spec, path)


def _interpolates(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_interpolates(v) for v in value.values())
    if isinstance(value, list):
        return any(_interpolates(v) for v in value)
    return False


# NOTE: [Static returns]
# An inlined sub-graph's tuple or dict return is a Python tuple or dict of values while the
# forward is generated (see codegen.py), so `$node.0` and `$node.key` on it are resolved
# then, not run: an index that does not fit must be found here, or it would surface as an
# IndexError from code generation. A block's return is a runtime value, indexed at run time.
Shape: TypeAlias = "tuple[Shape, ...] | dict[str, Shape] | None"
_STATIC = frozenset({SubgraphPlan, RepeatPlan})  # the plans whose calls have a static shape


def return_shape(plan: ModulePlan | None) -> Shape:
    """The static structure of what calling `plan` returns; None for a runtime value."""
    if isinstance(plan, RepeatPlan):
        plan = plan.copies[-1]
    if not isinstance(plan, SubgraphPlan):
        return None
    graph = plan.graph
    shapes = {
        node.name: return_shape(graph.modules.get(node.target))
        for node in graph.nodes
        if node.kind == "module"
    }

    def of(ref: Ref) -> Shape:
        return _index(shapes.get(ref.name), ref.index)[0]

    return graph.returned(of)


def _index(shape: Shape, index: tuple[str | int, ...]) -> tuple[Shape, int | None]:
    """`shape` indexed by `index`, and the position in `index` of the first item it lacks."""
    for depth, item in enumerate(index):
        if shape is None:
            break
        if isinstance(shape, tuple) and isinstance(item, int) and item < len(shape):
            shape = shape[item]
        elif isinstance(shape, dict) and isinstance(item, str) and item in shape:
            shape = shape[item]
        else:
            return None, depth
    return shape, None


def check_indexes(
    graph: GraphSpec,
    graph_path: ConfigPath,
    modules: Mapping[str, ModulePlan | None],
    uses: Mapping[str, list[Ref]],
    locate: Callable[[str], list[tuple[Ref, ConfigPath]]],
    outputs: tuple[Ref, ...] | dict[str, Ref],
    source_map: SourceMap,
) -> list[Diagnostic]:
    """Each `$node.0` / `$node.key` on a sub-graph's tuple or dict return names one of its items.

    `locate(node)` gives `uses[node]` with each ref's path, for the nodes a report needs.
    """
    if _STATIC.isdisjoint(map(type, modules.values())):
        return []  # the usual graph, of blocks only: nothing it indexes has a static shape
    shapes = {
        name: return_shape(modules.get(node.call.partition(":")[2]))
        for name, node in graph.nodes.items()
        if node.call.startswith("module:")
    }
    items = outputs.items() if isinstance(outputs, dict) else enumerate(outputs)
    refs = [
        *(
            pair
            for node, node_refs in uses.items()
            if _misindexed(node_refs, shapes)
            for pair in locate(node)
        ),
        *((ref, (*graph_path, "outputs", key)) for key, ref in items),
    ]
    problems = []
    for ref, path in refs:
        shape = shapes.get(ref.name)
        depth = _index(shape, ref.index)[1]
        if depth is None:
            continue
        base = Ref(ref.name, ref.index[:depth])
        container = _index(shape, base.index)[0]
        item = ref.index[depth]
        if isinstance(container, dict):
            keys = list(container)
            message = f"'{ref}': '{base}' is a dict with no key {item!r}"
            hint = did_you_mean(str(item), keys) or f"its keys: {', '.join(keys) or 'none'}"
        else:
            size = len(container or ())
            message = f"'{ref}': '{base}' is a tuple of {size}, with no item {item!r}"
            hint = f"index it with 0 to {size - 1}" if size else "it is empty"
        problems.append(source_map.diagnostic(path, message, hint=hint, span=len(str(ref))))
    return problems


def _misindexed(refs: list[Ref], shapes: Mapping[str, Shape]) -> bool:
    """Whether an index of one of `refs` does not fit the static shape it indexes."""
    return any(_index(shapes.get(ref.name), ref.index)[1] is not None for ref in refs)


def planned_modules(plan: GraphPlan) -> int:
    """How many modules building `plan` constructs (blocks passed as arguments aside).

    Counted once per plan object: a repeat's copies share one plan. See NOTE: [Instance bounds].
    """
    counted: dict[int, int] = {}
    return sum(_planned_size(module, counted) for module in plan.modules.values())


def _planned_size(module: ModulePlan, counted: dict[int, int]) -> int:
    """`planned_modules` of one module, memoized in `counted` by plan object."""
    if isinstance(module, BlockPlan):  # most modules: no need to remember what they count
        return 1
    if id(module) not in counted:
        parts: Any = ()
        if isinstance(module, SubgraphPlan):
            parts = module.graph.modules.values()
        elif isinstance(module, RepeatPlan):
            parts = module.copies
        counted[id(module)] = 1 + sum(_planned_size(part, counted) for part in parts)
    return counted[id(module)]
