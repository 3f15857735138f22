"""The pydantic models of a spec: one per section, each with a description for editors.

These models check the shape of a spec (which keys exist, which values are strings or
lists). What depends on the registry or on other parts of the spec, such as whether a
`_type_` is registered or a `$ref` names a node, is checked later, in `check.py`, where
every such fault can be reported at once with its own location.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError, ValidationError

SUPPORTED_SCHEMA_VERSIONS = (1,)

# A registry key (`nn.Linear`), a sub-graph (`graph:encoder_layer`), or either one written
# with `${...}` (`graph:${params.layer}`, `${args.activation}`), resolved before it is used.
BLOCK_TYPE = (
    r"^(graph:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*|.*\$\{.*\}.*)$"
)
CALL = r"^(module|fn|method):[A-Za-z_][A-Za-z0-9_.]*$"
INTERPOLATION = r"^\$\{.*\}$"
# What a value failing each pattern should have been, in words: pydantic's own message shows
# the regular expression.
PATTERN_MEANINGS = {
    BLOCK_TYPE: "expected a registry key such as 'nn.Linear', or 'graph:NAME'",
    CALL: "expected 'module:NAME', 'fn:KEY' or 'method:NAME'",
}
SUBGRAPH_PREFIX = "graph:"
MAX_REPEAT = 10_000
ARG_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "list": list[Any],
    "dict": dict[str, Any],
    "any": Any,
}


def _exact_int(value: Any) -> Any:
    # Literal[1] alone accepts 1.0 and true, which are not version 1 (and no Strict() for Literal).
    if type(value) is not int:
        raise ValueError("expected an integer")
    return value


# The types of most values of a module's arguments, tested by exact type: none of them holds
# a block spec (a ModuleSpec, or a list holding one). The checker tests them too.
PLAIN_ARGUMENT_TYPES = frozenset({str, int, float, bool, type(None)})


def _repeat_count(value: Any) -> Any:
    # Not pydantic's int: it reads '3', 3.0 and true as 3, 3 and 1, and a union with the
    # `${...}` string reports every bad value twice, once per member.
    if type(value) is int and 1 <= value <= MAX_REPEAT:
        return value
    if isinstance(value, str) and re.fullmatch(INTERPOLATION, value):
        return value  # `${args.depth}` in a sub-graph, resolved per instance
    raise PydanticCustomError("repeat_count", f"_repeat_ must be a whole number from 1 to {MAX_REPEAT}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Settings(_Section):
    """Settings that control how the spec is loaded."""

    allowed_import_prefixes: list[str] | None = Field(
        default=None,
        description=(
            "Module prefixes that `imports` may name, matched on dotted boundaries: "
            "'my_project.' admits 'my_project.blocks' but never 'my_project_evil'. "
            "A caller of build_model may pass its own list, which this one can only narrow."
        ),
        examples=[["model_constructor.", "my_project."]],
    )


class ModuleSpec(BaseModel):
    """One block instance: `_type_` is a registry key, every other key is a constructor argument.

    An argument may itself be a block spec (a mapping with `_type_`); it is built first and
    passed in as an object.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    type_: str = Field(
        alias="_type_",
        pattern=BLOCK_TYPE,
        description=(
            "The registry key of the block, such as 'nn.Linear' or 'my_project.token_mixer', "
            "or 'graph:NAME' for a sub-graph defined under model.graphs."
        ),
        examples=["nn.Linear", "graph:encoder_layer"],
    )
    repeat_: Annotated[
        int | Annotated[str, Field(pattern=INTERPOLATION)] | None, BeforeValidator(_repeat_count)
    ] = Field(
        default=None,
        alias="_repeat_",
        description=(
            "Build this many copies, each with its own weights, applied in sequence: the output "
            "of copy i is the first argument of copy i+1. State_dict keys are NAME.0. to NAME.{N-1}.; "
            "${index} in the arguments is the copy's index."
        ),
        examples=[6, "${params.depth}"],
    )

    @model_validator(mode="before")
    @classmethod
    def _nest_block_specs(cls, data: Any) -> Any:
        # Keep nested block specs as ModuleSpec objects, so Python-built and YAML-built
        # specs look the same to the checker and dump the same way. Most modules nest none:
        # they are passed on as they are (this runs once per module of a spec, so the usual
        # values are told apart by their exact type first: `isinstance` costs twice as much).
        if not isinstance(data, dict):
            return data
        for value in data.values():
            if type(value) not in PLAIN_ARGUMENT_TYPES and isinstance(value, (dict, list)):
                break
        else:
            return data
        errors: list[InitErrorDetails] = []
        nested = {
            key: item if key in ("_type_", "type_") else _nested(item, (key,), errors)
            for key, item in data.items()
        }
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return nested

    @property
    def kwargs(self) -> dict[str, Any]:
        """The constructor arguments, as written."""
        return dict(self.model_extra or {})

    @property
    def subgraph(self) -> str | None:
        """The sub-graph's name when `_type_` is 'graph:NAME'."""
        return self.type_[len(SUBGRAPH_PREFIX) :] if self.type_.startswith(SUBGRAPH_PREFIX) else None


def _nested(value: Any, loc: tuple[str | int, ...], errors: list[InitErrorDetails]) -> Any:
    """`value` with its block specs as ModuleSpecs; their faults go to `errors`, at their `loc`
    below the module (pydantic would place a validator's error at the module's own keys)."""
    if isinstance(value, dict) and "_type_" in value:
        try:
            return ModuleSpec.model_validate(value)
        except ValidationError as exc:
            errors += [
                {
                    "type": PydanticCustomError(error["type"], error["msg"]),
                    "loc": (*loc, *error["loc"]),
                    "input": error["input"],
                }
                for error in exc.errors(include_url=False)
            ]
            return value
    if isinstance(value, list):
        return [_nested(item, (*loc, index), errors) for index, item in enumerate(value)]
    return value


class NodeSpec(_Section):
    """One call in the forward pass. Its result is available to later nodes as `$name`."""

    call: str = Field(
        pattern=CALL,
        description=(
            "What to call: 'module:NAME' (a module of this graph), 'fn:KEY' (a registered "
            "function such as 'fn:torch.add') or 'method:NAME' (a tensor method on the first argument)."
        ),
        examples=["module:proj", "fn:torch.add", "method:transpose"],
    )
    args: list[Any] = Field(
        default_factory=list,
        description="Positional arguments. '$name' is a graph input or node output, '$name.0' indexes it.",
        examples=[["$x"], ["$h1", "$h2"]],
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments, which may also hold '$refs'.",
        examples=[{"dim": -1}],
    )


class GraphSpec(_Section):
    """A dataflow graph: named inputs, the modules it owns, and the nodes that call them."""

    inputs: list[str] = Field(
        description="Names of the forward arguments, in order.",
        examples=[["x"], ["x", "mask"]],
    )
    modules: dict[str, ModuleSpec] = Field(
        default_factory=dict,
        description="Module name -> block spec. Names become attribute and state_dict prefixes.",
    )
    nodes: dict[str, NodeSpec] = Field(description="Node name -> one call.")
    order: list[str] | None = Field(
        default=None,
        description="Execution order of all nodes. When absent, a deterministic topological order.",
    )
    outputs: list[str] | dict[str, str] = Field(
        description="'$refs' to return: a list (for single or tuple) or a mapping (for dict).",
        examples=[["$h2"], {"logits": "$h5", "hidden": "$h1"}],
    )
    return_: Literal["single", "tuple", "dict"] = Field(
        default="single",
        alias="return",
        description="How outputs are returned: one value, a tuple, or a dict.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ArgSpec(_Section):
    """One argument of a sub-graph: its type, and a default that makes it optional."""

    type: Literal["int", "float", "bool", "str", "list", "dict", "any"] = Field(
        description="The argument's type, checked strictly: '128' is not an int.",
    )
    default: Any = Field(
        default=None,
        description="The value when an instance leaves the argument out. Without one it is required.",
    )
    description: str | None = Field(default=None, description="What the argument means.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `width: int` is short for `width: {type: int}`.
        return {"type": data} if isinstance(data, str) else data

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set

    @model_serializer(mode="wrap")
    def _default_if_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A written default makes the argument optional, whatever its value: `default: null`
        # equals the field's own default, which `to_data` leaves out, and the spec read back
        # (a pickled model, `build_model(model.spec)`) would require the argument.
        data: dict[str, Any] = handler(self)
        if not self.required:
            data.setdefault("default", self.default)
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Editors must accept the shorthand `width: int` that _shorthand reads.
        full = handler(core_schema)
        return {"description": full.get("description"), "anyOf": [full, {"enum": list(ARG_TYPES)}]}


class SubgraphSpec(GraphSpec):
    """A graph defined once and used as a block: `_type_: graph:NAME`, any number of times.

    Its own arguments are used in its body as ${args.NAME}; each instance passes them like
    a block's keyword arguments, checked against `args`.
    """

    args: dict[str, ArgSpec] = Field(
        default_factory=dict,
        description="Arguments an instance passes, by name: a type ('int') or {type, default, description}.",
        examples=[{"width": "int", "dropout": {"type": "float", "default": 0.0}}],
    )


def _graph_or_instance_schema(schema: dict[str, Any]) -> None:
    # `_type_` decides, as in _graph_or_instance. A `oneOf` would report any fault inside the
    # graph as "not valid under any of the given schemas" at `model.graph`; if/then/else lets
    # a validator (and an editor) report it where it is.
    graph, instance = schema.pop("oneOf")
    schema.update({"if": {"required": ["_type_"]}, "then": instance, "else": graph})


def _graph_or_instance(value: Any) -> str:
    # The tags hold brackets so that error paths leave them out, as other union tags
    # (load.py `_data_path`).
    if isinstance(value, ModuleSpec) or (isinstance(value, dict) and "_type_" in value):
        return "[instance]"
    return "[graph]"


class ModelSection(_Section):
    """The model to build."""

    graphs: dict[str, SubgraphSpec] = Field(
        default_factory=dict,
        description="Reusable sub-graphs by name, used as modules with `_type_: graph:NAME`.",
    )
    graph: Annotated[
        Annotated[GraphSpec, Tag("[graph]")] | Annotated[ModuleSpec, Tag("[instance]")],
        Discriminator(_graph_or_instance),
    ] = Field(
        description=(
            "The top-level graph; its modules are the model's children. Or an instance of a "
            "sub-graph, `{_type_: graph:NAME, ...args}`, whose modules then are the model's "
            "children (so one file can offer variants, chosen by a param)."
        ),
        json_schema_extra=_graph_or_instance_schema,
    )

    @property
    def top_graph(self) -> GraphSpec | None:
        """The graph whose modules are the model's children: `graph`, or the sub-graph it
        instantiates (None if no sub-graph of that name is defined)."""
        if isinstance(self.graph, GraphSpec):
            return self.graph
        return self.graphs.get(self.graph.subgraph or "")


class ModelSpec(_Section):
    """A model_constructor spec: a PyTorch model described as data."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    schema_version: Annotated[Literal[1], BeforeValidator(_exact_int)] = Field(
        description="Version of the spec language. This release reads version 1.",
        examples=[1],
    )
    settings: Settings = Field(default_factory=Settings, description="Loading settings.")
    imports: list[str] = Field(
        default_factory=list,
        description="Modules to import; each must define register(registry).",
        examples=[["my_project.model_blocks"]],
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Named values that the rest of the spec uses as ${params.name}.",
        examples=[{"width": 128, "dropout": 0.1}],
    )
    model: ModelSection = Field(description="The model to build.")

    def to_data(self) -> dict[str, Any]:
        """Plain data in the YAML layout (`_type_`, `return`), which `model_validate` reads back."""
        return self.model_dump(by_alias=True, exclude_defaults=True, mode="python")
