"""Joining a `torchrun` launch: one place for the process group and device set-up of every command.

`torchrun --nproc_per_node K` (one node or many) sets WORLD_SIZE, RANK and LOCAL_RANK; a plain
`python -m ...` run sets none and stays a single process. Gloo on CPU, NCCL on GPU.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import torch
import torch.distributed as dist

__all__ = ["init_distributed", "rank_and_world"]


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the current process group, (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: Optional[Union[str, torch.device]] = None) -> tuple[int, int, torch.device]:
    """Pick this process's device and, under torchrun, join the process group.

    Args:
        device: Force a device; default `cuda:LOCAL_RANK` when CUDA is available, else the CPU.

    Returns:
        (rank, world size, device).
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is not None:
        device = torch.device(device)
    elif torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    rank, world = rank_and_world()
    return rank, world, device
