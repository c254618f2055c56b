"""
The forward-only verbs: score (log-probs and entropies of given tokens), top_logprobs (the k most likely ids per
position) and last_hidden (the final hidden state of each row's last token).
"""
from __future__ import annotations

import math

import torch

from .batch import forward_chunks, token_tensor
from .errors import UserError, need
from .head import chunk_rows, head_stats, log_softmax64


def parse_rows(w, req: dict) -> list[dict]:
    rows = need(req, "rows", list)
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise UserError("E_BAD_REQUEST", f"row {i} is not an object")
    return rows


def row_from(r: dict, i: int, T: int) -> int:
    """The row's `from` (default 1), 1 ≤ from ≤ max(1, T)."""
    f = r.get("from", 1)
    f = 1 if f is None else f
    if isinstance(f, float) and f.is_integer():
        f = int(f)
    if not isinstance(f, int) or isinstance(f, bool) or f < 1 or f > max(1, T):
        raise UserError("E_BAD_FROM", f"row {i}: first scored token {f} must be in 1..{T}")
    return f


def row_temperature(r: dict, i: int) -> float:
    t = r.get("temperature", 1)
    t = 1.0 if t is None else t
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not (t > 0) or math.isinf(t):
        raise UserError("E_BAD_TEMPERATURE", f"row {i}: temperature must be positive, got {t}")
    return float(t)


def gather_targets(tokens: list[torch.Tensor], idx: list[int], starts: list[int]):
    """For rows idx (chunk order) and their first scored token: batch index, position (t − 1) and target of each
    scored token t, and each row's slice of them. CPU int64 tensors."""
    b_idx, t_idx, tgt, spans, p = [], [], [], {}, 0
    for b, i in enumerate(idx):
        T, f = tokens[i].numel(), starts[i]
        n = max(0, T - f)
        b_idx.append(torch.full((n,), b, dtype=torch.int64))
        t_idx.append(torch.arange(f - 1, T - 1, dtype=torch.int64))
        tgt.append(tokens[i][f:])
        spans[i] = (p, p + n)
        p += n
    return torch.cat(b_idx), torch.cat(t_idx), torch.cat(tgt), spans


def score(w, req: dict) -> dict:
    m = w.require_open()
    rows = parse_rows(w, req)
    V = w.config.vocab_size
    tokens = [token_tensor(need(r, "tokens"), f"row {i} tokens", V) for i, r in enumerate(rows)]
    starts = [row_from(r, i, t.numel()) for i, (r, t) in enumerate(zip(rows, tokens))]
    temps = [row_temperature(r, i) for i, r in enumerate(rows)]
    names = [r.get("adapter") for r in rows]
    adapters = [w.adapter(n) for n in names]
    out = [{"logprobs": torch.full((t.numel(),), math.nan, dtype=torch.float64),
            "entropies": torch.full((t.numel(),), math.nan, dtype=torch.float64)} for t in tokens]
    with torch.no_grad():
        for idx, h in forward_chunks(w, w.own(tokens), adapters, names):
            b_idx, t_idx, tgt, spans = gather_targets(tokens, idx, starts)
            if tgt.numel() == 0:
                continue
            tau = torch.tensor([temps[i] for i in idx for _ in range(spans[i][1] - spans[i][0])], dtype=torch.float64)
            use_tau = bool((tau != 1).any())
            dev = m.device
            lp, ent, _ = head_stats(m, h[b_idx.to(dev), t_idx.to(dev)], tgt.to(dev), tau.to(dev) if use_tau else None)
            lp, ent = lp.cpu(), ent.cpu()
            for i in idx:
                s, e = spans[i]
                out[i]["logprobs"][starts[i]:] = lp[s:e]
                out[i]["entropies"][starts[i]:] = ent[s:e]
    return {"rows": out}


def top_logprobs(w, req: dict) -> dict:
    m = w.require_open()
    rows = parse_rows(w, req)
    V = w.config.vocab_size
    tokens = [token_tensor(need(r, "tokens"), f"row {i} tokens", V) for i, r in enumerate(rows)]
    starts, ks = [], []
    for i, r in enumerate(rows):
        f, k = r.get("from"), r.get("k")
        f = int(f) if isinstance(f, float) and f.is_integer() else f
        k = int(k) if isinstance(k, float) and k.is_integer() else k
        if not isinstance(f, int) or isinstance(f, bool) or f < 1:
            raise UserError("E_BAD_FROM", f"row {i}: first predicted token {f} must be ≥ 1")
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise UserError("E_BAD_ARG", f"row {i}: k must be an integer ≥ 0, got {k}")
        starts.append(f)
        ks.append(min(k, V))
    names = [r.get("adapter") for r in rows]
    adapters = [w.adapter(n) for n in names]
    out = []
    for i, t in enumerate(tokens):
        n = max(0, t.numel() - starts[i])
        out.append({"logprobs": torch.empty(n, dtype=torch.float64), "top_ids": torch.empty(n, ks[i], dtype=torch.int32),
                    "top_logprobs": torch.empty(n, ks[i], dtype=torch.float64)})
    # rows with nothing to predict need no forward
    work = w.own([t if t.numel() > starts[i] else t[:0] for i, t in enumerate(tokens)])
    step = chunk_rows(V)
    with torch.no_grad():
        for idx, h in forward_chunks(w, work, adapters, names):
            b_idx, t_idx, tgt, spans = gather_targets(work, idx, starts)
            hs, dev = h[b_idx.to(m.device), t_idx.to(m.device)], m.device  # (P, C)
            tgt = tgt.to(dev)
            for s in range(0, hs.shape[0], step):
                e = min(hs.shape[0], s + step)
                lp_all = log_softmax64(m.logits(hs[s:e]))  # (n, V)
                kmax = max(ks[i] for i in idx)
                vals, ids = torch.sort(lp_all, dim=-1, descending=True, stable=True) if kmax else (None, None)
                lp = lp_all.gather(1, tgt[s:e, None])[:, 0].cpu()
                vals = vals[:, :kmax].cpu() if kmax else None
                ids = ids[:, :kmax].cpu() if kmax else None
                for i in idx:  # the part of row i's positions inside [s, e)
                    rs, re_ = spans[i]
                    a, b = max(rs, s), min(re_, e)
                    if a >= b:
                        continue
                    o = out[i]
                    o["logprobs"][a - rs:b - rs] = lp[a - s:b - s]
                    if ks[i]:
                        o["top_ids"][a - rs:b - rs] = ids[a - s:b - s, :ks[i]].to(torch.int32)
                        o["top_logprobs"][a - rs:b - rs] = vals[a - s:b - s, :ks[i]]
    return {"rows": out}


def last_hidden(w, req: dict) -> dict:
    m = w.require_open()
    rows = parse_rows(w, req)
    V = w.config.vocab_size
    tokens = [token_tensor(need(r, "tokens"), f"row {i} tokens", V, allow_empty=False) for i, r in enumerate(rows)]
    names = [r.get("adapter") for r in rows]
    adapters = [w.adapter(n) for n in names]
    out = torch.empty(len(rows), w.config.dim, dtype=torch.float32)  # (B, C)
    with torch.no_grad():
        for idx, h in forward_chunks(w, w.own(tokens), adapters, names):
            last = torch.tensor([tokens[i].numel() - 1 for i in idx], device=m.device)
            sel = h[torch.arange(len(idx), device=m.device), last].float().cpu()  # (b, C)
            out[torch.tensor(idx)] = sel
    return {"hidden": out}
