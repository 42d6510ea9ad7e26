"""Data-parallel training in several processes (``accelerate launch --multi_gpu`` or
``torchrun``; gloo on a machine without GPUs), without DDP's module wrapper.

A QCRD step runs the student's encoder once and its decoder several times, which DDP's
one-forward-per-backward contract does not allow; so each process trains its share of the
global batch and ``GradientSync`` averages the gradients afterwards, as DDP's reducer would.
``Ranks`` is the little protocol around it: rank 0 alone tracks, validates and writes
checkpoints, and tells the others when that work failed, so no process waits forever.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .errors import QcrdError


def process_state():
    """accelerate's state of this process: one process, or one of several started by
    ``accelerate launch`` / ``torchrun``.  Several processes on a machine without a GPU (or
    with ACCELERATE_USE_CPU) train on the CPU over gloo, which accelerate does only when asked."""
    import os

    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or (launched and not _accelerator_available())
    if cpu and os.environ.get("MASTER_PORT") and not launched and not any(
            os.environ.get(k) for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")):
        # accelerate's launcher gives `--cpu --num_processes N` (N > 1) one process unless mpirun starts them.
        raise QcrdError("`accelerate launch --cpu --num_processes N` starts a single process (accelerate needs "
                        "--mpirun_hostfile for several CPU processes); on a machine without a GPU use "
                        "`accelerate launch --multi_gpu --num_processes N` or `torchrun --nproc-per-node N`, "
                        "which train on the CPU over gloo")
    state = PartialState(cpu=cpu)
    if launched and state.num_processes == 1:
        raise QcrdError(f"started as one of {os.environ['WORLD_SIZE']} processes, but accelerate found no "
                        f"distributed backend for them; set ACCELERATE_USE_CPU=1 to train on the CPU over gloo")
    return state


def _accelerator_available() -> bool:
    if torch.cuda.is_available():
        return True
    try:
        from accelerate.utils import is_mlu_available, is_npu_available, is_xpu_available
    except ImportError:  # pragma: no cover - older accelerate
        return False
    return is_xpu_available() or is_npu_available() or is_mlu_available()


MAIN_FAILED = "the main process failed: "


class Ranks:
    """The processes a run trains in, and the few messages they exchange.  With one
    process every method is a plain call; with several, rank 0 (the main process) is the
    only one that tracks, validates and writes checkpoints, and tells the others when
    that work failed, so that no process waits forever for a peer that gave up."""

    def __init__(self, state=None):
        state = state or process_state()
        self.world, self.rank, self.device = state.num_processes, state.process_index, state.device
        self.is_main = self.rank == 0

    def lead(self, fn: Callable[[], Any], share: Callable[[Any], Any] | None = None) -> Any:
        """Run ``fn`` on the main process and return its result there; every other process
        waits and gets ``share(result)`` (None without ``share``), or raises QcrdError when
        ``fn`` raised on the main process (which re-raises its own error)."""
        if self.world == 1:
            return fn()
        if self.is_main:
            try:
                result = fn()
            except Exception as exc:
                self._broadcast({"error": f"{type(exc).__name__}: {exc}"})
                raise
            self._broadcast({"value": share(result) if share else None})
            return result
        message = self._broadcast(None)
        if "error" in message:
            raise QcrdError(MAIN_FAILED + message["error"])
        return message["value"]

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, by rank, on every process."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def agree(self, value: Any, what: str) -> None:
        """Raise on every process unless all of them hold the same ``value``."""
        values = self.gather(value)
        if any(v != values[0] for v in values):
            raise QcrdError(f"the {self.world} processes disagree on {what}: {values}")

    def close(self) -> None:
        """Leave the process group (several processes): a process that exits without it
        may abort in gloo's teardown."""
        import torch.distributed as dist

        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def _broadcast(self, value: Any) -> Any:
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_tensors(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with the main process's (tensors off the
        communication device, e.g. CPU snapshots under NCCL, travel through a copy)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        for tensor in tensors:
            if tensor.device.type == self.device.type:
                dist.broadcast(tensor, src=0)
            else:
                buffer = tensor.to(self.device)
                dist.broadcast(buffer, src=0)
                tensor.copy_(buffer)


class GradientSync:
    """Averages the gradients of ``params`` across processes, as DDP's reducer would, in
    flat buckets of at most ``bucket`` elements.  A parameter some process has no gradient
    for gets a zero one there; one no process has a gradient for keeps none (so AdamW
    skips it, as in one process)."""

    def __init__(self, params: list[torch.Tensor], ranks: Ranks, bucket: int = 1 << 24):
        seen: set[int] = set()
        self.params = [p for p in params if p.requires_grad and not (id(p) in seen or seen.add(id(p)))]
        self.ranks, self.bucket = ranks, bucket

    def __call__(self) -> None:
        import torch.distributed as dist

        if self.ranks.world == 1 or not self.params:
            return
        present = torch.tensor([float(p.grad is not None) for p in self.params], device=self.ranks.device)
        dist.all_reduce(present, op=dist.ReduceOp.MAX)
        grads = []
        for p, has in zip(self.params, present.tolist()):
            if has:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                grads.append(p.grad)
        for group in self._buckets(grads):
            flat = torch.cat([g.reshape(-1) for g in group])
            dist.all_reduce(flat)
            flat.div_(self.ranks.world)
            offset = 0
            for g in group:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def _buckets(self, grads: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        buckets: dict[tuple, list[list[torch.Tensor]]] = {}
        for g in grads:
            runs = buckets.setdefault((g.device, g.dtype), [[]])
            if runs[-1] and sum(x.numel() for x in runs[-1]) + g.numel() > self.bucket:
                runs.append([])
            runs[-1].append(g)
        return [run for runs in buckets.values() for run in runs if run]


def _tensors(state: Any) -> list[torch.Tensor]:
    """The tensors of a nested state dict, in a fixed order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in state for t in _tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in _tensors(item)]
    return []


def local_part(state: Any) -> Any:
    """The tensor-free part of a state dict (tensors become None): what may differ between
    processes, e.g. the self-play negatives each process sampled for its own examples."""
    if isinstance(state, torch.Tensor):
        return None
    if isinstance(state, dict):
        return {key: local_part(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return [local_part(value) for value in state]
    return state


def overlay(shared: Any, own: Any) -> Any:
    """``shared`` (the main process's state) with each of its tensor-free parts replaced by
    this process's own (from ``_local``)."""
    if not _tensors(shared):
        return own
    if isinstance(shared, dict) and isinstance(own, dict):
        return {key: overlay(value, own[key]) if key in own else value for key, value in shared.items()}
    if isinstance(shared, (list, tuple)) and isinstance(own, list) and len(own) == len(shared):
        return type(shared)(overlay(a, b) for a, b in zip(shared, own))
    return shared


def sync_start(ranks: Ranks, model, judge) -> None:
    """Make every process start from the main process's student and judge, as DDP does
    for its module: they are built from the same seed and the judge's pre-training is
    deterministic, so this only guards against a device's non-deterministic kernels."""
    judge_state = judge.state_dict()
    tensors = list(model.state_dict().values()) + _tensors(judge_state)
    ranks.agree([(tuple(t.shape), str(t.dtype)) for t in tensors], "the shapes of the student's and judge's state")
    ranks.broadcast_tensors(tensors)
    if not ranks.is_main:
        judge.load_state_dict(judge_state)


def _fingerprint(params: list[torch.Tensor]) -> list[float]:
    with torch.no_grad():
        return [float(p.detach().double().sum()) for p in params]


def check_in_sync(ranks: Ranks, params: list[torch.Tensor]) -> None:
    """Every process must end with the main process's weights (student and judge)."""
    prints = ranks.gather(_fingerprint(params))
    for rank, values in enumerate(prints[1:], start=1):
        worst = max((abs(a - b) / max(abs(a), 1e-12) for a, b in zip(prints[0], values)), default=0.0)
        if worst > 1e-5:
            raise QcrdError(f"process {rank}'s weights drifted from the main process's (relative difference "
                            f"{worst:.2e}); data-parallel training is broken for this model")


def shard(chunk: list[int], rank: int, world: int) -> tuple[list[int], float]:
    """This process's share of a global batch, and the factor its loss is scaled by
    (examples here × processes / examples in the batch; 1 when the shares are equal), so that
    the averaged gradient is that of the mean over the whole batch however it was split.

    Round-robin, so with length-grouped batches (sorted longest first) every process gets
    examples of similar lengths.  A batch with fewer examples than processes (the short last
    batch of an epoch) leaves some processes without one: such a process trains on the
    batch's first example with a factor of 0, so it runs the same collectives as the others
    but adds nothing to the gradient or the logged losses."""
    part = chunk[rank::world]
    if not part:
        return chunk[:1], 0.0
    return part, len(part) * world / len(chunk)


def combine(gathered: list[tuple[dict[str, float], int]]) -> tuple[dict[str, float], int]:
    """One batch's logged values from every process's (values, examples): each process's
    weighted by its share of the batch's examples (a stand-in example counts 0), as its
    gradient is, and the batch's example count."""
    total = sum(n for _, n in gathered)
    values: dict[str, float] = {}
    for terms, n in gathered:
        for name, value in terms.items():
            values[name] = values.get(name, 0.0) + value * n / total
    return values, total
