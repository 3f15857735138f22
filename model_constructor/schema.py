"""The registry-aware JSON schema: `ModelSpec`'s schema, with every block's arguments checked.

`ModelSpec.model_json_schema()` describes the sections of a spec, but a module spec there is
an open mapping: pydantic cannot know which arguments `nn.Linear` takes. This module replaces
that mapping with one schema per registry key, derived from the same pydantic signature
models the checker validates against, so an editor completes and checks each block's
arguments, custom blocks included.

NOTE: [Editor schema shape]
yaml-language-server (the server behind VS Code's YAML extension) handles some JSON Schema
shapes better than others; design §6 records what was measured, and 1.25.0 was measured
again against this schema (docs/editor.md). We use:
- `_type_` as an `enum` of every key, plus one `if: {_type_: const KEY}` / `then: $ref` per
  key. A `oneOf` of branches with a `const` `_type_` validates the same but completes only
  the best-matching branch's key; `discriminator` is ignored by the server. The enum sits in
  an `anyOf` beside `graph:NAME` and `${...}`; completion still offers every key.
- `additionalProperties: false` in each strict block's schema: without it a misspelled
  optional argument (`bais: true`) passes.
- One `$defs` entry per block (`block:nn.Linear`), referenced from its `then`, so each block's
  schema is written once: about 250 kB of compact JSON for the 160-odd `nn.*` blocks.
- Every typed value also accepts a `${...}` string, since interpolation runs before
  validation: a file that loads is never flagged for using one. Where the value may be a
  string, any string holding a `${...}` (`graph:${params.layer}`); elsewhere only a whole
  `${...}`, which keeps its type. In the spec's sections only scalars such as `return` get
  the alternative: a union around a whole section would report every fault inside it at the
  section. The two `${...}` definitions have no description, which the server's hover would
  show instead of the argument's.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic
import torch
from pydantic import TypeAdapter

from .imports import effective_prefixes, import_blocks
from .load import load
from .registry import Entry, Registry
from .signatures import FACTORY_KWARGS, signature_of
from .source import SourceMap
from .spec import ARG_TYPES, INTERPOLATION, SUBGRAPH_PREFIX, ModelSpec, ModuleSpec, SubgraphSpec

Schema = dict[str, Any]

MODULE_SPEC = ModuleSpec.__name__
INTERPOLATION_DEF = "Interpolation"
CONTAINS_INTERPOLATION_DEF = "ContainsInterpolation"
CONTAINS_INTERPOLATION = r"\$\{.*\}"
SUBGRAPH_DEF = "SubgraphInstance"
_MODULE_REF: Schema = {"$ref": f"#/$defs/{MODULE_SPEC}"}
_INTERPOLATION_REF: Schema = {"$ref": f"#/$defs/{INTERPOLATION_DEF}"}
_CONTAINS_INTERPOLATION_REF: Schema = {"$ref": f"#/$defs/{CONTAINS_INTERPOLATION_DEF}"}
SUBGRAPH_TYPE = "^" + re.escape(SUBGRAPH_PREFIX) + "[A-Za-z_][A-Za-z0-9_]*$"
# Keys whose value says what kind of value it is: a schema holding one constrains its value.
_CONSTRAINING = ("type", "enum", "const", "$ref", "anyOf", "oneOf", "pattern")
_ARBITRARY_TYPES = pydantic.ConfigDict(arbitrary_types_allowed=True)


def json_schema(
    imports: Sequence[str] = (),
    allowed_import_prefixes: Sequence[str] | None = None,
    registry: Registry | None = None,
    graphs: Mapping[str, SubgraphSpec] | None = None,
) -> Schema:
    """The JSON schema (Draft 2020-12) of a spec whose blocks come from the built-ins,
    `registry`, and the modules named in `imports` (each with its `register(registry)`).

    `imports` are the caller's own choice, so they are imported as given; pass
    `allowed_import_prefixes` to hold them to a trust boundary as a spec's imports are.
    `graphs` (a spec's `model.graphs`, see `spec_schema`) adds one schema per sub-graph, so
    `_type_: graph:NAME` instances are checked against that sub-graph's `args`.
    Raises SpecError when an import is refused or fails.
    """
    blocks = Registry.with_builtins()
    if registry is not None:
        blocks.update(registry)
    import_blocks(list(imports), blocks, allowed_import_prefixes, SourceMap(), {})

    schema = ModelSpec.model_json_schema()
    defs: dict[str, Schema] = schema["$defs"]
    # The keys a module spec has besides its arguments (`_type_`, `_repeat_`), from the model.
    own = defs[MODULE_SPEC]["properties"]
    for section in [schema, *defs.values()]:
        _accept_interpolation_in_scalars(section)  # see NOTE: [Editor schema shape]
    keys = blocks.keys("module")
    for key in keys:
        entry = blocks.get("module", key)
        assert entry is not None  # listed by keys()
        defs[_block_def(key)] = _block_schema(entry, own)
    defs[SUBGRAPH_DEF] = subgraph_instance_schema(own)
    for name, definition in (graphs or {}).items():
        defs[_block_def(SUBGRAPH_PREFIX + name)] = _subgraph_schema(name, definition, own)
    subgraph_keys = [SUBGRAPH_PREFIX + name for name in graphs or {}]
    defs[MODULE_SPEC] = _module_spec_schema(defs[MODULE_SPEC], keys, subgraph_keys)
    # No descriptions: see NOTE: [Editor schema shape].
    defs[INTERPOLATION_DEF] = {
        "type": "string",
        "pattern": INTERPOLATION,
        "$comment": "A whole-value ${...} interpolation, resolved before the spec is validated.",
    }
    defs[CONTAINS_INTERPOLATION_DEF] = {
        "type": "string",
        "pattern": CONTAINS_INTERPOLATION,
        "$comment": "A string with a ${...} in it, which may satisfy a pattern once resolved.",
    }
    return schema


def _block_def(key: str) -> str:
    return f"block:{key}"


def spec_schema(
    path: str | Path,
    imports: Sequence[str] = (),
    allowed_import_prefixes: Sequence[str] | None = None,
) -> Schema:
    """`json_schema` for one spec file: its imports' blocks (held to its trust boundary, as
    a build would), the caller's own `imports`, and the file's sub-graphs with their args."""
    loaded = load(path)
    spec = loaded.spec
    callers = Registry()
    import_blocks(list(imports), callers, None, SourceMap(), {})
    prefixes = effective_prefixes(loaded, allowed_import_prefixes)
    return json_schema(spec.imports, prefixes, registry=callers, graphs=spec.model.graphs)


def _subgraph_schema(name: str, definition: SubgraphSpec, own: Schema) -> Schema:
    """The arguments of `_type_: graph:NAME`, from the sub-graph's declared `args`."""
    properties: Schema = dict.fromkeys(own, True)
    for arg_name, arg in definition.args.items():
        value = _accepting_interpolation(_annotation_schema(ARG_TYPES[arg.type]))
        described = {"description": arg.description} if arg.description else {}
        if not arg.required and _is_json(arg.default):
            described["default"] = arg.default
        properties[arg_name] = {**described, **value}
    schema: Schema = {
        "type": "object",
        "title": SUBGRAPH_PREFIX + name,
        "description": f"An instance of the sub-graph model.graphs.{name}.",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [arg_name for arg_name, arg in definition.args.items() if arg.required]
    if required:
        schema["required"] = required
    return schema


def _module_spec_schema(written: Schema, keys: list[str], subgraph_keys: list[str]) -> Schema:
    """The module spec: `_type_` chooses, through one if/then per key, its arguments' schema."""
    type_schema = {
        key: value for key, value in written["properties"]["_type_"].items() if key not in _CONSTRAINING
    }
    type_schema["anyOf"] = [
        {"enum": [*keys, *subgraph_keys]},
        {"type": "string", "pattern": SUBGRAPH_TYPE},
        _CONTAINS_INTERPOLATION_REF,  # such as graph:${params.layer}
    ]
    properties = dict(written["properties"])
    properties["_type_"] = type_schema
    branches: list[Schema] = [
        {
            "if": {"properties": {"_type_": {"const": key}}, "required": ["_type_"]},
            "then": {"$ref": f"#/$defs/{_block_def(key)}"},
        }
        for key in [*keys, *subgraph_keys]
    ]
    # A sub-graph this schema does not know (no spec given, or an interpolated name).
    unknown_subgraph: Schema = {"pattern": SUBGRAPH_TYPE}
    if subgraph_keys:
        unknown_subgraph["not"] = {"enum": subgraph_keys}
    branches.append(
        {
            "if": {"properties": {"_type_": unknown_subgraph}, "required": ["_type_"]},
            "then": {"$ref": f"#/$defs/{SUBGRAPH_DEF}"},
        }
    )
    schema = {
        key: value for key, value in written.items() if key not in ("properties", "additionalProperties")
    }
    schema["properties"] = properties
    schema["allOf"] = branches
    return schema


def subgraph_instance_schema(own: Schema) -> Schema:
    """HOOK: the arguments of a module whose `_type_` is `graph:NAME` (a YAML sub-graph).

    A sub-graph's arguments are declared in the spec file itself (`model.graphs.NAME.args`),
    not in the registry, so a schema made from the registry alone cannot list them: any
    arguments are accepted. A spec-aware schema would put one definition per sub-graph here.
    """
    return {
        "type": "object",
        "description": "An instance of a sub-graph defined under model.graphs; its arguments are "
        "checked against that sub-graph's args when the spec is loaded.",
        "properties": dict.fromkeys(own, True),
    }


def _block_schema(entry: Entry, own: Schema) -> Schema:
    """The schema of one block's arguments, from the signature the checker validates them with."""
    policy = entry.signature_policy
    # Policy "none" checks nothing, but the names still help completion.
    signature = signature_of(entry.target, "lax" if policy == "none" else policy)
    summary, documented = _docstring(entry.target)
    inspected = signature.inspected
    properties: Schema = dict.fromkeys(own, True)
    required: list[str] = []
    for name, param in signature.parameters.items():
        described: Schema = {}
        if name in documented:
            described["description"] = documented[name]
        default = inspected.parameters[name].default if inspected is not None else inspect.Parameter.empty
        if _is_json(default):
            described["default"] = json.loads(json.dumps(default))  # a tuple becomes a list
        value = (
            {}
            if policy == "none"
            else _accepting_interpolation(_annotation_schema(param.annotation, param.validator))
        )
        if policy == "lax" and value:
            # lax coerces strings ('128' to 128), so a string is never wrong in itself.
            value = {"anyOf": [*value.get("anyOf", [value]), {"type": "string"}]}
        properties[name] = {**described, **value}
        if param.required and name not in FACTORY_KWARGS:
            required.append(name)
    described_block = summary or f"Block {entry.key!r}."
    schema: Schema = {
        "type": "object",
        "title": entry.key,
        "description": f"{described_block}\n\n{entry.key}: {entry.import_path} (signature policy {policy})",
        "properties": properties,
    }
    if required and policy != "none":
        schema["required"] = required
    if not signature.accepts_extra and policy != "none":
        schema["additionalProperties"] = False
    return schema


def _annotation_schema(annotation: Any, validator: TypeAdapter[Any] | None = None) -> Schema:
    """What a value for `annotation` looks like in YAML; `{}` (anything) when JSON cannot say.

    A module class becomes a nested block spec. Pydantic writes the schema where it can;
    where it cannot (tensors, callables, nn.Module), the annotation is taken apart here.
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, torch.nn.Module):
        return dict(_MODULE_REF)
    try:
        adapter = validator or TypeAdapter(annotation, config=_ARBITRARY_TYPES)
        return _inline_refs(adapter.json_schema())
    except (pydantic.PydanticInvalidForJsonSchema, pydantic.PydanticUserError, TypeError):
        pass  # a type pydantic cannot describe (or not validate): taken apart below
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _annotation_schema(args[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [_annotation_schema(arg) for arg in args]
        return {} if any(not m for m in members) else {"anyOf": members}
    if isinstance(origin, type) and issubclass(origin, Iterable) and not issubclass(origin, (str, dict)):
        items = _annotation_schema(args[0]) if len(args) == 1 else {}
        return {"type": "array", "items": items} if items else {"type": "array"}
    return {}


def _inline_refs(schema: Schema) -> Schema:
    """`schema` with its own `$defs` substituted into place, so it can sit inside another schema."""
    defs: dict[str, Schema] = schema.pop("$defs", {})

    def resolve(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.rpartition("/")[2]
            if name in seen or name not in defs:
                return {}  # recursive: left open rather than expanded forever
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return resolve({**defs[name], **rest}, seen | {name})
        return {key: resolve(value, seen) for key, value in node.items()}

    resolved: Schema = resolve(schema, frozenset())
    return resolved


def _accepting_interpolation(schema: Schema) -> Schema:
    """`schema`, where it and every value inside it also accept a `${...}` string.

    A value that may be a string takes any string holding a `${...}` (`graph:${params.layer}`
    is a `_type_` once resolved); any other, only a whole-value `${...}`, which keeps its type.
    """
    schema = _children_accepting_interpolation(schema)
    if not any(key in schema for key in _CONSTRAINING) or _accepts_interpolation(schema):
        return schema
    annotations = {k: v for k, v in schema.items() if k in ("title", "description", "default", "examples")}
    constraint = {k: v for k, v in schema.items() if k not in annotations}
    members = constraint["anyOf"] if list(constraint) == ["anyOf"] else [constraint]
    alternative = _CONTAINS_INTERPOLATION_REF if _may_be_string(schema) else _INTERPOLATION_REF
    return {**annotations, "anyOf": [*members, alternative]}


def _children_accepting_interpolation(schema: Schema) -> Schema:
    """A copy of `schema` whose items and properties accept `${...}`; a union's members are
    taken apart the same way but not wrapped themselves: the union gets one alternative."""
    out = dict(schema)
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _accepting_interpolation(out[key])
    if isinstance(out.get("prefixItems"), list):
        out["prefixItems"] = [_accepting_interpolation(item) for item in out["prefixItems"]]
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _accepting_interpolation(v) for k, v in out["properties"].items()}
    for key in ("anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_children_accepting_interpolation(member) for member in out[key]]
    return out


def _accepts_interpolation(schema: Schema) -> bool:
    """Whether `schema` already takes `${...}` strings: an unconstrained string, or one of ours."""
    if "anyOf" in schema:
        return any(_accepts_interpolation(member) for member in schema["anyOf"])
    if schema.get("$ref") in (_INTERPOLATION_REF["$ref"], _CONTAINS_INTERPOLATION_REF["$ref"]):
        return True
    if schema.get("pattern") in (INTERPOLATION, CONTAINS_INTERPOLATION):
        return True
    return schema.get("type") == "string" and not ({"enum", "const", "pattern", "format"} & set(schema))


def _may_be_string(schema: Schema) -> bool:
    if "anyOf" in schema:
        return any(_may_be_string(member) for member in schema["anyOf"])
    values = schema.get("enum", [schema["const"]] if "const" in schema else [])
    return schema.get("type") == "string" or any(isinstance(value, str) for value in values)


def _is_scalar(schema: Schema) -> bool:
    if "anyOf" in schema:
        return all(_is_scalar(member) for member in schema["anyOf"])
    return schema.get("type") in ("string", "integer", "number", "boolean", "null") or (
        "type" not in schema and ("enum" in schema or "const" in schema)
    )


def _accept_interpolation_in_scalars(section: Schema) -> None:
    properties = section.get("properties")
    if isinstance(properties, dict):
        for name, value in properties.items():
            if isinstance(value, dict) and _is_scalar(value):
                properties[name] = _accepting_interpolation(value)


def _is_json(value: Any) -> bool:
    if value is inspect.Parameter.empty:
        return False
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


# ---- docstrings ---------------------------------------------------------------------------

_ARG_SECTIONS = ("Args:", "Arguments:", "Parameters:", "Keyword Arguments:", "Keyword args:")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _docstring(target: Callable[..., Any]) -> tuple[str | None, dict[str, str]]:
    """The first paragraph of `target`'s own docstring, and its Google-style `Args:` entries.

    Only the class's own docstring: `nn.Module`'s, which every block inherits, says nothing
    about the block.
    """
    doc = vars(target).get("__doc__") if isinstance(target, type) else getattr(target, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip():
            break
        summary.append(line.strip())
    return " ".join(summary) or None, _arguments(lines)


def _arguments(lines: list[str]) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    section_indent: int | None = None
    entry_indent: int | None = None
    current: list[str] | None = None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if section_indent is None:
            if text in _ARG_SECTIONS:
                section_indent, entry_indent, current = indent, None, None
            continue
        if not text:
            current = None
            continue
        if indent <= section_indent:
            # Another section starts; a later Args: section may follow.
            section_indent = indent if text in _ARG_SECTIONS else None
            entry_indent, current = None, None
            continue
        if entry_indent is None:
            entry_indent = indent
        match = _ARG_LINE.match(text)
        if indent == entry_indent and match is not None:
            current = found.setdefault(match.group(1).lstrip("*"), [])
            current.append(match.group(2))
        elif indent > entry_indent and current is not None:
            current.append(text)
    return {name: " ".join(words).strip() for name, words in found.items() if any(words)}
