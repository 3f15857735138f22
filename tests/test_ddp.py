"""A built model trains under DistributedDataParallel and FSDP: 2 processes, gloo, localhost.

DDP: each rank builds the same spec, DDP wraps it, and each runs a training step on its own
half of a batch. DDP averages the gradients, so afterwards every rank must hold the same
gradients, equal to those of one process on the whole batch, and the same weights after
the optimizer step. The spec has a repeated sub-graph, so the inlined forward (see
codegen.py) is what DDP's hooks and bucketing see.

FSDP (`fully_shard`): the model is built on the meta device, sharded, then materialized
with `to_empty` and initialized, as docs/performance.md describes; its forward and gradients
must match the unsharded model with the same weights.
"""

from __future__ import annotations

import copy
import os
import socket
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model_constructor import build_model

pytestmark = pytest.mark.slow

WORLD_SIZE = 2
TIMEOUT_S = 240

SPEC: dict[str, Any] = {
    "schema_version": 1,
    "params": {"width": 8},
    "model": {
        "graphs": {
            "block": {
                "args": {"width": "int"},
                "inputs": ["x"],
                "modules": {
                    "norm": {"_type_": "nn.LayerNorm", "normalized_shape": "${args.width}"},
                    "fc": {
                        "_type_": "nn.Linear",
                        "in_features": "${args.width}",
                        "out_features": "${args.width}",
                    },
                },
                "nodes": {
                    "h": {"call": "module:norm", "args": ["$x"]},
                    "f": {"call": "module:fc", "args": ["$h"]},
                    "y": {"call": "fn:torch.add", "args": ["$x", "$f"]},
                },
                "outputs": ["$y"],
            }
        },
        "graph": {
            "inputs": ["x"],
            "modules": {
                "layers": {"_type_": "graph:block", "_repeat_": 2, "width": "${params.width}"},
                "head": {"_type_": "nn.Linear", "in_features": "${params.width}", "out_features": 1},
            },
            "nodes": {
                "h": {"call": "module:layers", "args": ["$x"]},
                "y": {"call": "module:head", "args": ["$h"]},
            },
            "outputs": ["$y"],
        },
    },
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _batch(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + rank)
    return torch.randn(4, 8, generator=generator), torch.randn(4, 1, generator=generator)


def _leave_together() -> None:
    """End a rank that passed, once both have.

    A rank that tears its group down while the other is still in its last collective makes
    gloo abort the other ("terminate called without an active exception"), and so, now and
    then, do gloo's own C++ destructors at interpreter exit even after a barrier (seen in CI
    here). So both wait for each other, then leave without running destructors: the OS
    closes the sockets. A rank that failed raises instead, and mp reports it.
    """
    dist.barrier()
    os._exit(0)


def _worker(rank: int, port: int) -> None:
    # Spawned: runs in a fresh process, and any exception fails the test through mp.
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
        model = build_model(SPEC)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        reference = copy.deepcopy(model)  # rank 0's weights, after DDP's broadcast
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)

        x, target = _batch(rank)
        torch.nn.functional.mse_loss(ddp(x), target).backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        gathered = [torch.empty_like(grads) for _ in range(WORLD_SIZE)]
        dist.all_gather(gathered, grads)
        for other in gathered[1:]:
            torch.testing.assert_close(other, gathered[0], rtol=0, atol=0)

        # One process, the whole batch: the mean of the per-rank losses, as DDP averages.
        losses = [torch.nn.functional.mse_loss(reference(b[0]), b[1]) for b in map(_batch, range(WORLD_SIZE))]
        (sum(losses) / WORLD_SIZE).backward()
        expected = torch.cat([p.grad.flatten() for p in reference.parameters() if p.grad is not None])
        torch.testing.assert_close(grads, expected)
        assert grads.numel() == sum(p.numel() for p in model.parameters())

        optimizer.step()
        weights = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.empty_like(weights) for _ in range(WORLD_SIZE)]
        dist.all_gather(gathered, weights)
        for other in gathered[1:]:
            torch.testing.assert_close(other, gathered[0], rtol=0, atol=0)
        _leave_together()
    except BaseException:
        dist.destroy_process_group()
        raise


def _fsdp_worker(rank: int, port: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        mesh = init_device_mesh("cpu", (WORLD_SIZE,))
        model = build_model(SPEC, device="meta")
        # Shard the modules the forward calls. Sub-graph instances (`layers.0`) only hold
        # weights: their nodes run inlined in the model's forward, so hooks on them never run.
        for layer in model.layers:
            for block in layer.children():
                fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        model.to_empty(device="cpu")
        torch.manual_seed(0)  # the same initial weights on every rank
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

        x, target = _batch(0)
        output = model(x)
        torch.nn.functional.mse_loss(output, target).backward()

        full = {key: value.full_tensor() for key, value in model.state_dict().items()}
        reference = build_model(SPEC)
        reference.load_state_dict(full)
        expected = reference(x)
        torch.testing.assert_close(output, expected)
        torch.nn.functional.mse_loss(expected, target).backward()
        for (name, sharded), plain in zip(model.named_parameters(), reference.parameters(), strict=True):
            assert sharded.grad is not None, name
            torch.testing.assert_close(sharded.grad.full_tensor(), plain.grad, msg=name)
        _leave_together()
    except BaseException:
        dist.destroy_process_group()
        raise


def _spawn(worker: Any) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    context = mp.start_processes(
        worker, args=(_free_port(),), nprocs=WORLD_SIZE, join=False, start_method="spawn"
    )
    # join() raises (ProcessRaisedException) if a rank failed; a hung rank is ended here.
    waited = 0.0
    while not context.join(timeout=5):
        waited += 5
        if waited >= TIMEOUT_S:
            for process in context.processes:
                process.terminate()
            pytest.fail(f"ranks did not finish within {TIMEOUT_S} s")


def test_ddp_gloo_two_ranks_gradients_agree() -> None:
    _spawn(_worker)


def test_fsdp_fully_shard_after_meta_build_matches_unsharded() -> None:
    _spawn(_fsdp_worker)
