"""
The LM head and what is computed from its logits, the arithmetic of src/engine/kernels/xent.ts: with z the float32
logits scaled by 1/τ (rounded to float32, as the TS engine scales them), in float64:
    log p = z − logsumexp(z),   H = −Σ p log p,
and for training  dL/dz = w (p − onehot(target)) + e p (log p + H)  for  L = −Σ w log p(target) − Σ e H,
rounded to float32 and scaled by 1/τ, then dL/dh = dL/dlogits · W_head. Logits are made a chunk of positions at a
time, so that no (P, V) matrix exists and nothing of the head is kept for autograd.
"""
from __future__ import annotations

import torch

ELEMENTS_PER_CHUNK = 1 << 22  # float64 logits of one chunk: 32 MB


def chunk_rows(V: int) -> int:
    return max(1, ELEMENTS_PER_CHUNK // V)


def scaled_logits(model, h: torch.Tensor, inv_tau: torch.Tensor | None) -> torch.Tensor:
    """h (n, C) → float32 logits (n, V), scaled by inv_tau (n) float64 when given."""
    z = model.logits(h)  # (n, V) float32
    if inv_tau is not None:
        z = (z.double() * inv_tau[:, None]).float()
    return z


def log_softmax64(z: torch.Tensor) -> torch.Tensor:
    """z (n, V) float32 → log-probabilities (n, V) float64: z − (max + log Σ exp(z − max))."""
    zd = z.double()
    return zd - torch.logsumexp(zd, dim=-1, keepdim=True)


@torch.no_grad()
def head_stats(model, h: torch.Tensor, targets: torch.Tensor, tau: torch.Tensor | None,
               w: torch.Tensor | None = None, e: torch.Tensor | None = None):
    """
    h (P, C) hidden states (no graph needed), targets (P) long, tau (P) float64 or None (all 1), all on the model's
    device. Returns log p(target) (P) and entropies (P), float64; with weights w (P) (and entropy weights e (P) or
    None), also dL/dh (P, C) in h's dtype.
    """
    P = h.shape[0]
    W = model.lm_head.weight  # (V, C)
    lp_out = torch.empty(P, dtype=torch.float64, device=h.device)
    ent_out = torch.empty(P, dtype=torch.float64, device=h.device)
    dh = torch.zeros_like(h) if w is not None else None
    inv = (1.0 / tau) if tau is not None else None
    step = chunk_rows(W.shape[0])
    for s in range(0, P, step):
        e_ = min(P, s + step)
        it = inv[s:e_] if inv is not None else None
        lp_all = log_softmax64(scaled_logits(model, h[s:e_], it))  # (n, V)
        p = lp_all.exp()
        ent = -(p * lp_all).sum(-1)  # (n)
        tgt = targets[s:e_, None]  # (n, 1)
        lp_out[s:e_] = lp_all.gather(1, tgt)[:, 0]
        ent_out[s:e_] = ent
        if w is None:
            continue
        wi = w[s:e_, None]  # (n, 1)
        dz = wi * p  # (n, V)
        if e is not None:
            dz = dz + e[s:e_, None] * p * (lp_all + ent[:, None])
        dz = dz.float()
        dz.scatter_(1, tgt, (dz.gather(1, tgt).double() - wi).float())  # the target's −w, after rounding, as xent.ts
        if it is not None:
            dz = (dz.double() * it[:, None]).float()  # d/dlogits = (1/τ) d/d(logits/τ)
        dh[s:e_] = (dz.to(W.dtype) @ W).to(h.dtype)  # (n, C)
    return lp_out, ent_out, dh
