"""
The training verbs. backward: one forward and backward of
    L = −( Σ_rows Σ_t w_t log p_t + Σ_rows Σ_t e_t H_t ) / normaliser
(src/engine/objective.ts), a chunk of rows at a time: the head gives dL/dhidden directly (head.py), and autograd
carries it through the trunk into the LoRA tensors of the trainable adapters, whose .grad accumulates until
zero_grad. Then zero_grad, clip_grad_norm and step over named adapters (optim.py).
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from .batch import float_row, forward_chunks, token_tensor
from .errors import UserError, need
from .head import head_stats
from .optim import clip_grad_norm as clip
from .score import gather_targets, parse_rows, row_from, row_temperature


def backward(w, req: dict) -> dict:
    m = w.require_open()
    rows = parse_rows(w, req)
    normaliser = need(req, "normaliser", (int, float))
    if not (normaliser > 0) or math.isinf(normaliser):
        raise UserError("E_BAD_NORMALISER", f"objective normaliser must be positive, got {normaliser}")
    V = w.config.vocab_size
    tokens = [token_tensor(need(r, "tokens"), f"row {i} tokens", V) for i, r in enumerate(rows)]
    starts = [row_from(r, i, t.numel()) for i, (r, t) in enumerate(zip(rows, tokens))]
    temps = [row_temperature(r, i) for i, r in enumerate(rows)]
    weights, eweights = [], []
    for i, (r, t) in enumerate(zip(rows, tokens)):
        T = t.numel()
        wt = float_row(need(r, "weights"), f"row {i} weights", T)
        early = wt[1:starts[i]]
        if early.numel() and bool((early != 0).any()):
            k = 1 + int((early != 0).nonzero()[0, 0])
            raise UserError("E_BAD_WEIGHTS", f"row {i}: token {k} has a weight but comes before from={starts[i]}")
        weights.append(wt)
        ew = r.get("entropy_weights")
        eweights.append(None if ew is None else float_row(ew, f"row {i} entropy_weights", T))
    any_entropy = any(e is not None for e in eweights)
    names = [r.get("adapter") for r in rows]
    adapters = [w.adapter(n) for n in names]

    out = [{"logprobs": torch.full((t.numel(),), math.nan, dtype=torch.float64),
            "entropies": torch.full((t.numel(),), math.nan, dtype=torch.float64)} for t in tokens]
    loss = 0.0
    dev = m.device
    with _all_or_no_gradients(adapters):
        for idx, h in forward_chunks(w, w.own(tokens), adapters, names, grad=True):
            b_idx, t_idx, tgt, spans = gather_targets(tokens, idx, starts)
            if tgt.numel() == 0:
                continue
            wv = torch.cat([weights[i][starts[i]:] for i in idx]) / normaliser  # (P) w_t / normaliser
            ev = torch.cat([(eweights[i][starts[i]:] if eweights[i] is not None else torch.zeros(max(0, tokens[i].numel() - starts[i]),
                            dtype=torch.float64)) for i in idx]) / normaliser if any_entropy else None
            tau = torch.tensor([temps[i] for i in idx for _ in range(spans[i][1] - spans[i][0])], dtype=torch.float64)
            use_tau = bool((tau != 1).any())
            bd, td = b_idx.to(dev), t_idx.to(dev)
            lp, ent, dh = head_stats(m, h[bd, td].detach(), tgt.to(dev), tau.to(dev) if use_tau else None,
                                     wv.to(dev), ev.to(dev) if ev is not None else None)
            if h.requires_grad:
                dhidden = torch.zeros_like(h)  # (B, T, C)
                dhidden[bd, td] = dh
                h.backward(dhidden)
            del h
            lp, ent = lp.cpu(), ent.cpu()
            loss -= float((wv * lp).sum()) + (float((ev * ent).sum()) if ev is not None else 0.0)
            for i in idx:
                s, e = spans[i]
                out[i]["logprobs"][starts[i]:] = lp[s:e]
                out[i]["entropies"][starts[i]:] = ent[s:e]
    return {"loss": loss, "rows": out}


@contextmanager
def _all_or_no_gradients(adapters):
    """This call's gradients go to fresh .grad tensors, added to the ones before it only if the whole call succeeds:
    a failure part-way (out of memory in a later chunk) leaves the gradients as they were."""
    params = [p for a in dict.fromkeys(a for a in adapters if a is not None and a.trainable) for p in a.params]
    before = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        yield
    except BaseException:
        for p, g in zip(params, before):
            p.grad = g
        raise
    for p, g in zip(params, before):
        p.grad = g if p.grad is None else p.grad.add_(g)


def zero_grad(w, req: dict) -> dict:
    w.require_open()
    for a in w.trained(need(req, "names", list)):
        a.optimizer.zero_grad()
    return {}


def clip_grad_norm(w, req: dict) -> dict:
    w.require_open()
    adapters = w.trained(need(req, "names", list))
    max_norm = need(req, "max_norm", (int, float))
    if not (max_norm >= 0) or math.isinf(max_norm):
        raise UserError("E_BAD_ARG", f"max_norm must be a finite number ≥ 0 (0 = no clipping), got {max_norm}")
    return {"norm": clip([p for a in adapters for p in a.params], float(max_norm))}


def step(w, req: dict) -> dict:
    w.require_open()
    adapters = w.trained(need(req, "names", list))
    lr = need(req, "lr", (int, float))
    if not math.isfinite(lr):
        raise UserError("E_BAD_ARG", f"lr must be a finite number, got {lr}")
    for a in adapters:
        a.optimizer.update(float(lr))
    return {}
