"""`BuiltModel`: a `torch.fx.GraphModule` whose forward is generated from a checked plan.

We generate the forward rather than interpret the plan at run time: straight-line Python
(one line per node, intermediates set to None after their last use, as fx writes it) runs
as fast as hand-written code and is what `torch.compile` and `torch.export` handle best.
Measured on torch 2.13 CPU, an interpreter loop costs 0.24 to 4.4 microseconds per node;
generated code about 0.01. The source is written straight from the plan, and the fx Graph
only when `model.graph` is read (NOTE: [Source first, fx on demand] in codegen.py).

NOTE: [Rebuild, don't trace]
Plain GraphModule pickles its generated code and re-traces it on load, cannot pickle a
lambda target, and its deepcopy drops plain attributes. A BuiltModel re-checks `spec` to get
back the plan it was generated from (NOTE: [Plan on demand]), so deepcopy and unpickling
regenerate the forward from the plan; the modules and every other attribute travel as
ordinary state.
"""

from __future__ import annotations

import copy
import functools
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import fx
from torch.fx.graph import PythonCode

from .codegen import Forward, generate_forward, generate_graph
from .errors import add_note
from .fingerprint import fingerprints
from .plan import GraphPlan
from .registry import Registry
from .source import SourceMap
from .spec import ModelSpec

# The plan, and attributes derived from it (the forward, the fx graph) or from the build's
# registry: regenerated, never copied or pickled.
_DERIVED = frozenset(
    {
        "_graph",
        "_code",
        "_lineno_map",
        "_prologue_start",
        "_in_spec",
        "_out_spec",
        "_origins",
        "_registry",
        "_plan",
    }
)


# NOTE: [Noted forward]
# An exception raised in the generated forward gets a note naming the YAML node (and its
# line) that raised it. fx's GraphModule does this in `__call__` (`call_wrapped`, then
# `_WrappedCall`, which prints to stderr); we did the same with our own wrapper at first.
# But `torch.compile(model)` compiles from the model's `__call__`: Dynamo started at fx's
# `call_wrapped`, traced `nn.Module.__call__` inline and guarded on its hooks, and the
# compiled model ran 2 to 7% slower than the same graph compiled from its `forward`
# (benchmarks/forward.py, 122 nodes at batch 1). So the note is added by a wrapper around
# the generated forward instead, and `__call__` is plain `nn.Module.__call__`: torch.compile
# skips it and starts at `forward`, as for a hand-written module. Hooks, DDP and FSDP go
# through `nn.Module.__call__` as for any module. Python 3.11's try costs nothing when nothing
# is raised.
def _noted(generated: Callable[..., Any]) -> Callable[..., Any]:
    """`generated` (fx's forward), adding a note to what it raises. See NOTE: [Noted forward]."""

    @functools.wraps(generated)  # keeps forward's signature for inspect (torch.export reads it)
    def forward(self: BuiltModel, *args: Any, **kwargs: Any) -> Any:
        try:
            return generated(self, *args, **kwargs)
        except Exception as exc:
            note = self._node_note(exc)
            if note is not None:
                add_note(exc, note)
            raise

    return forward


class Subgraph(torch.nn.Module):
    """The modules of one sub-graph instance (`_type_: graph:NAME`), under their spec names.

    It owns weights only: its nodes run inlined in the forward of the model that holds it
    (see codegen.py), so it is not called on its own, like `nn.ModuleList`.
    """

    def __init__(self, name: str, modules: Mapping[str, torch.nn.Module]) -> None:
        super().__init__()
        self.graph_name = name
        for key, module in modules.items():
            self.add_module(key, module)

    def extra_repr(self) -> str:
        return f"graph:{self.graph_name}"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"sub-graph graph:{self.graph_name} runs inlined in the forward of the model that "
            "holds it; call that model"
        )


class BuiltModel(fx.GraphModule):
    """A model built from a spec.

    Its children are the spec's modules, under their spec names (so `state_dict` keys are
    `proj.weight`, `mix.net.0.weight`, ...); `spec` is the resolved spec it was built from,
    `code` the generated forward, and `graph` the same forward as an fx Graph.
    `fingerprint` and `module_fingerprints` identify the architecture (fingerprint.py).
    """

    spec: ModelSpec

    def __init__(
        self,
        modules: Mapping[str, torch.nn.Module],
        forward: Forward,
        spec: ModelSpec,
        *,
        import_prefixes: Sequence[str] = (),
        registry: Registry | None = None,
        build_registry: Registry | None = None,
        source_map: SourceMap | None = None,
    ) -> None:
        # fx names the per-instance class after `class_name`; messages such as torch's
        # "Error(s) in loading state_dict for ..." show it.
        # Given a root and a graph, GraphModule copies each module the graph calls with an
        # nn.Module.__setattr__ (5 to 10 us each), and only those. We want every declared
        # module, in spec order, so state_dict keys do not depend on which modules are
        # called: so start from an empty graph, install the modules, then the forward.
        # See NOTE: [No empty forward].
        super().__init__({}, fx.Graph(), class_name="BuiltModel")
        self._modules.update(modules)
        self.spec = spec
        # Not kept: see NOTE: [Plan on demand].
        self._plan: GraphPlan | None = None
        self._import_prefixes = list(import_prefixes)
        # The caller's own registrations (build_model's `registry=`), which unpickling needs
        # besides the built-ins and the spec's imports.
        self._caller_registry = registry
        # The build's whole registry, for the fingerprints when first read; theirs once computed.
        self._registry = build_registry
        self._fingerprints: tuple[str, dict[str, str]] | None = None
        # Where each node is written, for the notes of runtime errors (NOTE: [Noted forward]):
        # only those positions are kept, not the SourceMap, which holds one per value of the file.
        self._node_locations = (source_map or SourceMap()).named(forward.source.paths)
        self._install(forward)

    @property
    def graph(self) -> fx.Graph:
        """The forward as an fx Graph, generated on first read (NOTE: [Source first, fx on demand])."""
        if self._graph is None:
            graph = generate_graph(self._checked_plan())
            graph.owning_module = self
            self._graph = graph
        return self._graph

    # NOTE: [No empty forward]
    # fx's `__init__` sets `self.graph`, and the setter recompiles at once: the graph's Python
    # code, `compile`, a linecache entry, our forward wrapper. For the empty graph that our
    # `__init__` starts from, that took 0.4 to 0.5 ms of a build, for a forward replaced right
    # after by the plan's. So while `__init__` runs (no plan yet), setting the graph only
    # keeps it, and `_install` compiles the one forward; fx's `__init__` still sets every
    # other attribute of a GraphModule. Setting `model.graph` later recompiles, as in fx.
    @graph.setter
    def graph(self, graph: fx.Graph) -> None:
        if "_plan" not in self.__dict__:  # fx's __init__: see NOTE: [No empty forward]
            self._graph = graph
            return
        fx.GraphModule.graph.fset(self, graph)  # type: ignore[attr-defined]

    @property
    def fingerprint(self) -> str:
        """The architecture's fingerprint: sha256 of the resolved spec and what its keys resolved to."""
        return self._computed_fingerprints()[0]

    @property
    def module_fingerprints(self) -> dict[str, str]:
        """One fingerprint per top-level module, in spec order."""
        return self._computed_fingerprints()[1]

    def _computed_fingerprints(self) -> tuple[str, dict[str, str]]:
        # Computed when first read: hashing the spec costs a tenth of a build (10 ms at
        # 1000 modules) that most builds never need.
        if self._fingerprints is None:
            if self._registry is None:
                raise RuntimeError("this model has neither its fingerprints nor the registry to compute them")
            self._fingerprints = fingerprints(self.spec, self._registry)
        return self._fingerprints

    def _install(self, forward: Forward) -> None:
        """Make `forward` the model's, and forget any fx graph (re-generated when read)."""
        source = forward.source
        self._graph = None  # type: ignore[assignment]
        self._code = source.text
        # fx's map from lines of `code` to graph nodes, read by Dynamo when it compiles a
        # GraphModule: we have no graph yet, and a None map is one Dynamo skips.
        self._lineno_map = None
        self._prologue_start = 0
        # Line -> YAML node: names only, which the garbage collector never has to visit.
        self._origins = source.nodes
        self._set_forward(forward.function)

    def recompile(self) -> PythonCode:
        """fx's recompile of `graph` (after editing it), with the forward of NOTE: [Noted forward]."""
        graph = self.graph
        code = super().recompile()
        nodes = list(graph.nodes)
        self._origins = {
            line + code._prologue_start: node.meta["yaml_node"]
            for line, index in (code._lineno_map or {}).items()
            if index is not None and "yaml_node" in (node := nodes[index]).meta
        }
        self._set_forward(type(self).forward)
        return code

    def _set_forward(self, generated: Callable[..., Any]) -> None:
        cls = type(self)  # fx's per-instance class
        cls.forward = _noted(generated)
        cls.__call__ = torch.nn.Module.__call__  # type: ignore[method-assign]

    def _node_note(self, exc: BaseException) -> str | None:
        """Which YAML node the innermost frame of generated code was running, if any."""
        filename = type(self).forward.__wrapped__.__code__.co_filename  # type: ignore[attr-defined]
        line = None
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename == filename:
                line = lineno
        name = self._origins.get(line) if line is not None else None
        if name is None:
            return None
        location = self._node_locations.location(name)
        return f"raised in node {name!r}" + (f" at {location.format()}" if location else "")

    def _state(self) -> dict[str, Any]:
        self._computed_fingerprints()  # a copy has no registry to compute them from
        return {key: value for key, value in self.__dict__.items() if key not in _DERIVED}

    @classmethod
    def _from_state(cls, plan: GraphPlan, state: dict[str, Any]) -> BuiltModel:
        model = cls(state["_modules"], generate_forward(plan), state["spec"])
        model.__dict__.update(state)
        return model

    # NOTE: [Plan on demand]
    # The checked plan is what the forward was generated from; after the build only
    # `model.graph` and copies need it again. Kept, its ~6,000 objects per 1000 nodes were
    # walked by the collection that followed every build (1 to 2 ms of a 70 ms build,
    # measured interleaved, before NOTE: [Collecting during construction]), and are held,
    # and walked by every full collection, for the model's life. So it is checked again from
    # `spec` when first needed (10 ms per 1000 nodes, once per model), as unpickling always
    # did: the same spec, import prefixes and registrations give the same plan.
    def _checked_plan(self) -> GraphPlan:
        if self._plan is None:
            self._plan = _rechecked(self.__dict__)
        return self._plan

    def __deepcopy__(self, memo: dict[int, Any]) -> BuiltModel:
        # See NOTE: [Rebuild, don't trace]. The plan is immutable and shared.
        state = copy.deepcopy(self._state(), memo)
        model = BuiltModel._from_state(self._checked_plan(), state)
        memo[id(self)] = model
        return model

    def __reduce__(self) -> tuple[Any, ...]:
        # The plan holds resolved callables, which may not pickle: re-checked on load.
        return (_unpickle, (self._state(),))

    def __copy__(self) -> BuiltModel:
        return BuiltModel._from_state(self._checked_plan(), self._state())


def _rechecked(state: Mapping[str, Any]) -> GraphPlan:
    """The plan of a model's `spec`, checked again with its import prefixes and the caller's
    registrations (NOTE: [Plan on demand]); `state` is the model's attributes."""
    from .build import plan_for

    return plan_for(
        state["spec"],
        allowed_import_prefixes=state["_import_prefixes"],
        registry=state["_caller_registry"],
    )


def _unpickle(state: dict[str, Any]) -> BuiltModel:
    return BuiltModel._from_state(_rechecked(state), state)
