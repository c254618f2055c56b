"""
Rows → padded batches. Rows are checked (integer ids inside the vocabulary), grouped into chunks whose padded size
(rows × longest row) fits the token budget of one forward, and ordered inside a chunk by adapter so that each
adapter's rows are contiguous (lora.LoraBatch). Callers put results back by the rows' original indices.
"""
from __future__ import annotations

import torch

from .errors import UserError

INT_DTYPES = (torch.int32, torch.int64, torch.int16, torch.uint8, torch.int8)


def token_tensor(x, what: str, vocab_size: int, allow_empty: bool = True) -> torch.Tensor:
    """A row's token ids (T) as a CPU int64 tensor, checked against the vocabulary."""
    if not isinstance(x, torch.Tensor) or x.dtype not in INT_DTYPES or x.dim() != 1:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError("E_BAD_REQUEST", f"{what} must be a 1-D i32 tensor, got {getattr(x, 'dtype', '')} {shape}")
    t = x.to(torch.int64)
    if t.numel() == 0 and not allow_empty:
        raise UserError("E_EMPTY_PROMPT", f"{what} is empty (give at least one token, e.g. BOS)")
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            pos = int((t == bad).nonzero()[0, 0])
            raise UserError("E_TOKEN_RANGE", f"token id {bad} ({what}, position {pos}) is outside the vocabulary 0..{vocab_size - 1}")
    return t


def adapter_key(name) -> tuple:
    return (name is not None, name or "")


def chunks(lengths: list[int], adapters: list, budget: int) -> list[list[int]]:
    """Row indices in chunks: longest rows first, rows × longest ≤ budget (a longer row goes alone), by adapter inside."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out, cur, longest = [], [], 0
    for i in order:
        n = max(1, lengths[i])
        if cur and (len(cur) + 1) * max(longest, n) > budget:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    return [sorted(c, key=lambda i: (adapter_key(adapters[i]), i)) for c in out]


def pad(rows: list[torch.Tensor], device) -> torch.Tensor:
    """Rows of ids (T_i) → (B, max T_i) int64 on `device`, right-padded with id 0."""
    T = max(int(r.numel()) for r in rows)
    out = torch.zeros(len(rows), T, dtype=torch.int64)
    for b, r in enumerate(rows):
        out[b, : r.numel()] = r
    return out.to(device)


def float_row(x, what: str, n: int) -> torch.Tensor:
    """A per-token float array (n) as float64 on the CPU."""
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() != 1 or x.numel() != n:
        got = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError("E_BAD_WEIGHTS", f"{what} must be a float tensor of {n} values (one per token), got {got}")
    return x.to(torch.float64)


def forward_chunks(w, tokens: list[torch.Tensor], adapters: list, names: list, grad: bool = False):
    """
    Runs the model over the non-empty rows, a chunk at a time; yields (row indices (B), hidden (B, T, C)), rows
    right-padded. With `grad`, chunks holding a trainable adapter keep the autograd graph (the caller runs backward
    before asking for the next chunk); other chunks run without it.
    """
    from .lora import LoraBatch

    m = w.model
    live = [i for i, t in enumerate(tokens) if t.numel() > 0]
    for part in chunks([tokens[i].numel() for i in live], [names[i] for i in live], w.max_tokens_per_pass):
        idx = [live[j] for j in part]
        x = pad([tokens[i] for i in idx], m.device)  # (B, T)
        lora = LoraBatch.of([adapters[i] for i in idx])
        with torch.set_grad_enabled(grad and lora is not None and lora.trainable()):
            h = m(x, m.full_pass(x.shape[1], lora))  # (B, T, C)
        yield idx, h
