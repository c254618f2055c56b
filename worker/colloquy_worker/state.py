"""What an open worker holds: the frozen base model, its config, the named adapters and the token budget."""
from __future__ import annotations

import os
import re
import sys
import time

import torch

from .checkpoint import ModelConfig, load_weights, read_config
from .errors import UserError, need, need_int
from .lora import Adapter
from .memory import check_fits
from .model import Transformer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Worker:
    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.model: Transformer | None = None
        self.config: ModelConfig | None = None
        self.adapters: dict[str, Adapter] = {}
        self.max_tokens_per_pass = 16384
        # data parallel (dist.py): this process computes rows i with i % world == rank of every row-wise verb
        self.rank, self.world, self.local_rank = rank, world, local_rank

    def mine(self, i: int) -> bool:
        return i % self.world == self.rank

    def own(self, tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        """The rows this process computes; the others empty (so that forward_chunks skips them)."""
        return tokens if self.world == 1 else [t if self.mine(i) else t[:0] for i, t in enumerate(tokens)]

    def require_open(self) -> Transformer:
        if self.model is None:
            raise UserError("E_NOT_OPEN", "no model is open: send open first")
        return self.model

    def adapter(self, name) -> Adapter | None:
        """The adapter of a row: None for the base model; an unknown name is E_UNKNOWN_ADAPTER."""
        if name is None:
            return None
        if not isinstance(name, str):
            raise UserError("E_BAD_REQUEST", f"adapter must be a name or null, got {name!r}")
        a = self.adapters.get(name)
        if a is None:
            have = ", ".join(self.adapters) or "none"
            raise UserError("E_UNKNOWN_ADAPTER", f"no adapter named {name} (have: {have})")
        return a

    def trained(self, names) -> list[Adapter]:
        """The adapters `names` (a list of distinct names), each with an optimizer."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError("E_BAD_REQUEST", "names must be a list of adapter names")
        if len(set(names)) != len(names):
            raise UserError("E_BAD_ARG", f"names lists an adapter twice: {names}")
        out = []
        for n in names:
            a = self.adapter(n)
            if a.optimizer is None:
                raise UserError("E_NO_OPTIMIZER", f"adapter {n} has no optimizer (it was imported, not made by create_adapter)")
            out.append(a)
        return out


def open_model(w: Worker, req: dict) -> dict:
    if w.model is not None:
        raise UserError("E_ALREADY_OPEN", "a model is open already; start another worker for another model")
    folder = need(req, "model", str)
    device_name = need(req, "device", str, "cpu")
    dtype_name = need(req, "dtype", str, "float32")
    budget = need_int(req, "max_tokens_per_pass", 1, 16384)
    if dtype_name not in DTYPES:
        raise UserError("E_BAD_ARG", f"dtype {dtype_name} is not one of {', '.join(DTYPES)}")
    dtype = DTYPES[dtype_name]
    device = _device(device_name, w)
    if not os.path.isdir(folder):
        raise UserError("E_NOT_FOUND", f"model folder {folder} does not exist")
    _check_dtype(device, dtype)
    check_fits(req, folder, device, dtype_name)  # need_bytes: refuse before anything is allocated
    t0 = time.time()
    c = read_config(folder)
    weights = load_weights(folder, c, device, dtype)
    w.model = Transformer.from_weights(c, weights)
    w.config = c
    w.max_tokens_per_pass = budget
    if not need(req, "quiet", bool, False):
        print(f"colloquy-worker: opened {folder} on {device} in {dtype_name} ({time.time() - t0:.1f}s)", file=sys.stderr, flush=True)
    return {"config": c.wire(), "device": str(device), "dtype": dtype_name}


def _device(name: str, w: Worker) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise UserError("E_NO_DEVICE", f"device {name}: CUDA is not available to this PyTorch ({torch.__version__})")
        if w.world > 1:  # one GPU per process of the group: this machine's LOCAL_RANK-th
            name = f"cuda:{w.local_rank}"
        d = torch.device(name)
        index = d.index if d.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise UserError("E_NO_DEVICE", f"device {name}: only {torch.cuda.device_count()} CUDA devices")
        return torch.device("cuda", index)
    raise UserError("E_BAD_ARG", f"device {name} is not cpu, cuda or cuda:N")


def _check_dtype(device: torch.device, dtype: torch.dtype) -> None:
    """Fails early when this PyTorch cannot multiply matrices of `dtype` on `device` (float16 on an old CPU build)."""
    try:
        x = torch.ones(2, 2, dtype=dtype, device=device)
        torch.nn.functional.linear(x, x)
    except RuntimeError as e:
        raise UserError("E_UNSUPPORTED", f"{dtype} on {device} is not supported by PyTorch {torch.__version__}: {str(e).splitlines()[0]}") from None
