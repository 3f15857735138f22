"""Build PyTorch models from YAML specs, with every error located in the file.

>>> from model_constructor import build_model
>>> model = build_model("configs/models/my_model.yaml")
"""

from .build import build_model, load_spec
from .errors import SpecError, SpecWarning
from .model import BuiltModel
from .registry import Registry
from .spec import ArgSpec, GraphSpec, ModelSection, ModelSpec, ModuleSpec, NodeSpec, Settings, SubgraphSpec

__all__ = [
    "ArgSpec",
    "BuiltModel",
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
    "load_spec",
]
