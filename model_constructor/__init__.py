"""Build PyTorch models from YAML specs, with every error located in the file.

>>> from model_constructor import build_model
>>> model = build_model("configs/models/my_model.yaml")
"""

import typing as _typing

# NOTE: [Lazy public names]
# `import model_constructor` loads none of the package: each public name is imported from
# its module the first time it is read (a PEP 562 module `__getattr__`, as in SciPy's
# SPEC 1), so a program pays for the parts it uses. The build path alone needs pydantic,
# ruamel.yaml and most of our modules, about 60 ms on top of torch; the JSON schema, YAML
# dump, checkpoint and command-line code stay unloaded until asked for.
# `from model_constructor import build_model` works as before: the import statement reads
# the attribute. Pickles name the defining modules (`model_constructor.model`), never this
# one. mypy and editors read the imports under TYPE_CHECKING; `__getattr__` is hidden from
# them, or mypy would type any misspelt name as Any instead of reporting it.
if _typing.TYPE_CHECKING:
    from .build import build_model, load_spec
    from .checkpoint import load_checkpoint, save_checkpoint
    from .dump import dump_yaml
    from .errors import CheckpointMismatchError, SpecError, SpecWarning
    from .model import BuiltModel
    from .registry import Registry
    from .schema import json_schema, spec_schema
    from .spec import (
        ArgSpec,
        GraphSpec,
        ModelSection,
        ModelSpec,
        ModuleSpec,
        NodeSpec,
        Settings,
        SubgraphSpec,
    )

__all__ = [
    "ArgSpec",
    "BuiltModel",
    "CheckpointMismatchError",
    "GraphSpec",
    "ModelSection",
    "ModelSpec",
    "ModuleSpec",
    "NodeSpec",
    "Registry",
    "Settings",
    "SpecError",
    "SpecWarning",
    "SubgraphSpec",
    "build_model",
    "dump_yaml",
    "json_schema",
    "load_checkpoint",
    "load_spec",
    "save_checkpoint",
    "spec_schema",
]

# The imports above, as data: module -> the public names it defines.
_EXPORTS = {
    "build": ("build_model", "load_spec"),
    "checkpoint": ("load_checkpoint", "save_checkpoint"),
    "dump": ("dump_yaml",),
    "errors": ("CheckpointMismatchError", "SpecError", "SpecWarning"),
    "model": ("BuiltModel",),
    "registry": ("Registry",),
    "schema": ("json_schema", "spec_schema"),
    "spec": (
        "ArgSpec",
        "GraphSpec",
        "ModelSection",
        "ModelSpec",
        "ModuleSpec",
        "NodeSpec",
        "Settings",
        "SubgraphSpec",
    ),
}
_SOURCE = {name: module for module, names in _EXPORTS.items() for name in names}

if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """A public name, imported from its module on first use. See NOTE: [Lazy public names]."""
        module = _SOURCE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(f".{module}", __name__), name)
        globals()[name] = value  # later reads skip this function
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
