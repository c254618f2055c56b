"""Shared test helpers: paths, the tiny random checkpoints tests make themselves, and assert_close."""
import json
import os
import struct
import sys
import tempfile
import unittest
from pathlib import Path

import torch

WORKER = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WORKER))

from colloquy_worker.checkpoint import SafetensorsFile  # noqa: E402
from colloquy_worker.state import Worker, open_model  # noqa: E402

SHARED = Path(os.environ.get("COLLOQUY_SHARED", WORKER.parent.parent / "shared"))
# where open_worker puts the model: cpu, or cuda on a GPU machine (scripts/device/check.sh); results come back on the CPU
DEVICE = os.environ.get("COLLOQUY_TEST_DEVICE", "cpu")
TINY = SHARED / "fixtures" / "hf-llama" / "tiny-llama-gqa"
ALL = ["q", "k", "v", "o", "gate", "up", "down"]
ADAMW = {"kind": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}


def require_tiny():
    if not (TINY / "reference.safetensors").exists():
        raise unittest.SkipTest(f"{TINY} is missing (the shared fixtures live in ../shared beside the repository; "
                                "set COLLOQUY_SHARED to point elsewhere)")
    return TINY


def read_safetensors(path) -> dict[str, torch.Tensor]:
    f = SafetensorsFile(str(path))
    out = {k: f.get(k).clone() for k in f.tensors}
    f.close()
    return out


def write_safetensors(path, tensors: dict[str, torch.Tensor]) -> None:
    names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int32: "I32"}
    header, off, blobs = {}, 0, []
    for name, t in tensors.items():
        t = t.contiguous()
        n = t.numel() * t.element_size()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + n]}
        buf = bytearray(n)
        if n:
            torch.frombuffer(buf, dtype=t.dtype, count=t.numel()).copy_(t.reshape(-1))
        blobs.append(bytes(buf))
        off += n
    h = json.dumps({"__metadata__": {"format": "pt"}, **header}).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def random_checkpoint(folder, *, tied=False, rope_scaling=None, dtype=torch.float32, shards=1, seed=0,
                      transformers5=False, vocab=61, dim=32, layers=2, heads=4, kv_heads=2, hidden=48) -> Path:
    """A small random LlamaForCausalLM checkpoint (config.json + safetensors, sharded when shards > 1)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hs = dim // heads
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.2):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    t = {"model.embed_tokens.weight": rnd(vocab, dim, scale=1.0)}
    for l in range(layers):
        p = f"model.layers.{l}"
        t[f"{p}.input_layernorm.weight"] = (1 + rnd(dim, scale=0.1).float()).to(dtype)
        t[f"{p}.self_attn.q_proj.weight"] = rnd(heads * hs, dim)
        t[f"{p}.self_attn.k_proj.weight"] = rnd(kv_heads * hs, dim)
        t[f"{p}.self_attn.v_proj.weight"] = rnd(kv_heads * hs, dim)
        t[f"{p}.self_attn.o_proj.weight"] = rnd(dim, heads * hs)
        t[f"{p}.mlp.gate_proj.weight"] = rnd(hidden, dim)
        t[f"{p}.mlp.up_proj.weight"] = rnd(hidden, dim)
        t[f"{p}.mlp.down_proj.weight"] = rnd(dim, hidden)
        t[f"{p}.post_attention_layernorm.weight"] = (1 + rnd(dim, scale=0.1).float()).to(dtype)
    t["model.norm.weight"] = (1 + rnd(dim, scale=0.1).float()).to(dtype)
    if not tied:
        t["lm_head.weight"] = rnd(vocab, dim)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim, "num_hidden_layers": layers,
           "num_attention_heads": heads, "num_key_value_heads": kv_heads, "intermediate_size": hidden, "vocab_size": vocab,
           "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": tied,
           "bos_token_id": 1, "eos_token_id": 2}
    if transformers5:
        cfg["rope_parameters"] = {"rope_theta": 500000.0, "rope_type": "default", **(rope_scaling or {})}
        cfg["dtype"] = "float32"
    else:
        cfg["rope_theta"] = 500000.0
        cfg["torch_dtype"] = "float32"
        if rope_scaling:
            cfg["rope_scaling"] = rope_scaling
    (folder / "config.json").write_text(json.dumps(cfg))
    if shards == 1:
        write_safetensors(folder / "model.safetensors", t)
    else:
        names = list(t)
        weight_map = {}
        for s in range(shards):
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: t[n] for n in names[s::shards]}
            write_safetensors(folder / file, part)
            weight_map.update({n: file for n in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


_TMP = tempfile.TemporaryDirectory(prefix="colloquy-worker-tests-")


def synthetic_model(name="plain", **kw) -> Path:
    """A random checkpoint made once per test run (kept in a temp folder)."""
    folder = Path(_TMP.name) / name
    if not (folder / "config.json").exists():
        random_checkpoint(folder, **kw)
    return folder


def open_worker(folder, budget=4096, dtype="float32") -> Worker:
    w = Worker()
    open_model(w, {"model": str(folder), "device": DEVICE, "dtype": dtype, "max_tokens_per_pass": budget})
    return w


def i32(xs) -> torch.Tensor:
    return torch.tensor(list(xs), dtype=torch.int32)


def f64(xs) -> torch.Tensor:
    return torch.tensor(list(xs), dtype=torch.float64)


def assert_close(label: str, got: torch.Tensor, want: torch.Tensor, tol: float, relative_to_max: bool = False) -> float:
    """Max |got − want| (divided by max |want| when relative_to_max) ≤ tol; the failure names the worst element."""
    got, want = got.detach().cpu().double().reshape(-1), want.detach().cpu().double().reshape(-1)
    if got.shape != want.shape:
        raise AssertionError(f"{label}: {got.numel()} values, expected {want.numel()}")
    nan_g, nan_w = torch.isnan(got), torch.isnan(want)
    if not torch.equal(nan_g, nan_w):
        raise AssertionError(f"{label}: NaN at different places")
    d = (got - want).abs().masked_fill(nan_w, 0)
    if d.numel() == 0:
        return 0.0
    scale = float(want.abs().masked_fill(nan_w, 0).max()) if relative_to_max else 1.0
    worst = int(d.argmax())
    err = float(d[worst]) / (scale or 1.0)
    if not err <= tol:
        raise AssertionError(f"{label}: NOT OK, worst element {worst}: got {float(got[worst])!r}, want {float(want[worst])!r} "
                             f"({'relative ' if relative_to_max else ''}error {err:.3g} > {tol:g})")
    return err


def report(label: str, value: float) -> None:
    print(f"  {label}: {value:.3g}", file=sys.stderr)
