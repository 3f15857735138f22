"""Build PyTorch models from YAML specs, with every error located in the file.

>>> from model_constructor import build_model
>>> model = build_model("configs/models/my_model.yaml")
"""

from .build import build_model, load_spec
from .checkpoint import load_checkpoint, save_checkpoint
from .dump import dump_yaml
from .errors import CheckpointMismatchError, SpecError, SpecWarning
from .model import BuiltModel
from .registry import Registry
from .schema import json_schema, spec_schema
from .spec import ArgSpec, GraphSpec, ModelSection, ModelSpec, ModuleSpec, NodeSpec, Settings, SubgraphSpec

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
