"""The JSON schema of a spec: valid Draft 2020-12, fully described, and true to the examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from model_constructor import (
    ArgSpec,
    GraphSpec,
    ModelSection,
    ModelSpec,
    ModuleSpec,
    NodeSpec,
    Settings,
    SubgraphSpec,
)
from model_constructor.source import load_yaml_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for pattern in ("*.yaml", "*.yml") for p in (ROOT / "examples").rglob(pattern))
SECTION_MODELS = [ModelSpec, Settings, ModelSection, GraphSpec, SubgraphSpec, ArgSpec, ModuleSpec, NodeSpec]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(ModelSpec.model_json_schema())


def _seed_tree() -> Any:
    return load_yaml_file(ROOT / "examples" / "seed" / "configs" / "models" / "my_model.yaml").tree


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(ModelSpec.model_json_schema())


@pytest.mark.parametrize("model", SECTION_MODELS, ids=lambda m: m.__name__)
def test_schema_every_field_has_a_description(model: type[BaseModel]) -> None:
    assert model.__doc__
    assert {name: bool(field.description) for name, field in model.model_fields.items()} == dict.fromkeys(
        model.model_fields, True
    )


def test_schema_every_property_has_a_description() -> None:
    schema = ModelSpec.model_json_schema()
    objects = {"ModelSpec": schema, **schema["$defs"]}

    def description(prop: dict[str, Any]) -> str | None:
        # pydantic leaves out a field's description when it repeats its model's docstring.
        if "description" in prop or "$ref" not in prop:
            return prop.get("description")
        return objects[prop["$ref"].rpartition("/")[2]].get("description")

    undescribed = [
        f"{name}.{key}"
        for name, definition in objects.items()
        for key, prop in definition.get("properties", {}).items()
        if not description(prop)
    ]
    assert undescribed == []
    assert sorted(objects) == sorted(m.__name__ for m in SECTION_MODELS)
    assert {name: bool(d.get("description")) for name, d in objects.items()} == dict.fromkeys(objects, True)


def test_schema_examples_exist() -> None:
    assert ROOT / "examples" / "seed" / "configs" / "models" / "my_model.yaml" in EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_schema_accepts_example(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    tree = load_yaml_file(path).tree

    assert [error.message for error in validator.iter_errors(tree)] == []


@pytest.mark.parametrize(
    ("where", "right", "wrong"),
    [
        ((), "params", "parmas"),
        (("model", "graph"), "modules", "modles"),
        (("model", "graph"), "order", "ordr"),
        (("settings",), "allowed_import_prefixes", "allowed_imports"),
        (("model", "graph", "nodes", "h1"), "args", "arg"),
    ],
)
def test_schema_rejects_misspelled_key(
    validator: jsonschema.Draft202012Validator, where: tuple[str, ...], right: str, wrong: str
) -> None:
    tree = _seed_tree()
    parent = tree
    for part in where:
        parent = parent[part]
    parent[wrong] = parent.pop(right)

    errors = list(validator.iter_errors(tree))

    assert [(list(e.absolute_path), e.message) for e in errors] == [
        (list(where), f"Additional properties are not allowed ({wrong!r} was unexpected)")
    ]


_DELETE = object()
_DOTTED = ModelSpec.model_json_schema()["$defs"]["ModuleSpec"]["properties"]["_type_"]["pattern"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["schema_version"], 2, "1 was expected"),
        (["model", "graph", "return"], "list", "'list' is not one of ['single', 'tuple', 'dict']"),
        (
            ["model", "graph", "nodes", "h1", "call"],
            "proj",
            "'proj' does not match '^(module|fn|method):[A-Za-z_][A-Za-z0-9_.]*$'",
        ),
        (["model", "graph", "modules", "proj", "_type_"], "nn Linear", None),
        (["model", "graph", "inputs"], "x", "'x' is not of type 'array'"),
        (["model", "graph"], _DELETE, "'graph' is a required property"),
    ],
    ids=["schema_version", "return", "call", "type", "inputs", "missing-graph"],
)
def test_schema_rejects_invalid_value(
    validator: jsonschema.Draft202012Validator, path: list[str], value: Any, message: str | None
) -> None:
    tree = _seed_tree()
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    if value is _DELETE:
        del parent[path[-1]]
        path = path[:-1]
    else:
        parent[path[-1]] = value

    errors = [(list(e.absolute_path), e.message) for e in validator.iter_errors(tree)]

    assert errors == [(path, message or f"{value!r} does not match {_DOTTED!r}")]
