"""
The LLaMA decoder, as Hugging Face's LlamaForCausalLM computes it: RMSNorm, rotary embedding in the rotate-half
convention (with llama3 or linear scaling), grouped-query attention, SwiGLU MLP, tied or untied LM head.

Shape letters: B rows, T tokens per row (rows right-padded to T), S key positions, C model width, NH query heads,
KVH key/value heads, HS head size, F MLP width, V vocabulary.

The base is frozen: its weights are parameters without gradient, in one dtype (float32, bfloat16, float16). Every
linear layer of a block goes through `Pass.lora` (lora.py), which adds the low-rank branches of the batch's
adapters. Module names equal the checkpoint's tensor names (model.layers.0.self_attn.q_proj.weight, …).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import ModelConfig

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def fround(x: float) -> float:
    """x rounded to float32 (Math.fround)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def rope_inv_freq(c: ModelConfig) -> torch.Tensor:
    """(HS/2) float64: transformers' float32 inverse frequencies with llama3 or linear scaling, as the TS engine has them."""
    hs, s = c.head_dim, c.rope_scaling
    inv = [fround(1 / fround(c.rope_theta ** fround(2 * i / hs))) for i in range(hs // 2)]
    if s and s["type"] == "linear":
        inv = [f / s["factor"] for f in inv]
    elif s and s["type"] == "llama3":
        factor, lo, hi, orig = s["factor"], s["low_freq_factor"], s["high_freq_factor"], s["original_max_position_embeddings"]
        low_wavelen, high_wavelen = orig / lo, orig / hi
        for i, f in enumerate(inv):
            wavelen = 2 * math.pi / f
            if wavelen < high_wavelen:
                continue
            if wavelen > low_wavelen:
                inv[i] = fround(f / factor)
            else:
                smooth = (orig / wavelen - lo) / (hi - lo)
                inv[i] = fround((1 - smooth) * (f / factor) + smooth * f)
    return torch.tensor(inv, dtype=torch.float64)


class Rope:
    """cos and sin tables (P, HS/2) in the model's dtype: angle p·inv_freq in float64, rounded once; grown on demand."""

    def __init__(self, c: ModelConfig, device, dtype):
        self.inv_freq = rope_inv_freq(c)  # (HS/2) float64, on the CPU
        self.device, self.dtype = device, dtype
        self._build(c.max_seq_len)

    def _build(self, n: int):
        angle = torch.arange(n, dtype=torch.float64)[:, None] * self.inv_freq[None, :]  # (P, HS/2)
        self.cos = angle.cos().to(self.device, self.dtype)
        self.sin = angle.sin().to(self.device, self.dtype)

    def at(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, T) long → cos, sin (B, 1, T, HS/2)."""
        n = int(positions.max()) + 1 if positions.numel() else 0
        if n > self.cos.shape[0]:
            self._build(max(n, 2 * self.cos.shape[0]))
        return self.cos[positions][:, None], self.sin[positions][:, None]

    def first(self, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions 0..T−1 for every row → cos, sin (1, 1, T, HS/2)."""
        if T > self.cos.shape[0]:
            self._build(max(T, 2 * self.cos.shape[0]))
        return self.cos[None, None, :T], self.sin[None, None, :T]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, HS) rotated in rotate-half pairs (i, i + HS/2): [x1 cos − x2 sin, x2 cos + x1 sin]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class KVCache:
    """Static keys and values per layer: k[l], v[l] (B, KVH, S_max, HS), keys after rope."""

    def __init__(self, k: list, v: list):
        self.k, self.v = k, v

    @staticmethod
    def alloc(c: ModelConfig, B: int, capacity: int, device, dtype) -> "KVCache":
        shape = (B, c.n_kv_heads, capacity, c.head_dim)
        return KVCache([torch.zeros(shape, device=device, dtype=dtype) for _ in range(c.n_layers)],
                       [torch.zeros(shape, device=device, dtype=dtype) for _ in range(c.n_layers)])

    def rows(self, s: int, e: int) -> "KVCache":
        """Rows s..e−1 as views (writes go to this cache)."""
        return KVCache([k[s:e] for k in self.k], [v[s:e] for v in self.v])

    def select(self, idx: torch.Tensor) -> "KVCache":
        """A compacted copy holding rows idx (B')."""
        return KVCache([k.index_select(0, idx) for k in self.k], [v.index_select(0, idx) for v in self.v])


@dataclass
class Pass:
    """What every layer of one forward pass needs besides x."""

    cos: torch.Tensor  # (B | 1, 1, T, HS/2)
    sin: torch.Tensor
    lora: object | None = None  # lora.LoraBatch: adds each row's adapter branch to a linear's output
    cache: KVCache | None = None  # prefill (slots None): keys 0..T−1 are written; decode: one key per row at `slots`
    slots: torch.Tensor | None = None  # (B) long, decode: each row's position (its cache slot)
    keys: int = 0  # decode: key positions 0..keys−1 are read
    mask: torch.Tensor | None = None  # decode: (B, 1, 1, keys) bool, True where a key is visible


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """q (B, NH, T, HS), k v (B, KVH, S, HS); mask (B, 1, T, S) bool or None for causal (T = S) → (B, NH, T, HS)."""
    B, NH, _, HS = q.shape
    KVH, S = k.shape[1], k.shape[2]
    if NH != KVH:  # grouped-query: query head h reads key/value head h // (NH / KVH)
        k = k[:, :, None].expand(B, KVH, NH // KVH, S, HS).reshape(B, NH, S, HS)
        v = v[:, :, None].expand(B, KVH, NH // KVH, S, HS).reshape(B, NH, S, HS)
    if HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
    return attend_explicit(q, k, v, mask)


def attend_explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """attend without scaled_dot_product_attention (PyTorch 1.13), k and v with NH heads: scores in float32."""
    T, S, HS = q.shape[2], k.shape[2], q.shape[3]
    scores = (q @ k.transpose(-2, -1)).float() * (1.0 / math.sqrt(HS))  # (B, NH, T, S)
    if mask is None:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1).to(q.dtype) @ v


def project(lin: nn.Linear, x: torch.Tensor, layer: int, kind: str, p: Pass) -> torch.Tensor:
    """y (B, T, out) = x W^T, plus the LoRA branch of each row's adapter."""
    y = F.linear(x, lin.weight)
    return p.lora.apply(layer, kind, x, y) if p.lora is not None else y


def frozen_linear(inp: int, out: int) -> nn.Linear:
    return nn.Linear(inp, out, bias=False, device="meta")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim, device="meta"), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.c = c
        for kind in ("q", "k", "v", "o"):
            out, inp = c.linear_shape(kind)
            setattr(self, f"{kind}_proj", frozen_linear(inp, out))

    def forward(self, x: torch.Tensor, layer: int, p: Pass) -> torch.Tensor:
        c = self.c
        B, T, _ = x.shape
        q = project(self.q_proj, x, layer, "q", p).view(B, T, c.n_heads, c.head_dim).transpose(1, 2)  # (B, NH, T, HS)
        k = project(self.k_proj, x, layer, "k", p).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)  # (B, KVH, T, HS)
        v = project(self.v_proj, x, layer, "v", p).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)  # (B, KVH, T, HS)
        q, k = apply_rope(q, p.cos, p.sin), apply_rope(k, p.cos, p.sin)
        if p.cache is None:
            y = attend(q, k, v, None)
        elif p.slots is None:  # prefill: the rows' keys go to slots 0..T−1, attention as without a cache
            p.cache.k[layer][:, :, :T] = k
            p.cache.v[layer][:, :, :T] = v
            y = attend(q, k, v, None)
        else:  # decode (T = 1): each row writes its slot, then reads keys 0..keys−1 under its mask
            rows = torch.arange(B, device=x.device)
            p.cache.k[layer][rows, :, p.slots] = k[:, :, 0]
            p.cache.v[layer][rows, :, p.slots] = v[:, :, 0]
            y = attend(q, p.cache.k[layer][:, :, :p.keys], p.cache.v[layer][:, :, :p.keys], p.mask)
        y = y.transpose(1, 2).reshape(B, T, c.n_heads * c.head_dim)  # (B, T, NH·HS)
        return project(self.o_proj, y, layer, "o", p)


class MLP(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        for kind in ("gate", "up", "down"):
            out, inp = c.linear_shape(kind)
            setattr(self, f"{kind}_proj", frozen_linear(inp, out))

    def forward(self, x: torch.Tensor, layer: int, p: Pass) -> torch.Tensor:
        h = F.silu(project(self.gate_proj, x, layer, "gate", p)) * project(self.up_proj, x, layer, "up", p)  # (B, T, F)
        return project(self.down_proj, h, layer, "down", p)


class Block(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.dim, c.norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.dim, c.norm_eps)
        self.mlp = MLP(c)

    def forward(self, x: torch.Tensor, layer: int, p: Pass) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), layer, p)
        return x + self.mlp(self.post_attention_layernorm(x), layer, p)


class Decoder(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.dim, device="meta")
        self.embed_tokens.weight.requires_grad_(False)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.dim, c.norm_eps)


class Transformer(nn.Module):
    """LlamaForCausalLM: `forward` gives the final hidden states (after the last norm), `logits` applies the head."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.config = c
        self.model = Decoder(c)
        self.lm_head = frozen_linear(c.dim, c.vocab_size)
        self.rope: Rope | None = None

    @staticmethod
    def from_weights(c: ModelConfig, weights: dict[str, torch.Tensor]) -> "Transformer":
        """A model whose parameters are `weights` (HF names; lm_head.weight absent when tied), frozen."""
        m = Transformer(c)
        for name, t in weights.items():
            path, _, attr = name.rpartition(".")
            setattr(m.get_submodule(path), attr, nn.Parameter(t, requires_grad=False))
        if c.tied_embeddings:
            m.lm_head.weight = m.model.embed_tokens.weight
        w = m.model.embed_tokens.weight
        m.rope = Rope(c, w.device, w.dtype)
        return m

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    def forward(self, tokens: torch.Tensor, p: Pass) -> torch.Tensor:
        """tokens (B, T) long → hidden (B, T, C) after the final norm, in the model's dtype."""
        x = F.embedding(tokens, self.model.embed_tokens.weight)  # (B, T, C)
        for layer, block in enumerate(self.model.layers):
            x = block(x, layer, p)
        return self.model.norm(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h (…, C) → logits (…, V) float32."""
        return F.linear(h, self.lm_head.weight).float()

    def full_pass(self, T: int, lora=None, cache: KVCache | None = None) -> Pass:
        """Every row from position 0 (right-padded to T), causal; with `cache`, a prefill that fills slots 0..T−1."""
        cos, sin = self.rope.first(T)
        return Pass(cos, sin, lora=lora, cache=cache)

    def decode_pass(self, slots: torch.Tensor, keys: int, lora, cache: KVCache) -> Pass:
        """One new token per row at position slots[b] (B), attending to cache slots 0..slots[b]."""
        cos, sin = self.rope.at(slots[:, None])
        mask = torch.arange(keys, device=slots.device)[None, :] <= slots[:, None]  # (B, keys)
        return Pass(cos, sin, lora=lora, cache=cache, slots=slots, keys=keys, mask=mask[:, None, None, :])

