"""
Data parallel over torch.distributed: a group of N worker processes (ranks), each holding the frozen base and every
adapter, with torchrun's environment rendezvous (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK).

Rank 0 talks to colloquy; it broadcasts every request to the other ranks (gloo, whatever the device), every rank runs
it, and rank 0 gathers the replies. The row-wise verbs (ROW_OPS) are sharded: rank r computes rows i with
i % N == r (state.Worker.mine), and rank 0 takes row i of the reply from rank i % N. backward's LoRA gradients are
summed over ranks (NCCL on CUDA, gloo on CPU), so every rank holds the same gradients, and the replicated verbs that
follow (clip_grad_norm, step) keep every copy of an adapter the same. Rows are independent (a seed per row; the
objective's normaliser comes with the request), so a result does not depend on N beyond float rounding.

Every verb ends with the ranks agreeing on success: if any rank failed, every rank fails it (rank 0 answers with the
first real error), an `open` is undone everywhere, and a backward's gradients are left as they were before it.
"""
from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist

from .errors import UserError

ROW_OPS = {"sample", "score", "top_logprobs", "last_hidden", "backward"}
PEER_FAILED = "E_PEER"  # a rank's error that only says another rank failed


def env_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside a group."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def launch_local(nproc: int) -> list[subprocess.Popen]:
    """
    Makes this process rank 0 of `nproc` on this machine and starts ranks 1..nproc−1 as its children (the same
    interpreter and module, stdin closed, their stdout sent to stderr), as torchrun's standalone mode would.
    The children die with this process (they are in its process group, and Linux's parent-death signal).
    """
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc)}
    os.environ.update({**base, "RANK": "0", "LOCAL_RANK": "0"})
    children = []
    for r in range(1, nproc):
        env = {**os.environ, **base, "RANK": str(r), "LOCAL_RANK": str(r)}
        children.append(subprocess.Popen([sys.executable, "-m", "colloquy_worker"], env=env, stdin=subprocess.DEVNULL,
                                         stdout=sys.stderr.fileno(), preexec_fn=_die_with_parent))
    return children


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Group:
    """This process's place in the group, and the collectives the server needs."""

    def __init__(self):
        self.rank, self.world, self.local_rank = env_rank()
        # waiting for the next request is a collective: an idle worker must not time out
        days = float(os.environ.get("COLLOQUY_DIST_TIMEOUT_DAYS", 7))
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=days))
        # gradients on CUDA go through NCCL (its communicators are made on first use); requests always through gloo
        cuda = torch.cuda.is_available() and dist.is_nccl_available()
        self.nccl = dist.new_group(backend="nccl") if cuda else None

    def broadcast(self, req: dict | None) -> dict:
        """Rank 0's request, on every rank."""
        box = [req]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, reply: dict) -> list[dict] | None:
        """Every rank's reply at rank 0 (None elsewhere)."""
        out = [None] * self.world if self.rank == 0 else None
        dist.gather_object(reply, out, dst=0)
        return out

    def any_failed(self, failed: bool) -> bool:
        flag = torch.tensor([1 if failed else 0], dtype=torch.int64)
        dist.all_reduce(flag)
        return bool(flag.item())

    def sum_(self, flat: torch.Tensor) -> None:
        """Sums a tensor over the ranks, in place."""
        dist.all_reduce(flat, group=self.nccl if flat.is_cuda else None)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def agreed(group: Group, w, op: str, fn, req: dict) -> dict:
    """Runs one verb on this rank as part of the group (see the module's doc); raises when any rank failed."""
    params = _trained_params(w, req) if op == "backward" else []
    stash = [p.grad.clone() for p in params]
    for p in params:
        p.grad.zero_()
    opened = w.model is not None
    err = None
    try:
        out = fn(w, req)
    except Exception as e:  # noqa: BLE001 — every rank must reach the agreement below
        err = e
    if group.any_failed(err is not None):
        for p, s in zip(params, stash):
            p.grad.copy_(s)
        if op == "open" and not opened:
            w.model, w.config = None, None
        raise err if err is not None else UserError(PEER_FAILED, "another rank of the worker group failed")
    if params:
        flat = torch.cat([p.grad.reshape(-1) for p in params])  # all trained LoRA gradients, one all-reduce
        group.sum_(flat)
        o = 0
        for p, s in zip(params, stash):
            n = p.numel()
            p.grad.copy_(flat[o:o + n].view_as(p) + s)
            o += n
    return out


def _trained_params(w, req: dict) -> list[torch.Tensor]:
    """The LoRA tensors a backward may touch on any rank: trainable adapters named by any row, in name order."""
    rows = req.get("rows")
    names = {r.get("adapter") for r in rows if isinstance(r, dict)} if isinstance(rows, list) else set()
    picked = sorted(n for n in names if isinstance(n, str) and n in w.adapters and w.adapters[n].trainable)
    return [p for n in picked for p in w.adapters[n].params]


def mine_only(rank: int, world: int, op: str, reply: dict) -> dict:
    """What a rank other than 0 sends back: its own rows of a row-wise verb, and nothing of a replicated one."""
    if not reply.get("ok") or rank == 0:
        return reply
    if op not in ROW_OPS:
        return {"ok": True}
    out = {k: v for k, v in reply.items() if k not in ("rows", "hidden")}
    if "rows" in reply:
        out["rows"] = [r if i % world == rank else None for i, r in enumerate(reply["rows"])]
    if "hidden" in reply:
        out["hidden"] = {i: reply["hidden"][i] for i in range(rank, reply["hidden"].shape[0], world)}
    return _on_cpu(out)


def _on_cpu(x):
    """Tensors moved to the CPU, so that rank 0 can unpickle them whatever its device."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _on_cpu(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_on_cpu(v) for v in x]
    return x


def merge(op: str, replies: list[dict]) -> dict:
    """Rank 0's reply from every rank's: the first real error, or row i from rank i % N (backward's losses summed)."""
    failed = [r for r in replies if not r.get("ok")]
    if failed:
        real = [r for r in failed if r.get("error", {}).get("code") != PEER_FAILED]
        return (real or failed)[0]
    out = dict(replies[0])
    if op not in ROW_OPS:
        return out
    n = len(replies)
    if "rows" in out:
        out["rows"] = [replies[i % n]["rows"][i] for i in range(len(out["rows"]))]
    if "hidden" in out:
        hidden = out["hidden"].clone()
        for r in replies[1:]:
            for i, h in r["hidden"].items():
                hidden[i] = h
        out["hidden"] = hidden
    if "loss" in out:
        out["loss"] = sum(r["loss"] for r in replies)
    return out
