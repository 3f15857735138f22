"""Pydantic validators derived from a block's `__init__` or a function's signature, cached per callable.

This is what lets a spec be checked before anything is constructed: unknown and missing
arguments, and wrongly typed literals, are found from the signature alone (fiddle's
`signatures.py` does the same for its Configs). We derive pydantic validators instead
of hand-writing type checks, so every annotation pydantic understands is checked the way
pydantic checks it, and the *validated* values are what the constructor receives.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union

import pydantic
from pydantic import BeforeValidator, ConfigDict, TypeAdapter
from typing_extensions import NotRequired, TypedDict

from .registry import SignaturePolicy

# Parameters a constructor takes that `build_model(device=..., dtype=...)` fills in.
FACTORY_KWARGS = ("device", "dtype")


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: Any
    required: bool
    validator: TypeAdapter[Any] | None


@dataclass(frozen=True)
class Signature:
    """What a spec may pass to a callable by keyword, and how each value is checked."""

    parameters: dict[str, Parameter]
    accepts_extra: bool
    # None when the callable's signature cannot be inspected (C builtins such as torch.add).
    inspected: inspect.Signature | None
    # Validates a block's literal arguments all at once: see `_arguments_validator`.
    arguments: TypeAdapter[dict[str, Any]] | None

    @property
    def names(self) -> list[str]:
        return list(self.parameters)

    # NOTE: [Derived once] A signature is made once per callable (`signature_of` is cached)
    # and checked against every block that uses it: what each check would derive from it
    # again is derived here, once.

    @functools.cached_property
    def required_arguments(self) -> tuple[str, ...]:
        """The parameters a spec must give: those without a default, but device and dtype,
        which build_model fills in."""
        return tuple(p.name for p in self.parameters.values() if p.required and p.name not in FACTORY_KWARGS)

    @functools.cached_property
    def required_names(self) -> frozenset[str]:
        """`required_arguments` as a set, to test a block's given names against at C speed."""
        return frozenset(self.required_arguments)


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _yaml_friendly(annotation: Any) -> Any:
    """Let tuple-typed parameters accept YAML lists, which have no tuple syntax."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return Annotated[annotation, BeforeValidator(_list_to_tuple)]
    if origin is Union or origin is types.UnionType:
        return Union[tuple(_yaml_friendly(arg) for arg in typing.get_args(annotation))]  # noqa: UP007
    return annotation


def _type_hints(target: Callable[..., Any]) -> dict[str, Any]:
    function = getattr(target, "__init__") if isinstance(target, type) else target  # noqa: B009
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:
        # Unresolvable string annotations: such parameters are checked for names only.
        return {}


def _inspect(target: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


@functools.cache
def signature_of(target: Callable[..., Any], policy: SignaturePolicy) -> Signature:
    """The checked signature of `target` (a class: its `__init__`) under `policy`."""
    inspected = _inspect(target)
    if inspected is None or policy == "none":
        return Signature({}, True, inspected if policy != "none" else None, None)
    hints = _type_hints(target)
    config = ConfigDict(strict=policy == "strict", arbitrary_types_allowed=True)
    parameters: dict[str, Parameter] = {}
    accepts_extra = False
    for param in inspected.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_extra = True
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        annotation = _yaml_friendly(hints.get(param.name, Any))
        try:
            validator: TypeAdapter[Any] | None = TypeAdapter(annotation, config=config)
        except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
            annotation, validator = Any, None
        if annotation is Any:
            validator = None
        parameters[param.name] = Parameter(
            name=param.name,
            annotation=annotation,
            required=param.default is inspect.Parameter.empty,
            validator=validator,
        )
    validator = _arguments_validator(target, parameters, config, accepts_extra)
    return Signature(parameters, accepts_extra, inspected, validator)


# NOTE: [Arguments as a TypedDict]
# A block's arguments are validated as one TypedDict whose keys are the parameters, all of
# them optional: the checker reports missing arguments itself, because a required argument
# may be given as a nested block spec (validated apart) or be a device/dtype that
# build_model fills in. Any other key is refused unless the callable takes `**kwargs`, so
# literal arguments that pass hold no unknown name: the checker looks for one only when they
# fail, or among nested block specs. The result is the dict of given arguments itself,
# validated, in parameter order and then any extra ones (`**kwargs`) as written. A pydantic
# model gives the same through `model_fields_set` and `model_extra` at four times the cost,
# paid once per block of a spec, and needs its fields renamed, so that a parameter called
# `copy` or `model_config` cannot collide with the model's own attributes.


def _arguments_validator(
    target: Callable[..., Any],
    parameters: dict[str, Parameter],
    config: ConfigDict,
    accepts_extra: bool,
) -> TypeAdapter[dict[str, Any]]:
    """The validator of NOTE: [Arguments as a TypedDict] for `target`'s `parameters`."""
    name = f"{getattr(target, '__qualname__', 'target')}Arguments"
    typed_config = ConfigDict(**config, extra="allow" if accepts_extra else "forbid")
    fields = {param.name: param.annotation for param in parameters.values()}
    try:
        return _typed_dict(name, fields, typed_config)
    except Exception:
        # Each annotation passed on its own (see signature_of); together they may still
        # fail. Names and arity are then all that is checked.
        return _typed_dict(name, dict.fromkeys(fields, Any), typed_config)


def _typed_dict(name: str, fields: dict[str, Any], config: ConfigDict) -> TypeAdapter[dict[str, Any]]:
    # Made at run time: mypy cannot follow a TypedDict whose keys are not written out.
    arguments = typing.cast(Any, TypedDict)(name, {key: NotRequired[value] for key, value in fields.items()})
    arguments.__pydantic_config__ = config
    return TypeAdapter(arguments)
