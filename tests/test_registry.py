"""The registry: keys, conflicts, signature policies, per-build scope and the built-ins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import build_checked, write_spec

from model_constructor import Registry, SpecError

# ---- blocks and functions used below --------------------------------------------------------


class Recorder(torch.nn.Module):
    """Keeps the arguments its constructor received, to compare them with what was written."""

    def __init__(self, *, width: int, size: tuple[int, int] = (1, 1), rate: float = 0.5):
        super().__init__()
        self.received = {"width": width, "size": size, "rate": rate}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class OpenRecorder(torch.nn.Module):
    def __init__(self, *, width: int, **options: Any):
        super().__init__()
        self.received = {"width": width, **options}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Other(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return x * factor


def other_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return x * factor


def _single_block(key: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "model": {
            "graph": {
                "inputs": ["x"],
                "modules": {"block": {"_type_": key, **kwargs}},
                "nodes": {"out": {"call": "module:block", "args": ["$x"]}},
                "outputs": ["$out"],
            }
        },
    }


# ---- registering ----------------------------------------------------------------------------


def test_registry_same_object_twice_is_a_no_op() -> None:
    registry = Registry()
    assert registry.register_module("test.recorder", Recorder) is Recorder
    assert registry.register_module("test.recorder", Recorder) is Recorder
    assert registry.register_function("test.scale", scale) is scale
    assert registry.register_function("test.scale", scale) is scale

    assert registry.keys("module") == ["test.recorder"]
    assert registry.keys("function") == ["test.scale"]
    assert registry.get("module", "test.recorder").target is Recorder  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (
            ("module", Recorder, "strict"),
            ("module", Other, "strict"),
            "module key 'test.key' is already registered to {module}.Recorder (policy 'strict'); "
            "cannot register {module}.Other (policy 'strict') under it",
        ),
        (
            ("module", Recorder, "strict"),
            ("module", Recorder, "lax"),
            "module key 'test.key' is already registered to {module}.Recorder (policy 'strict'); "
            "cannot register {module}.Recorder (policy 'lax') under it",
        ),
        (
            ("function", scale, "strict"),
            ("function", other_scale, "strict"),
            "function key 'test.key' is already registered to {module}.scale (policy 'strict'); "
            "cannot register {module}.other_scale (policy 'strict') under it",
        ),
    ],
    ids=["other-class", "other-policy", "other-function"],
)
def test_registry_taken_key_is_an_error_naming_both(
    first: tuple[str, Any, str], second: tuple[str, Any, str], message: str
) -> None:
    registry = Registry()

    def register(kind: str, target: Any, policy: Any) -> None:
        method = registry.register_module if kind == "module" else registry.register_function
        method("test.key", target, signature_policy=policy)

    register(*first)
    with pytest.raises(ValueError) as info:
        register(*second)

    assert str(info.value) == message.format(module=__name__)
    assert registry.get(first[0], "test.key").target is first[1]  # type: ignore[arg-type, union-attr]


def test_registry_module_and_function_keys_are_separate() -> None:
    registry = Registry()
    registry.register_module("test.same", Recorder)
    registry.register_function("test.same", scale)

    assert registry.get("module", "test.same").target is Recorder  # type: ignore[union-attr]
    assert registry.get("function", "test.same").target is scale  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda r: r.register_module("test.bad key", Recorder),
            "invalid registry key 'test.bad key': use dotted identifiers such as 'my_project.token_mixer'",
        ),
        (
            lambda r: r.register_module("test.recorder", Recorder, signature_policy="loose"),
            "invalid signature_policy 'loose' for 'test.recorder'; expected one of strict, lax, none",
        ),
    ],
    ids=["key", "policy"],
)
def test_registry_invalid_registration_is_value_error(call: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        call(Registry())
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda r: r.register_module("test.fn", scale),
            "register_module('test.fn', ...) needs an nn.Module subclass, got {scale!r}",
        ),
        (
            lambda r: r.register_function("test.cls", Recorder),
            "register_function('test.cls', ...) needs a function, got {recorder!r}",
        ),
    ],
    ids=["function-as-module", "class-as-function"],
)
def test_registry_wrong_kind_is_type_error(call: Any, message: str) -> None:
    with pytest.raises(TypeError) as info:
        call(Registry())
    assert str(info.value) == message.format(scale=scale, recorder=Recorder)


def test_registry_decorator_form() -> None:
    registry = Registry()

    @registry.register_module("test.doubler")
    class Doubler(torch.nn.Module):
        def __init__(self, *, times: int):
            super().__init__()
            self.times = times

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.times

    @registry.register_function("test.shift", signature_policy="lax")
    def shift(x: torch.Tensor, by: float) -> torch.Tensor:
        return x + by

    assert isinstance(Doubler, type) and Doubler.__name__ == "Doubler"
    assert shift.__name__ == "shift"
    spec = _single_block("test.doubler", times=2)
    spec["model"]["graph"]["nodes"]["shifted"] = {
        "call": "fn:test.shift",
        "args": ["$out"],
        "kwargs": {"by": "1.5"},  # lax: coerced to 1.5
    }
    spec["model"]["graph"]["outputs"] = ["$shifted"]

    model = build_checked(spec, registry=registry)

    x = torch.arange(3.0)
    torch.testing.assert_close(model(x), x * 2 + 1.5, rtol=0, atol=0)


def test_registry_registered_function_is_callable_with_fn(tmp_path: Path) -> None:
    registry = Registry()
    registry.register_function("test.scale", scale)
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            nodes:
              y: {call: fn:test.scale, args: [$x], kwargs: {factor: 2.5}}
            outputs: [$y]
        """,
    )
    model = build_checked(path, registry=registry)

    assert model.code.strip().splitlines()[1] == (
        f"    y = {__name__.replace('.', '_')}_scale(x, factor = 2.5);  x = None"
    )
    x = torch.arange(4.0)
    torch.testing.assert_close(model(x), x * 2.5, rtol=0, atol=0)


def test_registry_function_strict_signature_checks_call_literals(tmp_path: Path) -> None:
    registry = Registry()
    registry.register_function("test.scale", scale)
    path = write_spec(
        tmp_path,
        """\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            nodes:
              y: {call: fn:test.scale, args: [$x], kwargs: {factor: "2.5"}}
            outputs: [$y]
        """,
    )
    with pytest.raises(SpecError) as info:
        build_checked(path, registry=registry)

    assert [d.headline() for d in info.value.diagnostics] == [
        f"{path}:6:61: error: model.graph.nodes.y.kwargs.factor: argument 'factor' of function "
        "'test.scale': Input should be a valid number, got '2.5' "
        "(strict blocks take numbers and booleans unquoted)"
    ]


class Scaler(torch.nn.Module):
    def forward(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        return x * factor


@pytest.mark.parametrize(
    ("policy", "written", "factor"),
    [("lax", '"2.5"', 2.5), ("lax", "2", 2.0), ("strict", "2", 2.0), ("none", "2.5", 2.5)],
)
def test_registry_call_literals_arrive_validated(
    tmp_path: Path, policy: Any, written: str, factor: float
) -> None:
    registry = Registry()
    registry.register_function("test.scale", scale, signature_policy=policy)
    registry.register_module("test.scaler", Scaler, signature_policy=policy)
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            modules:
              scaler: {{_type_: test.scaler}}
            nodes:
              by_fn: {{call: fn:test.scale, args: [$x, {written}]}}
              by_module: {{call: module:scaler, args: [$by_fn], kwargs: {{factor: {written}}}}}
            outputs: [$by_module]
        """,
    )
    model = build_checked(path, registry=registry)

    x = torch.arange(3.0)
    torch.testing.assert_close(model(x), x * factor * factor, rtol=0, atol=0)


# ---- signature policies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "kwargs", "received"),
    [
        ("strict", {"width": 128}, {"width": 128, "size": (1, 1), "rate": 0.5}),
        ("strict", {"width": 8, "size": [2, 3]}, {"width": 8, "size": (2, 3), "rate": 0.5}),
        ("strict", {"width": 8, "rate": 1}, {"width": 8, "size": (1, 1), "rate": 1.0}),
        ("lax", {"width": "128"}, {"width": 128, "size": (1, 1), "rate": 0.5}),
        ("lax", {"width": 8, "size": ["2", 3.0]}, {"width": 8, "size": (2, 3), "rate": 0.5}),
        ("lax", {"width": 8, "rate": "0.25"}, {"width": 8, "size": (1, 1), "rate": 0.25}),
        ("none", {"width": "128"}, {"width": "128", "size": (1, 1), "rate": 0.5}),
        ("none", {"width": 8, "size": [2, 3]}, {"width": 8, "size": [2, 3], "rate": 0.5}),
    ],
)
def test_registry_policy_passes_validated_values(
    policy: Any, kwargs: dict[str, Any], received: dict[str, Any]
) -> None:
    registry = Registry()
    registry.register_module("test.recorder", Recorder, signature_policy=policy)

    model = build_checked(_single_block("test.recorder", **kwargs), registry=registry)

    assert model.block.received == received
    assert {k: type(v) for k, v in model.block.received.items()} == {k: type(v) for k, v in received.items()}


@pytest.mark.parametrize(
    ("policy", "kwargs", "message"),
    [
        (
            "strict",
            {"width": "128"},
            "error: model.graph.modules.block.width: argument 'width' of block 'test.recorder': "
            "Input should be a valid integer, got '128' (strict blocks take numbers and booleans unquoted)",
        ),
        (
            "strict",
            {"width": 8, "size": [1, 2, 3]},
            "error: model.graph.modules.block.size: argument 'size' of block 'test.recorder': "
            "Tuple should have at most 2 items after validation, not 3, got (1, 2, 3)",
        ),
        (
            "lax",
            {"width": "wide"},
            "error: model.graph.modules.block.width: argument 'width' of block 'test.recorder': "
            "Input should be a valid integer, unable to parse string as an integer, got 'wide'",
        ),
        (
            "strict",
            {"width": 8, "colour": 2},
            "error: model.graph.modules.block.colour: unknown argument 'colour' for block "
            "'test.recorder' (valid arguments: width, size, rate)",
        ),
        (
            "lax",
            {"widht": 8},
            "error: model.graph.modules.block.widht: unknown argument 'widht' for block "
            "'test.recorder' (did you mean 'width'?)",
        ),
    ],
)
def test_registry_policy_rejects(policy: Any, kwargs: dict[str, Any], message: str) -> None:
    registry = Registry()
    registry.register_module("test.recorder", Recorder, signature_policy=policy)

    with pytest.raises(SpecError) as info:
        build_checked(_single_block("test.recorder", **kwargs), registry=registry)

    assert str(info.value) == message


def test_registry_policy_none_passes_anything_through() -> None:
    registry = Registry()
    registry.register_module("test.open", OpenRecorder, signature_policy="none")

    model = build_checked(
        _single_block("test.open", width="w", extra=[1, "2"], nested={"a": None}), registry=registry
    )

    assert model.block.received == {"width": "w", "extra": [1, "2"], "nested": {"a": None}}


@pytest.mark.parametrize("policy", ["strict", "lax"])
def test_registry_var_keyword_admits_extra_names(policy: Any) -> None:
    registry = Registry()
    registry.register_module("test.open", OpenRecorder, signature_policy=policy)

    model = build_checked(_single_block("test.open", width=4, colour="red", depth=3), registry=registry)

    assert model.block.received == {"width": 4, "colour": "red", "depth": 3}


# ---- per-build scope ------------------------------------------------------------------------


def test_registry_parameter_is_for_that_build_only() -> None:
    registry = Registry()
    registry.register_module("test.recorder", Recorder)
    spec = _single_block("test.recorder", width=3)

    model = build_checked(spec, registry=registry)

    assert model.block.received["width"] == 3
    assert registry.keys("module") == ["test.recorder"]  # built-ins were not added to it
    assert registry.keys("function") == []
    with pytest.raises(SpecError) as info:
        build_checked(spec)
    assert str(info.value) == (
        "error: model.graph.modules.block._type_: unknown block type 'test.recorder' "
        "(no block is registered under that key; is the module that registers it in imports?)"
    )


def test_registry_parameter_not_mutated_by_spec_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    module_name = "mc_test_registry_blocks"
    request.addfinalizer(lambda: sys.modules.pop(module_name, None))
    (tmp_path / f"{module_name}.py").write_text(
        textwrap.dedent(
            """\
            import torch

            def register(registry):
                registry.register_module("mc_test.identity", torch.nn.Identity)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        settings:
          allowed_import_prefixes: ["{module_name}"]
        imports: [{module_name}]
        model:
          graph:
            inputs: [x]
            modules:
              ident: {{_type_: mc_test.identity}}
              rec: {{_type_: test.recorder, width: 2}}
            nodes:
              a: {{call: module:ident, args: [$x]}}
              b: {{call: module:rec, args: [$a]}}
            outputs: [$b]
        """,
    )
    registry = Registry()
    registry.register_module("test.recorder", Recorder)

    build_checked(path, registry=registry)
    build_checked(path, registry=registry)  # the imports' register() runs again: a no-op

    assert registry.keys("module") == ["test.recorder"]


def test_registry_parameter_conflicting_with_spec_import_is_spec_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    module_name = "mc_test_registry_conflict"
    request.addfinalizer(lambda: sys.modules.pop(module_name, None))
    (tmp_path / f"{module_name}.py").write_text(
        "import torch\n\ndef register(registry):\n"
        "    registry.register_module('test.recorder', torch.nn.Identity)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        settings:
          allowed_import_prefixes: ["{module_name}"]
        imports: [{module_name}]
        model:
          graph:
            inputs: [x]
            modules:
              rec: {{_type_: test.recorder, width: 2}}
            nodes:
              b: {{call: module:rec, args: [$x]}}
            outputs: [$b]
        """,
    )
    registry = Registry()
    registry.register_module("test.recorder", Recorder)

    with pytest.raises(SpecError) as info:
        build_checked(path, registry=registry)

    assert [d.headline() for d in info.value.diagnostics] == [
        f"{path}:4:11: error: imports[0]: {module_name}.register(registry) failed: module key "
        f"'test.recorder' is already registered to {__name__}.Recorder (policy 'strict'); cannot "
        "register torch.nn.modules.linear.Identity (policy 'strict') under it"
    ]


# ---- built-ins ------------------------------------------------------------------------------


def test_registry_builtins_hold_every_nn_module_class() -> None:
    registry = Registry.with_builtins()
    expected = {
        f"nn.{name}": obj
        for name, obj in vars(torch.nn).items()
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and not name.startswith("_")
    }

    assert {key: registry.get("module", key).target for key in expected} == expected  # type: ignore[union-attr]
    assert {"nn.Linear", "nn.MultiheadAttention", "nn.LayerNorm", "nn.GELU", "nn.Sequential"} <= set(
        registry.keys("module")
    )


def test_registry_builtins_are_not_in_a_fresh_registry() -> None:
    assert Registry().keys("module") == []
    assert Registry().keys("function") == []


@pytest.mark.parametrize(
    "key", ["torch.add", "torch.cat", "torch.softmax", "torch.transpose", "F.gelu", "F.softmax", "F.linear"]
)
def test_registry_builtins_hold_curated_functions(key: str) -> None:
    namespace, _, name = key.partition(".")
    module = torch if namespace == "torch" else torch.nn.functional

    assert Registry.with_builtins().get("function", key).target is getattr(module, name)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "key", ["torch.load", "torch.save", "torch.from_file", "torch.hub", "F.load", "os.system"]
)
def test_registry_builtins_exclude_file_access(key: str) -> None:
    assert Registry.with_builtins().get("function", key) is None


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("torch.load", "did you mean 'torch.log'?"),
        ("torch.save", "did you mean 'torch.square'?"),
    ],
)
def test_registry_fn_call_to_unregistered_torch_function_is_spec_error(
    tmp_path: Path, key: str, hint: str
) -> None:
    path = write_spec(
        tmp_path,
        f"""\
        schema_version: 1
        model:
          graph:
            inputs: [x]
            nodes:
              y: {{call: fn:{key}, args: [$x]}}
            outputs: [$y]
        """,
    )
    with pytest.raises(SpecError) as info:
        build_checked(path)

    assert str(info.value) == (
        f"{path}:6:17: error: model.graph.nodes.y.call: unknown function '{key}' ({hint})\n"
        f" 6 |       y: {{call: fn:{key}, args: [$x]}}\n"
        f"   |                 ^{'~' * (len(key) + 2)}"
    )
