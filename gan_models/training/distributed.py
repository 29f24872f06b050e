"""Data-parallel training across processes (torchrun), or a plain single process.

Each rank holds a full replica and trains on its slice of the global batch. After every
backward pass the gradients are averaged across ranks (one all-reduce of a flat buffer)
before the optimizer steps, so replicas stay identical. This is what DistributedDataParallel
does, done by hand: GAN steps run several forward passes per network, switch requires_grad
between phases and take gradients of gradients (WGAN-GP, R1), patterns DDP's bucketed
reducer handles poorly; averaging once per phase handles them all.

BatchNorm (the DCGAN generator) normalises with the statistics of each rank's own slice,
as with plain DDP; the running statistics are averaged across ranks after each step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import GanStudioError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sync_grads(self, params: list[nn.Parameter]) -> None:
        """Average .grad over ranks (a missing grad counts as zeros)."""
        if not self.enabled or not params:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def average_buffers(self, module: nn.Module) -> None:
        """Average floating-point buffers (BatchNorm running statistics) over ranks."""
        if not self.enabled:
            return
        for b in module.buffers():
            if b.is_floating_point():
                dist.all_reduce(b)
                b.div_(self.world)

    def broadcast(self, module: nn.Module) -> None:
        """Make every replica start from rank 0's weights and buffers."""
        if not self.enabled:
            return
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)

    def average_metrics(self, metrics: dict[str, torch.Tensor]) -> dict[str, float]:
        """Means over ranks of per-rank scalars, as Python floats (one all-reduce)."""
        names = sorted(metrics)
        if not names:
            return {}
        values = torch.stack([metrics[k].detach().float().reshape(()) for k in names])
        if self.enabled:
            dist.all_reduce(values)
            values /= self.world
        return dict(zip(names, values.cpu().tolist(), strict=True))

    def any_flag(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if any rank raised the flag (e.g. a stop request)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def check_in_sync(self, modules: dict[str, nn.Module], device: torch.device) -> None:
        """Raise if any replica's parameters differ from rank 0's (a cheap checksum)."""
        if not self.enabled:
            return
        sums = torch.stack([
            torch.stack([p.detach().double().sum() for p in m.parameters()]).sum()
            for m in modules.values()]).to(device)
        gathered = [torch.zeros_like(sums) for _ in range(self.world)]
        dist.all_gather(gathered, sums)
        for r, other in enumerate(gathered[1:], 1):
            if not torch.equal(other, gathered[0]):
                raise GanStudioError(f"rank {r}'s replica drifted from rank 0's weights")

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_from_env(device: str | None = None) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else a single process.

    Backend nccl on CUDA, gloo on CPU; rank r uses cuda:LOCAL_RANK.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if world <= 1:
        return DistContext(), torch.device(want)
    if want.startswith("cuda"):
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev, backend = torch.device(want), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                device_id=dev if backend == "nccl" else None)
    return DistContext(rank=rank, world=world, local_rank=local), dev


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
