"""`BuiltModel`: a `torch.fx.GraphModule` whose forward is generated from a checked plan.

We generate an fx Graph rather than interpret the plan at run time: fx's code generation
writes straight-line Python (one line per node, intermediates set to None after their last
use), which runs as fast as hand-written code and is what `torch.compile` and
`torch.export` handle best. Measured on torch 2.13 CPU, an interpreter loop costs 0.24 to
4.4 microseconds per node; generated code about 0.01.

NOTE: [Rebuild, don't trace]
Plain GraphModule pickles its generated code and re-traces it on load, cannot pickle a
lambda target, and its deepcopy drops plain attributes. A BuiltModel knows the plan it was
generated from, so deepcopy regenerates the graph from the plan, and unpickling re-checks
`spec` to get the plan back; the modules and every other attribute travel as ordinary state.
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

from .codegen import generate
from .errors import add_note
from .plan import GraphPlan
from .registry import Registry
from .source import SourceMap
from .spec import ModelSpec

# Attributes derived from the fx graph: regenerated, never copied or pickled.
_DERIVED = frozenset({"_graph", "_code", "_lineno_map", "_prologue_start", "_in_spec", "_out_spec"})


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
    and `code` the generated forward. `build_model` sets `fingerprint` and
    `module_fingerprints` (fingerprint.py), plain attributes that copies and pickles keep.
    """

    spec: ModelSpec
    fingerprint: str
    module_fingerprints: dict[str, str]

    def __init__(
        self,
        modules: Mapping[str, torch.nn.Module],
        plan: GraphPlan,
        spec: ModelSpec,
        *,
        import_prefixes: Sequence[str] = (),
        registry: Registry | None = None,
        source_map: SourceMap | None = None,
    ) -> None:
        # fx names the per-instance class after `class_name`; messages such as torch's
        # "Error(s) in loading state_dict for ..." show it.
        # Given a root and a graph, GraphModule copies each module the graph calls with an
        # nn.Module.__setattr__ (5 to 10 us each), and only those. We want every declared
        # module, in spec order, so state_dict keys do not depend on which modules are
        # called: so start from an empty graph, install the modules, then the real graph
        # (which compiles the forward).
        super().__init__({}, _empty_graph(), class_name="BuiltModel")
        self._modules.update(modules)
        self.graph = generate(plan)
        self.spec = spec
        self._plan = plan
        self._import_prefixes = list(import_prefixes)
        # The caller's own registrations (build_model's `registry=`), which unpickling needs
        # besides the built-ins and the spec's imports.
        self._caller_registry = registry
        # Node name -> where it is written, for the notes of runtime errors.
        self._node_locations = {
            node.meta["yaml_node"]: location.format()
            for node in self.graph.nodes
            if "yaml_path" in node.meta
            and source_map is not None
            and (location := source_map.locate(node.meta["yaml_path"], key=True)[0]) is not None
        }

    def recompile(self) -> PythonCode:
        """fx's recompile, then the forward and `__call__` of NOTE: [Noted forward]."""
        code = super().recompile()
        cls = type(self)  # fx's per-instance class
        cls.forward = _noted(cls.forward)
        cls.__call__ = torch.nn.Module.__call__  # type: ignore[method-assign]
        return code

    def _node_note(self, exc: BaseException) -> str | None:
        """Which YAML node the innermost frame of generated code was running, if any."""
        filename = type(self).forward.__wrapped__.__code__.co_filename  # type: ignore[attr-defined]
        line = None
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename == filename:
                line = lineno
        if line is None or not self._lineno_map:
            return None
        # fx numbers `_lineno_map` from the `def forward` line, not from the top of the file.
        index = self._lineno_map.get(line - self._prologue_start)
        if index is None:
            return None
        node = list(self.graph.nodes)[index]
        name = node.meta.get("yaml_node")
        if name is None:
            return None
        where = self._node_locations.get(name)
        return f"raised in node {name!r}" + (f" at {where}" if where else "")

    def _state(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in _DERIVED}

    @classmethod
    def _from_state(cls, plan: GraphPlan, state: dict[str, Any]) -> BuiltModel:
        model = cls(state["_modules"], plan, state["spec"])
        model.__dict__.update(state)
        return model

    def __deepcopy__(self, memo: dict[int, Any]) -> BuiltModel:
        # See NOTE: [Rebuild, don't trace]. The plan is immutable and shared.
        state = copy.deepcopy(self._state(), memo)
        model = BuiltModel._from_state(self._plan, state)
        memo[id(self)] = model
        return model

    def __reduce__(self) -> tuple[Any, ...]:
        state = self._state()
        del state["_plan"]  # holds resolved callables, which may not pickle; re-checked on load
        return (_unpickle, (state,))

    def __copy__(self) -> BuiltModel:
        return BuiltModel._from_state(self._plan, self._state())


def _empty_graph() -> fx.Graph:
    graph = fx.Graph()
    graph.output(None)
    return graph


def _unpickle(state: dict[str, Any]) -> BuiltModel:
    from .build import plan_for

    plan = plan_for(
        state["spec"],
        allowed_import_prefixes=state["_import_prefixes"],
        registry=state["_caller_registry"],
    )
    return BuiltModel._from_state(plan, state)
