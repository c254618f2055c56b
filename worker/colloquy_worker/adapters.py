"""
Adapters in and out, as plain PEFT-named float32 tensors (src/engine/adapter-state.ts): create_adapter (PEFT's
initialisation from a seed), import_adapter (checked completely before anything is written), export_adapter.
"""
from __future__ import annotations

import torch

from .errors import MAX_SEED, UserError, need, need_int
from .lora import Adapter, LoraConfig
from .optim import Optimizer


def _name(req: dict) -> str:
    name = need(req, "name", str)
    if not name:
        raise UserError("E_BAD_ARG", "an adapter name must not be empty")
    return name


def create_adapter(w, req: dict) -> dict:
    w.require_open()
    name = _name(req)
    if name in w.adapters:
        raise UserError("E_ADAPTER_EXISTS", f"an adapter named {name} exists already")
    lora = LoraConfig.parse(need(req, "lora", dict))
    seed = need_int(req, "seed", 0, hi=MAX_SEED)
    opt = Optimizer.parse(need(req, "optimizer", dict))
    a = Adapter(name, lora, w.config, w.model.device, trainable=True)
    # PEFT: A ~ kaiming_uniform(a=√5) = U(−1/√in, 1/√in), B = 0; drawn on the CPU in canonical order, so that a
    # seed gives the same adapter on every device
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for (_, shape, _, _, ab), p in zip(a.table, a.params):
            if ab == "A":
                bound = 1 / shape[1] ** 0.5
                p.copy_(torch.empty(shape, dtype=torch.float32).uniform_(-bound, bound, generator=g))
    a.optimizer = Optimizer(opt, a.params)
    w.adapters[name] = a
    return {}


def import_adapter(w, req: dict) -> dict:
    w.require_open()
    name = _name(req)
    what = f"adapter {name}"
    lora = LoraConfig.parse(need(req, "lora", dict))
    tensors = _check_tensors(what, w.config, lora, need(req, "weights", list))
    existing = w.adapters.get(name)
    if existing is not None and existing.lora != lora:
        raise UserError("E_BAD_ADAPTER", f"{what} has {existing.lora.describe()}; the imported one has {lora.describe()} "
                        "(import it under another name, or with the same LoRA config)")
    state = req.get("optimizer")
    opt = existing.optimizer if existing is not None else None
    if state is not None and opt is None:
        raise UserError("E_BAD_ADAPTER", f"{what} has no optimizer, so its optimizer state cannot be imported "
                        "(create it with create_adapter first, or import the weights alone: optimizer null)")
    moments = _check_optimizer_state(what, existing, state) if state is not None else None
    a = existing if existing is not None else Adapter(name, lora, w.config, w.model.device, trainable=False)
    with torch.no_grad():
        for (tname, _), p in zip(a.named(), a.params):
            p.copy_(tensors[tname])
        if moments is not None:
            for key, per in moments.items():
                for buf, (tname, _) in zip(opt.moments[key], a.named()):
                    buf.copy_(per[tname])
            opt.step = state["step"]
    w.adapters[name] = a
    return {}


def export_adapter(w, req: dict) -> dict:
    w.require_open()
    a = w.adapter(_name(req))
    out = {"lora": a.lora.wire(), "weights": [{"name": n, "data": p.detach().float().cpu().clone()} for n, p in a.named()],
           "optimizer": None}
    if a.optimizer is not None:
        o = a.optimizer
        out["optimizer"] = {"step": o.step, "moments": {key: {n: buf.cpu().clone() for (n, _), buf in zip(a.named(), bufs)}
                                                        for key, bufs in o.moments.items()}}
    return out


def _check_tensors(what: str, c, lora: LoraConfig, given: list) -> dict[str, torch.Tensor]:
    """name → float32 CPU tensor, checked against the tensors `lora` needs on this model."""
    by_name = {}
    for i, t in enumerate(given):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("data"), torch.Tensor):
            raise UserError("E_BAD_ADAPTER", f"{what}: tensors[{i}] must be {{name, data: f32 tensor}}")
        if t["name"] in by_name:
            raise UserError("E_BAD_ADAPTER", f"{what}: tensor {t['name']} appears twice")
        if not t["data"].dtype.is_floating_point:
            raise UserError("E_BAD_ADAPTER", f"{what}: tensor {t['name']} is {t['data'].dtype}, expected f32")
        by_name[t["name"]] = t["data"]
    out = {}
    for name, shape, *_ in lora.size_table(c):
        t = by_name.pop(name, None)
        if t is None:
            raise UserError("E_MISSING_TENSOR", f"{what}: tensor {name} is missing (the tensors must match the LoRA config's rank and targets)")
        if tuple(t.shape) != shape:
            raise UserError("E_SHAPE", f"{what}: tensor {name} has shape {list(t.shape)} but this model needs {list(shape)} "
                            "(the adapter was made for a different base model or LoRA rank)")
        out[name] = t.float()
    if by_name:
        raise UserError("E_SHAPE", f"{what}: tensor {next(iter(by_name))} does not fit this model and LoRA config "
                        f"({len(by_name)} unexpected tensors)")
    return out


def _check_optimizer_state(what: str, a: Adapter, state) -> dict:
    """moment name → tensor name → float32 tensor of the parameter's shape, checked against a's optimizer."""
    if not isinstance(state, dict):
        raise UserError("E_BAD_ADAPTER", f"{what}: optimizer must be {{step, moments}} or null")
    step = state.get("step")
    if isinstance(step, float) and step.is_integer():
        step = int(step)
        state["step"] = step
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise UserError("E_BAD_ADAPTER", f"{what}: optimizer step must be an integer ≥ 0, got {step}")
    moments = state.get("moments") or {}
    if not isinstance(moments, dict):
        raise UserError("E_BAD_ADAPTER", f"{what}: optimizer moments must be an object")
    wanted = a.optimizer.moment_names()
    unknown = [k for k in moments if k not in wanted]
    if unknown:
        raise UserError("E_BAD_ADAPTER", f"{what}: optimizer moment {unknown[0]} does not belong to {a.optimizer.kind} "
                        f"(expected: {', '.join(wanted) or 'none'})")
    out = {}
    for key in wanted:
        per = moments.get(key)
        if not isinstance(per, dict):
            raise UserError("E_BAD_ADAPTER", f"{what}: optimizer moment {key} is missing")
        out[key] = {}
        for name, p in a.named():
            src = per.get(name)
            if not isinstance(src, torch.Tensor) or src.numel() != p.numel() or not src.dtype.is_floating_point:
                got = f"{src.numel()} values" if isinstance(src, torch.Tensor) else "missing"
                raise UserError("E_SHAPE", f"{what}: optimizer moment {key} of tensor {name} is {got}, expected {p.numel()}")
            out[key][name] = src.float().reshape(p.shape)
        extra = [n for n in per if n not in dict(a.named())]
        if extra:
            raise UserError("E_SHAPE", f"{what}: optimizer moment {key} names tensor {extra[0]}, which the adapter does not have")
    return out
