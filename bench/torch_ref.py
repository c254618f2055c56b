#!/usr/bin/env python3
"""
The PyTorch reference of colloquy's benchmark (bench/bench.ts): the same LLaMA-family model, written the way a
researcher would write it in plain PyTorch (Hugging Face's LlamaRMSNorm, rotate-half RoPE, eager causal attention
with an explicit matmul + softmax, SwiGLU, PEFT-style LoRA on all seven linears, torch.optim.AdamW), timed on the
same cases with the same protocol: warm-up runs, then the median of several.

Run with Debian's python3-torch and OpenBLAS (apt install python3-torch libopenblas0-pthread):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS=2 python3 bench/torch_ref.py --check
torch's own threads are set to 1 (elementwise work on one thread); matrix products use OpenBLAS's two threads.
Without OpenBLAS, Debian's torch falls back to the reference BLAS (about 20× slower): --check says so, loudly.

  python3 bench/torch_ref.py --check                        the BLAS in use and its 1024² matmul GFLOP/s (JSON)
  python3 bench/torch_ref.py --case '{"case": ..., ...}'     one case (JSON in, JSON out)
  python3 bench/torch_ref.py --serve                         JSON lines on stdin (see serve()), one JSON line out each
A case: {"case": "train_lora" | "train_full" | "sample" | "score", "model": {dim, layers, heads, kv_heads, hidden,
vocab, seq, tied, theta, eps}, "batch", "seq", "rank", "alpha", "new_tokens", "prompt", "warmup", "reps", "seed"}.
Timing depends only on shapes, so weights are random (seeded).
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)


# ---- the model ----

class RMSNorm(nn.Module):
    """transformers' LlamaRMSNorm."""

    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


class LoraLinear(nn.Module):
    """y = x W^T + scaling · B(A(x)), as PEFT's lora.Linear (no dropout); rank 0 = a plain linear."""

    def __init__(self, inp, out, rank, alpha):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, inp) * 0.02)
        self.rank = rank
        if rank:
            self.lora_A = nn.Parameter(torch.empty(rank, inp).uniform_(-1 / math.sqrt(inp), 1 / math.sqrt(inp)))
            self.lora_B = nn.Parameter(torch.randn(out, rank) * 0.01)
            self.scaling = alpha / rank

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.rank:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        return y


def head_dim(c):
    return c.get("head_dim") or c["dim"] // c["heads"]


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Block(nn.Module):
    def __init__(self, c, rank, alpha):
        super().__init__()
        C, H, KVH, HS, Fh = c["dim"], c["heads"], c["kv_heads"], head_dim(c), c["hidden"]
        self.H, self.KVH, self.HS = H, KVH, HS
        self.attn_norm = RMSNorm(C, c["eps"])
        self.q = LoraLinear(C, H * HS, rank, alpha)
        self.k = LoraLinear(C, KVH * HS, rank, alpha)
        self.v = LoraLinear(C, KVH * HS, rank, alpha)
        self.o = LoraLinear(H * HS, C, rank, alpha)
        self.mlp_norm = RMSNorm(C, c["eps"])
        self.gate = LoraLinear(C, Fh, rank, alpha)
        self.up = LoraLinear(C, Fh, rank, alpha)
        self.down = LoraLinear(Fh, C, rank, alpha)

    def forward(self, x, cos, sin, mask, cache=None, pos=0):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(B, T, self.H, self.HS).transpose(1, 2)  # (B, H, T, HS)
        k = self.k(h).view(B, T, self.KVH, self.HS).transpose(1, 2)
        v = self.v(h).view(B, T, self.KVH, self.HS).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:  # (B, KVH, capacity, HS) each; keys and values of positions 0 .. pos+T−1
            kc, vc = cache
            kc[:, :, pos:pos + T] = k
            vc[:, :, pos:pos + T] = v
            k, v = kc[:, :, :pos + T], vc[:, :, :pos + T]
        if self.KVH != self.H:  # transformers' repeat_kv
            k = k.repeat_interleave(self.H // self.KVH, dim=1)
            v = v.repeat_interleave(self.H // self.KVH, dim=1)
        att = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.HS)
        if mask is not None:
            att = att + mask
        att = F.softmax(att, dim=-1, dtype=torch.float32)
        y = torch.matmul(att, v).transpose(1, 2).reshape(B, T, self.H * self.HS)
        x = x + self.o(y)
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, c, rank, alpha):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c["vocab"], c["dim"])
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList([Block(c, rank, alpha) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["dim"], c["eps"])
        self.lm_head = nn.Linear(c["dim"], c["vocab"], bias=False)
        if c.get("tied"):
            self.lm_head.weight = self.embed.weight
        HS = head_dim(c)
        inv = 1.0 / (c["theta"] ** (torch.arange(0, HS, 2, dtype=torch.float32) / HS))
        freqs = torch.outer(torch.arange(4096, dtype=torch.float32), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, ids, caches=None, pos=0):
        B, T = ids.shape
        x = self.embed(ids)
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        mask = None
        if T > 1:
            mask = torch.full((T, pos + T), float("-inf")).triu(pos + 1)
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, mask, caches[i] if caches is not None else None, pos)
        return self.lm_head(self.norm(x))


# ---- cases ----

def build(spec, rank):
    torch.manual_seed(spec.get("seed", 0))
    m = Model(spec["model"], rank, spec.get("alpha", 16))
    for name, p in m.named_parameters():
        p.requires_grad_(rank == 0 or "lora_" in name)
    return m


def tokens(spec, B, T):
    g = torch.Generator().manual_seed(spec.get("seed", 0) + 1)
    return torch.randint(0, spec["model"]["vocab"], (B, T), generator=g)


def train_step_fn(spec, rank):
    m = build(spec, rank)
    ids = tokens(spec, spec["batch"], spec["seq"])
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = m(ids)[:, :-1]  # as transformers' labels=input_ids: predict tokens 1 .. T−1
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()

    return step, spec["batch"] * spec["seq"]


def sample_fn(spec):
    m = build(spec, spec.get("rank", 8))
    c = spec["model"]
    B, P, N = spec["batch"], spec["prompt"], spec["new_tokens"]
    prompt = tokens(spec, B, P)
    HS, KVH = head_dim(c), c["kv_heads"]
    g = torch.Generator().manual_seed(spec.get("seed", 0) + 2)

    @torch.no_grad()
    def run():
        caches = [(torch.empty(B, KVH, P + N, HS), torch.empty(B, KVH, P + N, HS)) for _ in range(c["layers"])]
        logits = m(prompt, caches, 0)[:, -1]
        pos = P
        for _ in range(N):
            logp = F.log_softmax(logits, dim=-1)
            nxt = torch.multinomial(logp.exp(), 1, generator=g)  # (B, 1)
            logp.gather(1, nxt)  # the log-prob colloquy reports with each token
            logits = m(nxt, caches, pos)[:, -1]
            pos += 1

    return run, B * N


def score_fn(spec):
    m = build(spec, spec.get("rank", 8))
    ids = tokens(spec, spec["batch"], spec["seq"])

    @torch.no_grad()
    def run():
        logp = F.log_softmax(m(ids)[:, :-1], dim=-1)
        logp.gather(2, ids[:, 1:, None])

    return run, spec["batch"] * spec["seq"]


def prepare(spec):
    """The case's unit of work and its token count."""
    kind = spec["case"]
    if kind == "train_lora":
        return train_step_fn(spec, spec.get("rank", 8))
    if kind == "train_full":
        return train_step_fn(spec, 0)
    if kind == "sample":
        return sample_fn(spec)
    if kind == "score":
        return score_fn(spec)
    raise SystemExit(f"unknown case {kind}")


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_case(spec):
    fn, toks = prepare(spec)
    for _ in range(spec.get("warmup", 2)):
        fn()
    times = sorted(timed(fn) for _ in range(spec.get("reps", 5)))
    med = times[len(times) // 2]
    return {"case": spec["case"], "tokens": toks, "median_s": med, "tokens_per_s": toks / med, "times_s": times}


def serve():
    """JSON lines on stdin: {"op": "prepare", ...case} builds and warms a case up; {"op": "run"} times one run of it
    (so that the caller can interleave its own runs with these); {"op": "case", ...case} runs a whole case."""
    print(json.dumps({"ready": True, "check": blas_check()}), flush=True)
    current = None
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        op = msg.get("op", "case")
        if op == "prepare":
            fn, toks = prepare(msg)
            for _ in range(msg.get("warmup", 2)):
                fn()
            current = (fn, toks)
            print(json.dumps({"prepared": msg["case"], "tokens": toks}), flush=True)
        elif op == "run":
            print(json.dumps({"seconds": timed(current[0]), "tokens": current[1]}), flush=True)
        else:
            print(json.dumps(run_case(msg)), flush=True)


# ---- is this a fair anchor? ----

def blas_check():
    try:
        maps = open("/proc/self/maps").read()
    except OSError:
        maps = ""
    libs = sorted({line.split()[-1] for line in maps.splitlines() if "blas" in line.lower() and "/" in line})
    openblas = any("openblas" in lib for lib in libs)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    best = 1e9
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    gflops = 2 * 1024 ** 3 / best / 1e9
    ok = openblas and gflops > 50
    if not ok:
        sys.stderr.write(
            "\n!!!!! WARNING: PyTorch is NOT using OpenBLAS (or it is slow: %.1f GFLOP/s on a 1024² matmul).\n"
            "!!!!! The comparison is not fair. Install it: apt install python3-torch libopenblas0-pthread, and run with\n"
            "!!!!! LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS=2\n\n" % gflops)
    return {
        "torch": torch.__version__,
        "blas_libs": libs,
        "openblas": openblas,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "matmul_1024_gflops": gflops,
        "ok": ok,
    }


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return
    if args[0] == "--check":
        print(json.dumps(blas_check()))
    elif args[0] == "--case":
        print(json.dumps(run_case(json.loads(args[1]))))
    elif args[0] == "--serve":
        serve()
    else:
        raise SystemExit(f"unknown argument {args[0]} (see --help)")


if __name__ == "__main__":
    main()
