"""Build the seed model from YAML, show it, and run it once.

In a real inference repo the first lines point at the submodule instead:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "third_party" / "model_constructor"))
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the model_constructor checkout

import torch  # noqa: E402

from model_constructor import build_model  # noqa: E402

model = build_model(HERE / "configs" / "models" / "my_model.yaml")
print(model)
model.eval()
with torch.no_grad():
    print(model(torch.randn(2, 128)).shape)
