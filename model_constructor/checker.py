"""`Checker`: the arguments of every block and every call, checked against signatures.

The check stage (check.py) walks graphs; this is what it asks at each module and node:
is the `_type_` or `fn:` key registered, do a block's arguments satisfy its signature,
do a call's arguments bind to the callee's signature (the literals validated, as a
constructor's are). Every fault is collected in `problems`, none raised, so one SpecError
can list them all.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Collection
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import pydantic
import torch

from .errors import ConfigPath, Diagnostic, closest, did_you_mean
from .graph import Ref, contains_ref
from .instances import check_repeat, check_subgraph
from .plan import BlockPlan, GraphPlan, ModulePlan, NodePlan, RepeatPlan, SubgraphPlan
from .registry import Entry, Registry
from .signatures import Signature, signature_of
from .source import SourceMap
from .spec import PLAIN_ARGUMENT_TYPES, SUBGRAPH_PREFIX, GraphSpec, ModuleSpec, SubgraphSpec

GraphChecker = Callable[["Checker", GraphSpec, ConfigPath], "GraphPlan | None"]


@dataclass
class Checker:
    registry: Registry
    source_map: SourceMap
    sources: dict[str, str]
    graphs: dict[str, SubgraphSpec]
    # Resolved params, for the interpolations each sub-graph or repeat instance resolves.
    params: dict[str, Any]
    # check.py's graph walk, for sub-graph bodies (passed in: check.py imports this module).
    check_graph: GraphChecker
    problems: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    bind_arguments: bool = True
    # Sub-graphs being checked, outermost first: one that contains itself is an error.
    active_graphs: list[str] = field(default_factory=list)
    # Sub-graph instances checked so far: see NOTE: [Instance bounds].
    instances: int = 0
    args_models: dict[str, type[pydantic.BaseModel]] = field(default_factory=dict)
    # How each call shape binds, per signature (its id: signatures are cached): see `_binding`.
    bindings: dict[tuple[int, int, int, tuple[str, ...]], _Binding | str] = field(default_factory=dict)
    # Per block key, its entry and signature (`blocks`), and the signature its calls are checked
    # against (`forwards`, None: unchecked). The registry and `signature_of` know them too, but
    # asking them once per block and once per call costs 0.1-0.2 ms per 1000 of each.
    blocks: dict[str, tuple[Entry, Signature]] = field(default_factory=dict)
    forwards: dict[str, Signature | None] = field(default_factory=dict)

    def report(self, path: ConfigPath, message: str, **extra: Any) -> None:
        self.problems.append(self.source_map.diagnostic(path, message, **extra))

    # ---- modules ------------------------------------------------------------------------

    def module(self, spec: ModuleSpec, path: ConfigPath) -> ModulePlan | None:
        if spec.repeat_ is not None:
            return check_repeat(self, spec, path, self.single)
        return self.single(spec, path)

    def single(self, spec: ModuleSpec, path: ConfigPath) -> BlockPlan | SubgraphPlan | None:
        # `spec.type_` tested, not `spec.subgraph`: a property call per block costs 0.1 ms per 1000.
        if spec.type_.startswith(SUBGRAPH_PREFIX):
            return check_subgraph(self, spec, path, self.check_graph)
        return self.block(spec, path)

    def block(self, spec: ModuleSpec, path: ConfigPath) -> BlockPlan | None:
        resolved = self.blocks.get(spec.type_) or self.resolve_block(spec.type_)
        kwargs = spec.model_extra or {}  # read only: `spec.kwargs` would copy it
        # Most blocks: no argument holds a nested block spec.
        if resolved is not None and PLAIN_ARGUMENT_TYPES.issuperset(map(type, kwargs.values())):
            entry, signature = resolved
            validated = self.arguments(entry, signature, kwargs, (), path)
            return None if validated is None else BlockPlan(path, entry, validated)
        nested = {
            name: self.nested(value, (*path, name)) for name, value in kwargs.items() if _holds_block(value)
        }
        if resolved is None:
            keys = self.registry.keys("module")
            self.report(
                (*path, "_type_"),
                f"unknown block type {spec.type_!r}",
                hint=did_you_mean(spec.type_, keys)
                or "no block is registered under that key; is the module that registers it in imports?",
                span=len(spec.type_),
            )
            return None
        entry, signature = resolved
        literal = {k: v for k, v in kwargs.items() if k not in nested} if nested else kwargs
        validated = self.arguments(entry, signature, literal, nested.keys(), path)
        for name, plan in nested.items():
            self.check_nested_type(entry, signature, name, plan, path)
        if validated is None or (nested and any(plan is None for plan in nested.values())):
            return None
        return BlockPlan(path, entry, {**validated, **nested})

    def resolve_block(self, key: str) -> tuple[Entry, Signature] | None:
        """The entry registered under block `key` and its signature, kept in `blocks`."""
        entry = self.registry.get("module", key)
        if entry is None:
            return None
        resolved = self.blocks[key] = (entry, signature_of(entry.target, entry.signature_policy))
        return resolved

    def nested(self, value: Any, path: ConfigPath) -> Any:
        if isinstance(value, ModuleSpec):
            if value.subgraph is not None or value.repeat_ is not None:
                self.report(
                    (*path, "_type_" if value.subgraph else "_repeat_"),
                    "a block argument cannot be a sub-graph or a repeat",
                    hint="declare it as a module of the graph and call it from a node",
                )
                return None
            return self.block(value, path)
        return [self.nested(item, (*path, i)) if _holds_block(item) else item for i, item in enumerate(value)]

    def arguments(
        self,
        entry: Entry,
        signature: Signature,
        literal: dict[str, Any],
        nested: Collection[str],
        path: ConfigPath,
    ) -> dict[str, Any] | None:
        """`literal` validated against `signature`; `nested` names the arguments given as
        block specs, which are validated apart. None when anything is wrong."""
        if signature.arguments is None:
            return dict(literal)
        given: AbstractSet[str] = literal.keys() | nested if nested else literal.keys()
        try:
            # The adapter's own validator: TypeAdapter.validate_python adds a Python call
            # that costs as much as validating a small block's arguments.
            arguments: dict[str, Any] = signature.arguments.validator.validate_python(literal)
        except pydantic.ValidationError as exc:
            self.check_names(entry, signature, given, path)
            self.argument_errors(entry, signature, exc, path)
            return None
        # Having passed, the validator found no unknown name in `literal` (NOTE: [Arguments as
        # a TypedDict]): most blocks only need the test for required ones.
        if not nested and given >= signature.required_names:
            return arguments
        return arguments if self.check_names(entry, signature, given, path) else None

    def check_names(
        self, entry: Entry, signature: Signature, given: AbstractSet[str], path: ConfigPath
    ) -> bool:
        """Report unknown and missing argument names of a block; whether there were none."""
        if (
            signature.accepts_extra or given <= signature.parameters.keys()
        ) and given >= signature.required_names:
            return True
        self.argument_names(
            sorted(given),
            [] if signature.accepts_extra else signature.names,
            list(signature.required_arguments),
            f"block {entry.key!r}",
            path,
            missing_hint=lambda _: f"it takes {_plain_signature(signature)}",
            accepts_extra=signature.accepts_extra,
        )
        return False

    def argument_names(
        self,
        given: list[str],
        declared: list[str],
        required: list[str],
        what: str,
        path: ConfigPath,
        *,
        missing_hint: Callable[[str], str],
        accepts_extra: bool = False,
    ) -> None:
        """Unknown and missing argument names, for a block or a sub-graph instance.

        A misspelled required argument is reported once, as unknown with a did-you-mean,
        not again as missing.
        """
        misspelled: set[str] = set()
        for name in given:
            if accepts_extra or name in declared:
                continue
            match = closest(name, declared)
            if match is not None:
                misspelled.add(match)
            self.report(
                (*path, name),
                f"unknown argument {name!r} for {what}",
                key=True,
                hint=f"did you mean {match!r}?"
                if match
                else f"valid arguments: {', '.join(declared) or 'none'}",
            )
        for name in required:
            if name not in given and name not in misspelled:
                self.report(path, f"missing argument {name!r} for {what}", hint=missing_hint(name))

    def argument_errors(
        self, entry: Entry, signature: Signature, exc: pydantic.ValidationError, path: ConfigPath
    ) -> None:
        """One diagnostic per bad argument: a union type fails once per member, and pydantic's
        loc names those members (`kernel_size.int`), which a user never wrote."""
        by_argument: dict[str, list[Any]] = {}
        for error in exc.errors():
            if len(error["loc"]) == 1 and error["type"] == "extra_forbidden":
                continue  # reported with a did-you-mean by the caller
            by_argument.setdefault(str(error["loc"][0]), []).append(error)
        for name, errors in by_argument.items():
            param = signature.parameters.get(name)
            error = errors[0]
            where = [
                part for part in error["loc"] if not (isinstance(part, str) and ("[" in part or "(" in part))
            ]
            if len(errors) > 1 and param is not None:
                message, where = f"expected {_describe(param.annotation)}", [name]
            else:
                message = error["msg"].rstrip(".")
            shown = repr(errors[0].get("input"))
            self.report(
                (*path, *where),
                f"argument {name!r} of block {entry.key!r}: {message}, got {shown[:60]}",
                hint=_strict_hint(error, param.annotation if param else None),
            )

    def check_nested_type(
        self, entry: Entry, signature: Signature, name: str, plan: Any, path: ConfigPath
    ) -> None:
        param = signature.parameters.get(name)
        if not isinstance(plan, BlockPlan) or param is None:
            return
        expected = [t for t in _classes_in(param.annotation) if t is not type(None)]
        built = plan.entry.target
        if expected and isinstance(built, type) and not any(issubclass(built, t) for t in expected):
            names = " or ".join(t.__name__ for t in expected)
            self.report(
                (*path, name, "_type_"),
                f"argument {name!r} of block {entry.key!r} expects {names}, "
                f"but {plan.entry.key!r} builds {built.__name__}",
            )

    # ---- nodes --------------------------------------------------------------------------

    def node(
        self,
        name: str,
        path: ConfigPath,
        call: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        graph: GraphSpec,
        modules: dict[str, ModulePlan | None],
    ) -> NodePlan | None:
        kind, _, target = call.partition(":")
        if kind == "module":
            if target not in graph.modules:
                self.report(
                    (*path, "call"),
                    f"unknown module {target!r}",
                    hint=did_you_mean(target, list(graph.modules))
                    or f"modules of this graph: {', '.join(graph.modules) or 'none'}",
                )
                return None
            args, kwargs = self.module_call(target, modules.get(target), args, kwargs, path)
            return NodePlan(name, "module", target, None, args, kwargs, path)
        if kind == "fn":
            entry = self.registry.get("function", target)
            if entry is None:
                self.report(
                    (*path, "call"),
                    f"unknown function {target!r}",
                    hint=did_you_mean(target, self.registry.keys("function"))
                    or "register it with registry.register_function",
                )
                return None
            args, kwargs = self.bind(
                signature_of(entry.target, entry.signature_policy), args, kwargs, ("function", target), path
            )
            return NodePlan(name, "fn", target, entry.target, args, kwargs, path)
        if target.startswith("_"):
            self.report(
                (*path, "call"),
                f"tensor method {target!r} is private",
                hint="only public tensor methods can be called",
            )
            return None
        if not callable(getattr(torch.Tensor, target, None)):
            methods = [m for m in dir(torch.Tensor) if not m.startswith("_")]
            self.report(
                (*path, "call"), f"unknown tensor method {target!r}", hint=did_you_mean(target, methods)
            )
            return None
        if not args or not isinstance(args[0], Ref):  # `0.transpose(1)` is not even Python
            where, hint = ((*path, "args", 0), "write a $ref, such as $x") if args else (path, None)
            message = f"method {target!r} needs the tensor as its first argument in args"
            self.report(where, message, hint=hint)
            return None
        return NodePlan(name, "method", target, None, args, kwargs, path)

    def module_call(
        self,
        target: str,
        plan: ModulePlan | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        path: ConfigPath,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Check a call of module `target`; return its arguments with literals validated."""
        if isinstance(plan, RepeatPlan):
            # Copies run in sequence, so each must return the one value the next takes.
            first = plan.copies[0]
            if isinstance(first, SubgraphPlan) and first.graph.return_kind != "single":
                self.report(
                    (*path, "call"),
                    f"repeated module {target!r} returns a {first.graph.return_kind}",
                    hint="a repeated sub-graph must have return: single, to feed the next copy",
                )
            if not args:
                self.report(
                    path,
                    f"repeated module {target!r} needs its first input in args",
                    hint="each copy's output is passed to the next copy as its first argument",
                )
            plan = first
        if isinstance(plan, SubgraphPlan):
            self.subgraph_call(target, plan, args, kwargs, path)
        elif isinstance(plan, BlockPlan):
            key = plan.entry.key
            signature = self.forwards[key] if key in self.forwards else self.resolve_forward(plan.entry)
            if signature is not None:
                args, kwargs = self.bind(signature, args, kwargs, ("module", target), path, offset=1)
        return args, kwargs

    def resolve_forward(self, entry: Entry) -> Signature | None:
        """The signature calls of block `entry` are checked against, kept in `forwards`:
        its `forward`'s, or None when its policy is "none" or it has no `forward`."""
        forward = getattr(entry.target, "forward", None) if entry.signature_policy != "none" else None
        signature = None if forward is None else signature_of(forward, entry.signature_policy)
        self.forwards[entry.key] = signature
        return signature

    def subgraph_call(
        self, target: str, plan: SubgraphPlan, args: tuple[Any, ...], kwargs: dict[str, Any], path: ConfigPath
    ) -> None:
        """A sub-graph's inputs are its parameters: each given once, by position or name."""
        inputs = plan.graph.inputs
        what = f"sub-graph module {target!r} (inputs: {', '.join(inputs) or 'none'})"
        if len(args) > len(inputs):
            self.report((*path, "args"), f"too many arguments for {what}")
        misspelled: set[str] = set()  # reported once, as unknown with a did-you-mean
        for key in kwargs:
            if key not in inputs:
                match = closest(key, inputs)
                if match is not None:
                    misspelled.add(match)
                self.report(
                    (*path, "kwargs", key),
                    f"unknown input {key!r} for {what}",
                    key=True,
                    hint=f"did you mean {match!r}?" if match else None,
                )
            elif inputs.index(key) < len(args):
                self.report((*path, "kwargs", key), f"input {key!r} given twice for {what}", key=True)
        missing = [name for name in inputs[len(args) :] if name not in kwargs and name not in misspelled]
        if missing:
            self.report(path, f"missing input(s) {', '.join(missing)} for {what}")

    def bind(
        self,
        signature: Signature,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        callee: tuple[str, str],
        path: ConfigPath,
        offset: int = 0,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Check a call's arguments against the callee's signature, and its literals' types.

        `callee` is (kind, name) for messages, as in `module 'proj'`. `offset` is how many
        leading parameters the call fills before `args` (`self` for a module's forward). Returns the
        arguments with each checked literal replaced by its validated value (so a `lax`
        callee gets 1.5 for "1.5", as a block's constructor does).
        """
        if signature.inspected is None or not self.bind_arguments:
            return args, kwargs
        shape = (id(signature), offset, len(args), tuple(kwargs))
        binding = self.bindings.get(shape)
        if binding is None:
            binding = self.bindings[shape] = _binding(signature, offset, len(args), tuple(kwargs))
        if isinstance(binding, str):
            exc = binding
            hint = None
            unexpected = [k for k in kwargs if k not in signature.inspected.parameters]
            if unexpected and not signature.accepts_extra:
                hint = did_you_mean(unexpected[0], signature.names)
            where = (*path, "kwargs", unexpected[0]) if unexpected else (*path, "args")
            self.report(
                where,
                f"arguments do not fit {_callee(callee)}: {exc}",
                key=bool(unexpected),
                hint=hint or f"it takes {_plain_signature(signature, skip=offset)}",
            )
            return args, kwargs
        checked: list[tuple[int, str | None, Any]] = []
        for name, index, keyword, validator in binding:
            value = args[index] if keyword is None else kwargs[keyword]
            if isinstance(value, Ref) or contains_ref(value):  # the first test: the usual $ref
                continue
            try:
                checked.append((index, keyword, validator.validate_python(value)))
            except pydantic.ValidationError as exc:
                error = exc.errors()[0]
                where = (*path, "kwargs", name) if keyword is not None else (*path, "args", index)
                self.report(
                    where,
                    f"argument {name!r} of {_callee(callee)}: {error['msg'].rstrip('.')}, got {value!r}",
                    hint=_strict_hint(error),
                )
        if not checked:
            return args, kwargs
        checked_args, checked_kwargs = list(args), dict(kwargs)
        for index, keyword, value in checked:
            if keyword is not None:
                checked_kwargs[keyword] = value
            else:
                checked_args[index] = value
        return tuple(checked_args), checked_kwargs


# Each argument of a call whose value is checked: (parameter name, index in args, or its
# keyword in kwargs, the parameter's validator).
_Binding = tuple[tuple[str, int, str | None, pydantic.TypeAdapter[Any]], ...]


class _Slot:
    """Stands for one argument while a call shape is bound."""

    def __init__(self, index: int, keyword: str | None) -> None:
        self.index, self.keyword = index, keyword


def _binding(signature: Signature, offset: int, count: int, keywords: tuple[str, ...]) -> _Binding | str:
    """Which checked parameter each argument of a call with `count` positional arguments
    and `keywords` binds to, or inspect's message if the call does not fit. The first
    `offset` positional parameters are filled before them (`self`), and left out.

    Binding depends on the call's shape only, not its values, and `inspect.Signature.bind`
    costs about 10 us: a 1000-node spec makes a handful of shapes, bound once each
    (`Checker.bindings`). Arguments gathered by `*args` or `**kwargs` are left out, as
    they match no parameter a literal could be checked against, and so are those whose
    parameter has no validator.
    """
    assert signature.inspected is not None
    slots = (_Slot(i - offset, None) for i in range(offset + count))
    try:
        bound = signature.inspected.bind(*slots, **{k: _Slot(0, k) for k in keywords})
    except TypeError as exc:
        return str(exc)
    return tuple(
        (name, slot.index, slot.keyword, param.validator)
        for name, slot in bound.arguments.items()
        if isinstance(slot, _Slot)
        and (slot.keyword is not None or slot.index >= 0)
        and (param := signature.parameters.get(name)) is not None
        and param.validator is not None
    )


def _callee(callee: tuple[str, str]) -> str:
    kind, name = callee
    return f"{kind} {name!r}"


def _plain_signature(signature: Signature, skip: int = 0) -> str:
    """`(input, alpha=1)`: parameter names and defaults, without annotations or `self`."""
    if signature.inspected is None:
        return "(...)"
    params = list(signature.inspected.parameters.values())[skip:]
    return "(" + ", ".join(str(p.replace(annotation=inspect.Parameter.empty)) for p in params) + ")"


def _holds_block(value: Any) -> bool:
    return isinstance(value, ModuleSpec) or (
        isinstance(value, list) and any(_holds_block(item) for item in value)
    )


def _classes_in(annotation: Any) -> list[type]:
    if isinstance(annotation, type):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _classes_in(typing.get_args(annotation)[0])
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = typing.get_args(annotation)
        classes = [c for arg in args for c in _classes_in(arg)]
        # Only judge when every member is a plain class; anything fancier is left alone.
        return classes if len(classes) == len(args) else []
    return []


def _strict_hint(error: Any, annotation: Any = None) -> str | None:
    value = error.get("input")
    if isinstance(value, str) and error["type"] in ("int_type", "float_type", "bool_type"):
        # Only when the quoted text is the number or boolean it looks like: `dropout: high`
        # is just wrong, not quoted.
        try:
            pydantic.TypeAdapter(
                {"int_type": int, "float_type": float, "bool_type": bool}[error["type"]]
            ).validate_python(value)
        except pydantic.ValidationError:
            return None
        return "strict blocks take numbers and booleans unquoted"
    classes = _classes_in(annotation)
    if error["type"] == "is_instance_of" and any(issubclass(c, torch.nn.Module) for c in classes):
        return "write a block spec, such as {_type_: nn.GELU}"
    return None


def _describe(annotation: Any) -> str:
    """`int | tuple[int, int]`, as a user would write it, without our Annotated wrappers."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _describe(typing.get_args(annotation)[0])
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " | ".join(_describe(arg) for arg in typing.get_args(annotation))
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
