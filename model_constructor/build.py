"""`build_model` and `load_spec`: the whole pipeline, from a spec to a model.

load -> interpolate -> validate -> imports -> check run first and construct nothing;
only a spec that passes all of them reaches `_construct`, where the remaining ways to
fail are a block's own constructor raising, and a `$self.MODULE.ATTRIBUTE` naming an
attribute that the built module does not have (only an instance can tell).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gc
import inspect
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from .check import check
from .codegen import generate_forward
from .errors import Diagnostic, SpecError, SpecWarning, add_note, did_you_mean, format_path
from .graph import Ref, refs_in
from .imports import effective_prefixes, run_imports
from .load import LoadedSpec, SpecSource, load
from .model import BuiltModel, Subgraph
from .plan import BlockPlan, GraphPlan, ModulePlan, RepeatPlan, SubgraphPlan
from .registry import Registry
from .signatures import FACTORY_KWARGS
from .spec import ModelSpec

# NOTE: [GC during a build]
# A build allocates a few hundred thousand container objects (pydantic models, plan nodes,
# the modules), and frees nearly all but the modules and the spec by reference counting.
# With the cyclic collector running, each 700 allocations start a young collection and every
# few hundred thousand a full one, which walks every object in the process: torch alone holds
# about 280,000. Measured on a 1000-module spec, collections took half of `build_model`'s
# time. So the pipeline runs with the collector paused, and re-enables it (if it was on) only
# once the pipeline's own frames are gone (the functions below are decorated, not bodies of
# a `with`): else the loaded spec, its SourceMap and the parsed tree, still referenced by a
# local, were walked by the next collection for nothing (6 to 8 ms on a 2000-line file).
# Module construction is the exception: see NOTE: [Collecting during construction].
# Whether the collector was paused by the build running in this thread (or task).
_paused_here: contextvars.ContextVar[bool] = contextvars.ContextVar("_paused_here", default=False)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    if not gc.isenabled():
        yield
        return
    gc.disable()
    token = _paused_here.set(True)
    try:
        yield
    finally:
        _paused_here.reset(token)
        gc.enable()


# NOTE: [Collecting during construction]
# What construction allocates (about 17 tracked objects per nn.Linear) survives the build.
# Left to the collection that follows the resumed collector, it was walked there once, cache
# cold, together with the spec the model keeps: 3 to 4 ms at 1000 modules. So construction
# runs with the collector on, as hand-written code does, and `gc.freeze()` first sets aside
# everything older (O(1)), so those young collections walk only what construction made, while
# it is still in cache: measured 2.3 to 2.7 ms less per 1000-module build. `gc.unfreeze()`
# then puts what was set aside in the oldest generation, so a cycle among the application's
# young objects of the moment waits for the next full collection. It would also thaw what the
# application froze itself (before forking workers, say): the collector stays paused during
# construction when anything is frozen, and when it was off to begin with.
@contextlib.contextmanager
def _collecting_new_objects() -> Iterator[None]:
    if not _paused_here.get() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.disable()
        gc.unfreeze()


def _checked(
    source: SpecSource,
    allowed_import_prefixes: Sequence[str] | None,
    registry: Registry | None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[LoadedSpec, GraphPlan, list[str], Registry]:
    loaded = load(source, overrides)
    prefixes = effective_prefixes(loaded, allowed_import_prefixes)
    build_registry = Registry.with_builtins()
    if registry is not None:
        build_registry.update(registry)
    run_imports(loaded, build_registry, prefixes)
    return loaded, check(loaded, build_registry), prefixes, build_registry


@_collector_paused()  # NOTE: [GC during a build]
def plan_for(
    spec: ModelSpec,
    *,
    allowed_import_prefixes: Sequence[str] | None = None,
    registry: Registry | None = None,
) -> GraphPlan:
    """The checked plan of an already-validated spec (used to regenerate a model's forward)."""
    return _checked(spec, allowed_import_prefixes, registry)[1]


@_collector_paused()  # NOTE: [GC during a build]
def load_spec(
    source: SpecSource,
    *,
    allowed_import_prefixes: Sequence[str] | None = None,
    registry: Registry | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ModelSpec:
    """Load and fully check a spec without constructing any module; return the resolved spec.

    Runs every check `build_model` runs, so it imports the spec's (allowed) `imports`.
    `overrides` are as for `build_model`. Raises SpecError listing every fault found.
    """
    loaded, plan, _, _ = _checked(source, allowed_import_prefixes, registry, overrides)
    _warn(plan.warnings, loaded)
    return loaded.spec


@_collector_paused()  # NOTE: [GC during a build]
def build_model(
    source: SpecSource,
    *,
    allowed_import_prefixes: Sequence[str] | None = None,
    registry: Registry | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> BuiltModel:
    """Build the model a spec describes.

    `source` is a path to a YAML file, the same data as a mapping, or a `ModelSpec`.
    `allowed_import_prefixes`, when given, is the trust boundary: the file's own
    `settings.allowed_import_prefixes` may narrow it but not widen it. `registry` adds
    blocks and functions registered in Python to the built-ins for this build only.
    `device` and `dtype` go to every constructor that accepts them; `device="meta"` builds
    without allocating parameter memory. `overrides` such as `{"params.width": 256}` replace
    values of the spec before interpolation, so values computed from them follow; a path the
    spec does not have is an error (prefix it with `+` to add a key).

    Raises SpecError, listing every fault in the spec, before constructing anything.
    """
    loaded, plan, prefixes, build_registry = _checked(source, allowed_import_prefixes, registry, overrides)
    _warn(plan.warnings, loaded)
    factory = {
        k: v
        for k, v in (("device", torch.device(device) if device is not None else None), ("dtype", dtype))
        if v is not None
    }
    # NOTE: [Forward before modules]
    # The forward depends on the plan alone. Written and compiled right after the check,
    # while the plan is still in the processor's caches rather than after the constructors
    # have run, it measured 0.7 to 1.3 ms less per 1000-node build (interleaved, both orders).
    forward = generate_forward(plan)
    with _collecting_new_objects():  # NOTE: [Collecting during construction]
        modules = {name: _construct_module(module, factory, loaded) for name, module in plan.modules.items()}
    if missing := _missing_attributes(plan, modules, loaded):
        raise SpecError(list(dict.fromkeys(missing)), loaded.sources)
    return BuiltModel(
        modules,
        forward,
        loaded.spec,
        import_prefixes=prefixes,
        registry=registry.copy() if registry is not None else None,
        build_registry=build_registry,
        source_map=loaded.source_map,
    )


def _missing_attributes(
    plan: GraphPlan, modules: Mapping[str, torch.nn.Module], loaded: LoadedSpec
) -> list[Diagnostic]:
    """Each `$self.MODULE.ATTRIBUTE` of `plan` (and of its sub-graph instances) that `modules` lack."""
    problems = []
    for node in plan.reading_self:
        for ref, where in refs_in({"args": list(node.args), "kwargs": node.kwargs}):
            if ref.name == "self" and (found := _missing_attribute(ref, modules)) is not None:
                message, hint = found
                problems.append(
                    loaded.diagnostic((*node.path, *where), message, hint=hint, span=len(str(ref)))
                )
    for name, module in plan.modules.items():
        if isinstance(module, BlockPlan):
            continue  # the usual module: no graph of its own
        built = modules[name]
        instances: list[tuple[ModulePlan, torch.nn.Module]] = [(module, built)]
        if isinstance(module, RepeatPlan):
            instances = list(zip(module.copies, built.children(), strict=True))
        for copy, instance in instances:
            if isinstance(copy, SubgraphPlan):
                problems += _missing_attributes(copy.graph, dict(instance.named_children()), loaded)
    return problems


def _missing_attribute(ref: Ref, modules: Mapping[str, torch.nn.Module]) -> tuple[str, str | None] | None:
    value: Any = modules[str(ref.index[0])]  # checked: a module of the graph
    for depth, part in enumerate(map(str, ref.index[1:]), start=1):
        if not hasattr(value, part):
            owner = ".".join(map(str, ref.index[:depth]))
            names = [n for n in dir(value) if not n.startswith("_")]
            message = f"'{ref}': {owner} ({type(value).__name__}) has no attribute {part!r}"
            return message, did_you_mean(part, names)
        value = getattr(value, part)
    return None


def _warn(diagnostics: Sequence[Diagnostic], loaded: LoadedSpec) -> None:
    for diagnostic in diagnostics:
        # At the line that called build_model or load_spec: past this function, the public
        # one, and the wrapper of `_collector_paused`.
        warnings.warn(SpecWarning(diagnostic.render(loaded.sources), diagnostic), stacklevel=4)


@functools.cache
def _accepted_factory_kwargs(target: Any) -> frozenset[str]:
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(name for name in FACTORY_KWARGS if name in parameters)


def _construct_module(module: ModulePlan, factory: dict[str, Any], loaded: LoadedSpec) -> torch.nn.Module:
    if isinstance(module, BlockPlan):
        return _construct(module, factory, loaded)
    if isinstance(module, SubgraphPlan):
        children = {name: _construct_module(m, factory, loaded) for name, m in module.graph.modules.items()}
        return Subgraph(module.name, children)
    # Each copy is constructed on its own, so each has its own weights.
    copies = torch.nn.ModuleList()
    for index, copy in enumerate(module.copies):
        try:
            copies.append(_construct_module(copy, factory, loaded))
        except Exception as exc:
            add_note(exc, f"in copy {index} of {format_path(module.path)}")
            raise
    return copies


def _construct(block: BlockPlan, factory: dict[str, Any], loaded: LoadedSpec) -> torch.nn.Module:
    kwargs = {  # a plain value, the usual argument, without a call to `_materialize`
        name: _materialize(value, factory, loaded) if isinstance(value, (BlockPlan, list)) else value
        for name, value in block.kwargs.items()
    }
    accepted = _accepted_factory_kwargs(block.entry.target)
    for name, value in factory.items():
        if name in accepted and name not in kwargs:
            kwargs[name] = value
    try:
        if "device" in factory and "device" not in accepted:
            # Blocks that take no `device` still create their tensors there. Only those: the
            # device context intercepts every tensor op, which costs more than the build.
            with factory["device"]:
                module = block.entry.target(**kwargs)
        else:
            module = block.entry.target(**kwargs)
    except Exception as exc:
        location = loaded.source_map.locate(block.path)[0]
        where = f" at {location.format()}" if location else ""
        add_note(exc, f"while constructing {'.'.join(map(str, block.path))} ({block.entry.key}){where}")
        raise
    if "dtype" in factory and "dtype" not in accepted:
        module = module.to(dtype=factory["dtype"])
    return module  # type: ignore[no-any-return]


def _materialize(value: Any, factory: dict[str, Any], loaded: LoadedSpec) -> Any:
    if isinstance(value, BlockPlan):
        return _construct(value, factory, loaded)
    if isinstance(value, list):
        return [_materialize(v, factory, loaded) for v in value]
    return value
