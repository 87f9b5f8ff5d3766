"""Data-parallel training over processes (`torchrun --nproc-per-node N maskengine train ...`).

Rank r of N runs micro-batches r, N + r, 2N + r, ... of each step and the gradients are
summed across ranks, so N processes with `accumulate` A make exactly the run of one process
with accumulate N x A, N times faster when each has its own core (one process with N
threads speeds these small models up far less). Rank 0 writes the run folder; batch-norm
statistics are averaged after every step, so every rank holds the same model.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: torch.device) -> tuple[int, int]:
    """(rank, world size): joins the (gloo) process group that torchrun's environment
    describes; (0, 1) when not launched that way. CPU processes only: one GPU needs none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if device.type != "cpu":
        raise ValueError("data-parallel processes (torchrun) are for CPU training; on a GPU "
                         "run one process")
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def sum_gradients(model: torch.nn.Module) -> None:
    """Sum every gradient over the ranks (the loss of each rank is already scaled)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def average_batchnorm(model: torch.nn.Module) -> None:
    """Average the running statistics of every batch norm over the ranks."""
    world = dist.get_world_size()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf)
                buf.div_(world)


def reduce_logs(log: dict[str, float], sums: tuple[str, ...] = ()) -> dict[str, float]:
    """Mean of each value over the ranks (the sum for the keys in `sums`)."""
    keys = sorted(log)
    t = torch.tensor([float(log[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    world = dist.get_world_size()
    return {k: float(v) if k in sums else float(v) / world for k, v in zip(keys, t, strict=True)}


def broadcast_float(value: float) -> float:
    """Rank 0's value on every rank."""
    t = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(t, 0)
    return float(t)
