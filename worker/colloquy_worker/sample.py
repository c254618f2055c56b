"""
Generation, the semantics of src/engine/generate.ts and sample.ts. Rows are ordered by adapter (and by prompt length
inside an adapter) and taken in groups whose KV cache, rows × longest (prompt + max_tokens), fits the token budget
of a forward pass. A group is prefilled a chunk of rows at a time into one static KV cache (B, KVH, S_max, HS) per
layer, then decoded together, one token per row per step, each row at its own position under its own key mask; when
half of the rows are done, the cache is compacted to the rest. The LM head and the choice run on a few rows at a
time (head.chunk_rows), so no (rows, V) float64 array outgrows a chunk.

Choosing a token (per row): temperature 0 is greedy (the first id of the largest logit); otherwise
softmax(logits / temperature) in float64, truncated by top-k (ties with the k-th kept) then top-p (the smallest
prefix of the ids sorted by probability, ties by lower id, whose mass reaches top_p, renormalised), and one uniform
draw u from the row's own torch.Generator (seeded with the row's seed) picks the first id, in id order, whose
cumulative probability exceeds u. `logprobs` are log p(id) at temperature 1 without truncation.
"""
from __future__ import annotations

import math

import torch

from .batch import adapter_key, pad, token_tensor
from .errors import MAX_SEED, UserError, need
from .head import chunk_rows, log_softmax64
from .lora import LoraBatch
from .model import KVCache
from .score import parse_rows


def _row(r: dict, i: int, V: int) -> dict:
    prompt = token_tensor(need(r, "prompt"), f"row {i} prompt", V, allow_empty=False)
    max_tokens, temp, top_k, top_p, seed = (r.get("max_tokens"), r.get("temperature", 1), r.get("top_k", 0),
                                            r.get("top_p", 1), r.get("seed", 0))
    top_k = 0 if top_k is None else top_k
    top_p = 1 if top_p is None else top_p
    temp = 1 if temp is None else temp
    seed = 0 if seed is None else seed

    def integer(v, key, hi=None):
        v = int(v) if isinstance(v, float) and v.is_integer() else v
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or (hi is not None and v > hi):
            raise UserError("E_BAD_ARG", f"row {i}: {key} must be an integer ≥ 0{f' and ≤ {hi}' if hi else ''}, got {v!r}")
        return v

    max_tokens, top_k, seed = integer(max_tokens, "max_tokens"), integer(top_k, "top_k"), integer(seed, "seed", MAX_SEED)
    if not isinstance(temp, (int, float)) or isinstance(temp, bool) or not (temp >= 0) or math.isinf(temp):
        raise UserError("E_BAD_TEMPERATURE", f"row {i}: temperature must be ≥ 0 (0 = greedy), got {temp!r}")
    if not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or top_p != top_p:
        raise UserError("E_BAD_ARG", f"row {i}: top_p must be a number (1 = off), got {top_p!r}")
    stop = r.get("stop_tokens")
    stop = set() if stop is None else set(token_tensor(stop, f"row {i} stop_tokens", 1 << 62).tolist())
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": float(temp), "top_k": top_k, "top_p": float(top_p),
            "stop": stop, "gen": torch.Generator().manual_seed(seed), "ids": [], "logprobs": [], "finish": "length",
            "done": max_tokens == 0}


def choose(logits: torch.Tensor, rows: list[dict]) -> tuple[list[int], list[float]]:
    """logits (b, V) float32 of rows (b) → the chosen ids and their log-probs at temperature 1 (CPU lists)."""
    b, V = logits.shape
    dev = logits.device
    ids = logits.argmax(dim=-1)  # (b) greedy: first max
    sampled = [j for j, r in enumerate(rows) if r["temperature"] > 0]
    if sampled:
        S = torch.tensor(sampled, device=dev)
        temp = torch.tensor([rows[j]["temperature"] for j in sampled], dtype=torch.float64, device=dev)
        top_k = torch.tensor([rows[j]["top_k"] for j in sampled], device=dev)
        top_p = torch.tensor([rows[j]["top_p"] for j in sampled], dtype=torch.float64, device=dev)
        u = torch.tensor([float(torch.rand((), dtype=torch.float64, generator=rows[j]["gen"])) for j in sampled],
                         dtype=torch.float64, device=dev)  # (s) one draw per sampled row
        ids[S] = draw(logits[S].double() / temp[:, None], top_k, top_p, u)
    lp = log_softmax64(logits).gather(1, ids[:, None])[:, 0]  # (b)
    return ids.tolist(), lp.tolist()


def draw(z: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """z (s, V) float64 scaled logits, top_k (s), top_p (s), u (s) uniform draws → ids (s)."""
    s, V = z.shape
    use_k = (top_k > 0) & (top_k < V)  # (s)
    use_p = top_p < 1  # (s)
    order = None
    if bool((use_k | use_p).any()):
        vals, order = torch.sort(z, dim=-1, descending=True, stable=True)  # (s, V) ties: lower id first
        if bool(use_k.any()):
            kth = vals.gather(1, (top_k - 1).clamp(min=0)[:, None])  # (s, 1)
            z = torch.where(use_k[:, None] & (z < kth), torch.full_like(z, float("-inf")), z)
    probs = torch.softmax(z, dim=-1)  # (s, V)
    if bool(use_p.any()):
        ps = probs.gather(1, order)  # (s, V) by rank
        cum = ps.cumsum(dim=-1)
        keep = torch.cat([torch.ones(s, 1, dtype=torch.bool, device=z.device), cum[:, :-1] < top_p[:, None]], dim=1)
        keep |= ~use_p[:, None]
        cut = torch.zeros_like(probs).scatter(1, order, ps * keep)
        probs = torch.where(use_p[:, None], cut / cut.sum(-1, keepdim=True), probs)
    cum = probs.cumsum(dim=-1)  # (s, V) in id order
    ids = (cum <= u[:, None]).sum(-1)  # the first id whose cumulative probability exceeds u
    last = V - 1 - (probs > 0).flip(-1).int().argmax(-1)  # rounding left u above the total: the last possible id
    return torch.where(ids >= V, last, ids)


def _record(rows: list[dict], ids: list[int], lps: list[float]) -> None:
    for r, i, lp in zip(rows, ids, lps):
        r["ids"].append(i)
        r["logprobs"].append(lp)
        if i in r["stop"]:
            r["finish"], r["done"] = "eos", True
        if len(r["ids"]) >= r["max_tokens"]:
            r["done"] = True


def sample(w, req: dict) -> dict:
    m = w.require_open()
    V = w.config.vocab_size
    raw = parse_rows(w, req)
    rows = [_row(r, i, V) for i, r in enumerate(raw)]
    names = [r.get("adapter") for r in raw]
    adapters = [w.adapter(n) for n in names]
    order = sorted((i for i, r in enumerate(rows) if not r["done"] and w.mine(i)), key=lambda i: (adapter_key(names[i]), -rows[i]["prompt"].numel(), i))
    with torch.no_grad():
        for group in _cache_groups(order, rows, w.max_tokens_per_pass):
            _generate(w, [rows[i] for i in group], [adapters[i] for i in group])
    return {"rows": [{"ids": torch.tensor(r["ids"], dtype=torch.int32), "logprobs": torch.tensor(r["logprobs"], dtype=torch.float64),
                      "finish": r["finish"]} for r in rows]}


def _cache_groups(order: list[int], rows: list[dict], budget: int) -> list[list[int]]:
    """Consecutive rows of `order` whose KV cache, rows × longest (prompt + max_tokens), fits the token budget."""
    groups, cur, longest = [], [], 0
    for i in order:
        n = rows[i]["prompt"].numel() + max(1, rows[i]["max_tokens"])
        if cur and (len(cur) + 1) * max(longest, n) > budget:
            groups.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    return groups + [cur] if cur else groups


def _pick(m, h: torch.Tensor, rows: list[dict]) -> None:
    """h (b, C) last hidden states of rows (b) → each row's next token, the head a chunk of rows at a time."""
    step = chunk_rows(m.lm_head.weight.shape[0])
    for s in range(0, len(rows), step):
        part = rows[s:s + step]
        _record(part, *choose(m.logits(h[s:s + step]), part))


def _generate(w, rows: list[dict], adapters: list) -> None:
    m, c, budget = w.model, w.config, w.max_tokens_per_pass
    dev = m.device
    B = len(rows)
    T0 = [r["prompt"].numel() for r in rows]
    capacity = max(t + max(1, r["max_tokens"]) for t, r in zip(T0, rows))
    cache = KVCache.alloc(c, B, capacity, dev, m.dtype)

    # prefill: contiguous chunks of rows, rows × longest prompt ≤ budget
    s = 0
    while s < B:
        e, longest = s + 1, T0[s]
        while e < B and (e - s + 1) * max(longest, T0[e]) <= budget:
            longest = max(longest, T0[e])
            e += 1
        x = pad([r["prompt"] for r in rows[s:e]], dev)  # (b, T)
        h = m(x, m.full_pass(x.shape[1], LoraBatch.of(adapters[s:e]), cache.rows(s, e)))  # (b, T, C)
        last = h[torch.arange(e - s, device=dev), torch.tensor(T0[s:e], device=dev) - 1]  # (b, C)
        _pick(m, last, rows[s:e])
        s = e

    live = list(range(B))  # rows held by the cache, in cache order
    while True:
        active = [j for j in live if not rows[j]["done"]]
        if not active:
            return
        if len(active) <= len(live) // 2:  # compact: the cache keeps only the rows still going
            keep = torch.tensor([live.index(j) for j in active], device=dev)
            cache, live = cache.select(keep), active
        slots = [min(T0[j] + len(rows[j]["ids"]) - 1, capacity - 1) for j in live]  # position of each row's newest token
        keys = max(slots[k] for k, j in enumerate(live) if not rows[j]["done"]) + 1
        tokens = torch.tensor([[rows[j]["ids"][-1]] for j in live], device=dev)  # (b, 1)
        slot_t = torch.tensor(slots, device=dev)
        for s in range(0, len(live), budget):
            e = min(len(live), s + budget)
            part = live[s:e]
            p = m.decode_pass(slot_t[s:e], keys, LoraBatch.of([adapters[j] for j in part]), cache.rows(s, e))
            h = m(tokens[s:e], p)[:, 0]  # (b, C)
            go = [k for k, j in enumerate(part) if not rows[j]["done"]]
            if go:
                _pick(m, h[torch.tensor(go, device=dev)], [rows[part[k]] for k in go])
