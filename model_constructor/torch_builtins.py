"""The built-in registry entries: every `torch.nn` module class, and a curated list of functions.

The functions are an allowlist, not `dir(torch)`: a spec is untrusted input, and `torch`
also exports `load`, `save`, `from_file` and friends, which touch files. Everything here
is a pure tensor operation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import Registry

# Space-separated so the lists stay readable; each name is looked up on torch / F at import.
TORCH_FUNCTIONS = """
    abs add addmm baddbmm bmm ceil clamp cos cumsum div einsum erf exp floor log log1p matmul
    maximum minimum mul neg outer pow reciprocal round rsqrt sign sin sqrt square sub tanh
    amax amin argmax argmin logsumexp max mean min norm prod std sum var
    broadcast_to cat chunk concat flatten flip gather index_select masked_fill movedim narrow
    permute repeat_interleave reshape roll select split squeeze stack swapaxes take_along_dim
    tile transpose tril triu unbind unsqueeze where
    log_softmax relu sigmoid softmax
    full_like ones_like rand_like randn_like zeros_like
""".split()

FUNCTIONAL = """
    adaptive_avg_pool1d adaptive_avg_pool2d avg_pool1d avg_pool2d conv1d conv2d cosine_similarity
    dropout elu embedding gelu glu group_norm hardswish interpolate layer_norm leaky_relu linear
    log_softmax max_pool1d max_pool2d mish normalize one_hot pad relu relu6
    scaled_dot_product_attention selu sigmoid silu softmax softplus tanh
""".split()


def register(registry: Registry) -> None:
    for name in dir(torch.nn):
        obj = getattr(torch.nn, name)
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and not name.startswith("_"):
            registry.register_module(f"nn.{name}", obj, signature_policy="strict")
    for name in TORCH_FUNCTIONS:
        registry.register_function(f"torch.{name}", getattr(torch, name), signature_policy="strict")
    for name in FUNCTIONAL:
        registry.register_function(f"F.{name}", getattr(F, name), signature_policy="strict")
