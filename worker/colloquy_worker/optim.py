"""
An adapter's optimizer, the arithmetic of src/engine/optim.ts: AdamW (decoupled weight decay, bias corrections, as
torch.optim.AdamW) and SGD (weight decay added to the gradient, optional momentum, as torch.optim.SGD), and
clipping by global norm. Parameters and moments are float32; each update is computed in float64 from them and
rounded once per stored value, as the TS engine's loop does, so that both engines agree to the bit on the CPU.
(torch.optim's float32 kernels — lerp, addcdiv — round differently in the last bit.)
"""
from __future__ import annotations

import math

import torch

from .errors import UserError, torn_on_failure

MOMENTS = {"adamw": ("exp_avg", "exp_avg_sq"), "sgd": ("momentum_buffer",)}


class Optimizer:
    def __init__(self, cfg: dict, params: list[torch.Tensor]):
        self.kind = cfg["kind"]
        self.beta1, self.beta2, self.eps, self.weight_decay = cfg["beta1"], cfg["beta2"], cfg["eps"], cfg["weight_decay"]
        self.params = params
        self.step = 0
        # moment name → one float32 buffer per parameter
        self.moments: dict[str, list[torch.Tensor]] = {name: [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in params]
                                                       for name in self.moment_names()}

    @staticmethod
    def parse(d) -> dict:
        if not isinstance(d, dict):
            raise UserError("E_BAD_ARG", "optimizer must be an object {kind, beta1, beta2, eps, weight_decay}")
        kind = d.get("kind")
        if kind not in MOMENTS:
            raise UserError("E_BAD_ARG", f'optimizer kind must be "adamw" or "sgd", got {kind!r}')
        out = {"kind": kind}
        for key, default in (("beta1", 0.9 if kind == "adamw" else 0.0), ("beta2", 0.999), ("eps", 1e-8), ("weight_decay", 0.0)):
            v = d.get(key, default)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise UserError("E_BAD_ARG", f"optimizer {key} must be a finite number ≥ 0, got {v!r}")
            out[key] = float(v)
        return out

    def moment_names(self) -> tuple:
        if self.kind == "sgd" and self.beta1 == 0:
            return ()
        return MOMENTS[self.kind]

    @torch.no_grad()
    def update(self, lr: float) -> None:
        """One step from the parameters' .grad (left as it is)."""
        b1, b2, eps, wd = self.beta1, self.beta2, self.eps, self.weight_decay
        with torn_on_failure("the optimizer step"):
            self.step += 1
            for i, p in enumerate(self.params):
                g = p.grad.double()
                if self.kind == "adamw":
                    step_size = lr / (1 - b1 ** self.step)
                    sqrt_bc2 = math.sqrt(1 - b2 ** self.step)
                    m, v = self.moments["exp_avg"][i], self.moments["exp_avg_sq"][i]
                    if wd:
                        p.copy_(p.double() * (1 - lr * wd))
                    m.copy_(b1 * m.double() + (1 - b1) * g)
                    v.copy_(b2 * v.double() + (1 - b2) * g * g)
                    p.copy_(p.double() - (step_size * m.double()) / (v.double().sqrt() / sqrt_bc2 + eps))
                else:
                    d = g + wd * p.double()
                    if b1 > 0:
                        buf = self.moments["momentum_buffer"][i]
                        buf.copy_(d if self.step == 1 else b1 * buf.double() + d)
                        d = buf.double()
                    p.copy_(p.double() - lr * d)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad.zero_()


@torch.no_grad()
def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """The L2 norm of all grads together; above max_norm (> 0) they are scaled by max_norm / (norm + 1e-6)."""
    ss = sum(float(p.grad.double().pow(2).sum()) for p in params)
    norm = math.sqrt(ss)
    if max_norm > 0 and norm > max_norm:
        k = max_norm / (norm + 1e-6)
        with torn_on_failure("clipping the gradients"):
            for p in params:
                p.grad.copy_(p.grad.double() * k)
    return norm
