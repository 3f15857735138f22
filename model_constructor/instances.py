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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pydantic

from .errors import ConfigPath, Diagnostic, SpecError, closest, did_you_mean, format_path
from .interpolation import substitute
from .load import validate_section
from .plan import BlockPlan, RepeatPlan, SubgraphPlan
from .spec import ARG_TYPES, GraphSpec, ModuleSpec, SubgraphSpec

if TYPE_CHECKING:
    from .check import _Checker

MAX_REPEAT = 10_000


def _args_model(definition: SubgraphSpec) -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {
        f"a{index}": (ARG_TYPES[arg.type], pydantic.Field(default=arg.default, alias=name))
        for index, (name, arg) in enumerate(definition.args.items())
    }
    config = pydantic.ConfigDict(strict=True, extra="forbid")
    model: type[pydantic.BaseModel] = pydantic.create_model("SubgraphArguments", __config__=config, **fields)
    return model


def _with_instance_note(diagnostic: Diagnostic, instance: ConfigPath, checker: _Checker) -> Diagnostic:
    location = checker.source_map.locate(instance)[0]
    if location is None:
        return diagnostic
    note = (f"in the instance {format_path(instance)}", location)
    return dataclasses.replace(diagnostic, related=(*diagnostic.related, note))


def check_subgraph(
    checker: _Checker,
    spec: ModuleSpec,
    path: ConfigPath,
    check_graph: Callable[[_Checker, GraphSpec, ConfigPath], Any],
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
    checker.problems[before:] = [_with_instance_note(d, path, checker) for d in checker.problems[before:]]
    if plan is None or len(checker.problems) > before:
        return None
    return SubgraphPlan(path=path, name=name, graph=plan)


def _check_arguments(
    checker: _Checker, name: str, definition: SubgraphSpec, spec: ModuleSpec, path: ConfigPath
) -> dict[str, Any] | None:
    given = spec.kwargs
    before = len(checker.problems)
    declared = list(definition.args)
    for key, value in given.items():
        if isinstance(value, ModuleSpec):
            checker.report(
                (*path, key),
                f"argument {key!r} of sub-graph {name!r} is a block spec",
                hint="sub-graph arguments are plain values; declare the block as a module of the sub-graph",
            )
        elif key not in definition.args:
            match = closest(key, declared)
            checker.report(
                (*path, key),
                f"unknown argument {key!r} for sub-graph {name!r}",
                key=True,
                hint=f"did you mean {match!r}?"
                if match
                else f"its arguments: {', '.join(declared) or 'none'}",
            )
    for key, arg in definition.args.items():
        if arg.required and key not in given:
            checker.report(
                path,
                f"missing argument {key!r} for sub-graph {name!r}",
                hint=f"declared at model.graphs.{name}.args.{key} as {arg.type}",
            )
    if len(checker.problems) > before:
        return None
    if name not in checker.args_models:
        checker.args_models[name] = _args_model(definition)
    try:
        validated = checker.args_models[name].model_validate(given)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0])
            checker.report(
                (*path, *error["loc"]),
                f"argument {key!r} of sub-graph {name!r}: {error['msg'].rstrip('.')}, "
                f"got {error.get('input')!r}",
            )
        return None
    return {
        info.alias or field: getattr(validated, field) for field, info in type(validated).model_fields.items()
    }


def check_repeat(
    checker: _Checker,
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
        plan = check_one(copy_spec, path)
        if plan is None:
            return None  # the first failing copy is reported; the others would repeat it
        copies.append(plan)
    return RepeatPlan(path=path, copies=tuple(copies if per_index else copies * count))


def _interpolates(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_interpolates(v) for v in value.values())
    if isinstance(value, list):
        return any(_interpolates(v) for v in value)
    return False
