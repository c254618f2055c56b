"""
LoRA adapters on one frozen base: y = x W^T + scale · (x A^T) B^T with A (R, in), B (out, R), scale = alpha / R
(alpha / √R with rsLoRA). An adapter's weights, gradients and optimizer state are float32 whatever the base dtype;
the branch is computed in float32 and added to the base output.

A batch may mix rows of different adapters and of the base (adapter None): the caller orders rows so that each
adapter's rows are contiguous, and LoraBatch adds one low-rank product per (segment, linear).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checkpoint import HF_LINEAR_PATH, LINEAR_KINDS, ModelConfig
from .errors import UserError

TARGET_ALIASES = {**{k: k for k in LINEAR_KINDS}, **{f"{k}_proj": k for k in LINEAR_KINDS}}


def peft_name(layer: int, kind: str, ab: str) -> str:
    return f"base_model.model.model.layers.{layer}.{HF_LINEAR_PATH[kind]}.lora_{ab}.weight"


@dataclass(frozen=True)
class LoraConfig:
    rank: int  # R
    alpha: float
    rslora: bool
    targets: tuple  # canonical order: q k v o gate up down

    @property
    def scale(self) -> float:
        return self.alpha / self.rank ** 0.5 if self.rslora else self.alpha / self.rank

    @staticmethod
    def parse(d) -> "LoraConfig":
        if not isinstance(d, dict):
            raise UserError("E_BAD_ADAPTER", "lora must be an object {rank, alpha, rslora, targets}")
        rank, alpha, rslora, targets = d.get("rank"), d.get("alpha"), d.get("rslora", False), d.get("targets")
        if isinstance(rank, float) and rank.is_integer():
            rank = int(rank)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise UserError("E_BAD_ADAPTER", f"lora rank must be a positive integer, got {rank!r}")
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha == alpha:
            raise UserError("E_BAD_ADAPTER", f"lora alpha must be a number, got {alpha!r}")
        if not isinstance(rslora, bool):
            raise UserError("E_BAD_ADAPTER", f"lora rslora must be true or false, got {rslora!r}")
        if not isinstance(targets, list) or not targets:
            raise UserError("E_BAD_ADAPTER", f"lora targets must be a non-empty list of q k v o gate up down, got {targets!r}")
        bad = [t for t in targets if TARGET_ALIASES.get(t) is None]
        if bad:
            raise UserError("E_BAD_ADAPTER", f"lora target {bad[0]!r} is not one of q k v o gate up down")
        chosen = {TARGET_ALIASES[t] for t in targets}
        return LoraConfig(rank, alpha, rslora, tuple(k for k in LINEAR_KINDS if k in chosen))

    def wire(self) -> dict:
        alpha = int(self.alpha) if float(self.alpha).is_integer() else self.alpha
        return {"rank": self.rank, "alpha": alpha, "rslora": self.rslora, "targets": list(self.targets)}

    def describe(self) -> str:
        return f"rank {self.rank}, alpha {self.alpha}{', rsLoRA' if self.rslora else ''}, targets {','.join(self.targets)}"

    def size_table(self, c: ModelConfig) -> list[tuple[str, tuple[int, int], int, str, str]]:
        """(PEFT name, shape, layer, kind, "A" | "B") of every tensor, in canonical order."""
        out = []
        for layer in range(c.n_layers):
            for kind in self.targets:
                o, i = c.linear_shape(kind)
                out.append((peft_name(layer, kind, "A"), (self.rank, i), layer, kind, "A"))
                out.append((peft_name(layer, kind, "B"), (o, self.rank), layer, kind, "B"))
        return out


class Adapter:
    """One named adapter: float32 A (R, in) and B (out, R) per targeted linear; trainable ones carry .grad and an optimizer."""

    def __init__(self, name: str, lora: LoraConfig, c: ModelConfig, device, trainable: bool):
        self.name, self.lora, self.scale = name, lora, lora.scale
        self.table = lora.size_table(c)
        self.params = [torch.zeros(shape, dtype=torch.float32, device=device) for _, shape, *_ in self.table]
        self.pairs: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        for i in range(0, len(self.params), 2):
            _, _, layer, kind, _ = self.table[i]
            self.pairs[(layer, kind)] = (self.params[i], self.params[i + 1])
        self.trainable = trainable
        if trainable:
            for p in self.params:
                p.requires_grad_(True)
                p.grad = torch.zeros_like(p)
        self.optimizer = None  # optim.Optimizer for trainable adapters

    def named(self) -> list[tuple[str, torch.Tensor]]:
        """(PEFT name, tensor) in canonical order."""
        return [(t[0], p) for t, p in zip(self.table, self.params)]


class LoraBatch:
    """Row segments [start, end) of a batch that share an adapter; `apply` adds their branches to a linear's output."""

    def __init__(self, adapters: list):
        self.segments: list[tuple[int, int, Adapter]] = []
        start = 0
        for i in range(1, len(adapters) + 1):
            if i == len(adapters) or adapters[i] is not adapters[start]:
                if adapters[start] is not None:
                    self.segments.append((start, i, adapters[start]))
                start = i

    @staticmethod
    def of(adapters: list) -> "LoraBatch | None":
        b = LoraBatch(adapters)
        return b if b.segments else None

    def trainable(self) -> bool:
        return any(a.trainable for _, _, a in self.segments)

    def apply(self, layer: int, kind: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, T, in), y (B, T, out) = x W^T → y + scale · (x A^T) B^T on each segment's rows (float32 branch)."""
        parts, prev = [], 0
        for s, e, a in self.segments:
            pair = a.pairs.get((layer, kind))
            if pair is None:
                continue
            A, Bm = pair
            if s > prev:
                parts.append(y[prev:s])
            u = F.linear(x[s:e].float(), A) * a.scale  # (n, T, R)
            parts.append((y[s:e].float() + F.linear(u, Bm)).to(y.dtype))  # (n, T, out)
            prev = e
        if not parts:
            return y
        if prev < y.shape[0]:
            parts.append(y[prev:])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
