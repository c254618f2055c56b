"""
Measures what the worker allocates on the CPU, for test/torch-memory.test.ts to hold against src/torch/memory.ts:

    python measure_memory.py '[<spec>, …]'  →  one JSON list on stdout, a result per spec

spec: {"model": folder | null, "random": {dim, layers, heads, kv_heads, hidden, vocab, context} (when model is
null), "dtype", "budget", "adapters", "rank", "targets", "phase": "weights" | "saved" | "train" | "sample",
"rows", "tokens" (train: rows × tokens each), "prompt", "max_tokens" (sample: rows × (prompt + max_tokens))}.

- weights: the bytes of the tensors the open model holds (parameters, a tied head counted once);
- saved: the bytes autograd keeps in one training forward (saved-tensor hooks; storages counted once, the weights,
  adapters and rope tables left out): exact;
- train / sample: the growth of the process's peak resident memory (VmHWM, reset through /proc/self/clear_refs)
  over one backward / one sample call, after a small warm-up call: an honest, if coarse, peak (the C allocator may
  reuse memory freed by the warm-up, so it can only read low by that much). One such spec per process: memory freed
  by an earlier spec would be reused. On CUDA ($COLLOQUY_TEST_DEVICE, helpers.py) it is the growth of the caching
  allocator's peak of allocated bytes over the call instead: exact.
"""
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import ADAMW, DEVICE, f64, i32, open_worker, random_checkpoint  # noqa: E402
from colloquy_worker import adapters, sample, train  # noqa: E402


def status(key: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def peak_growth(fn) -> int:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak resident size starts again from the current one
    before = status("VmRSS")
    fn()
    return status("VmHWM") - before


def model_folder(spec) -> str:
    if spec.get("model"):
        return spec["model"]
    r = spec["random"]
    folder = Path(tempfile.mkdtemp(prefix="colloquy-memory-"))
    random_checkpoint(folder, dim=r["dim"], layers=r["layers"], heads=r["heads"], kv_heads=r["kv_heads"], hidden=r["hidden"],
                      vocab=r["vocab"], tied=r.get("tied", False))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["max_position_embeddings"] = r["context"]
    (folder / "config.json").write_text(json.dumps(cfg))
    return str(folder)


def row_tokens(i: int, n: int, V: int) -> torch.Tensor:
    return i32([3 + (7 * i + 5 * t) % (V - 3) for t in range(n)])


def main(spec) -> dict:
    w = open_worker(model_folder(spec), budget=spec["budget"], dtype=spec["dtype"])
    m, V = w.model, w.config.vocab_size
    params = {p.data_ptr(): p.numel() * p.element_size() for p in m.parameters()}
    out = {"weights": sum(params.values())}
    if spec["phase"] == "weights":
        return out
    names = [f"agent{k}" for k in range(spec["adapters"])]
    lora = {"rank": spec["rank"], "alpha": 2 * spec["rank"], "rslora": False, "targets": spec["targets"]}
    for k, n in enumerate(names):
        adapters.create_adapter(w, {"name": n, "lora": lora, "seed": k, "optimizer": ADAMW})

    def train_rows(rows, tokens):
        return [{"tokens": row_tokens(i, tokens, V), "adapter": names[i % len(names)], "from": 1,
                 "weights": f64([0.0] + [1.0] * (tokens - 1))} for i in range(rows)]

    def sample_rows(rows, prompt, max_tokens):
        return [{"prompt": row_tokens(i, prompt, V), "adapter": names[i % len(names)], "max_tokens": max_tokens,
                 "temperature": 1.0, "top_k": 50, "top_p": 0.9, "seed": i} for i in range(rows)]

    if spec["phase"] == "saved":
        skip = {p.storage().data_ptr() for p in m.parameters()}
        skip |= {p.storage().data_ptr() for a in w.adapters.values() for p in a.params}
        skip |= {m.rope.cos.storage().data_ptr(), m.rope.sin.storage().data_ptr()}
        kept: dict[int, int] = {}

        def pack(t):
            s = t.storage()
            if s.data_ptr() not in skip:
                kept[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            train.backward(w, {"rows": train_rows(spec["rows"], spec["tokens"]), "normaliser": 1.0})
        out["saved"] = sum(kept.values())
    elif spec["phase"] == "train":
        train.backward(w, {"rows": train_rows(2, 8), "normaliser": 1.0})  # warm-up
        req = {"rows": train_rows(spec["rows"], spec["tokens"]), "normaliser": 1.0}
        out["train_peak"] = peak_growth(lambda: train.backward(w, req))
    elif spec["phase"] == "sample":
        sample.sample(w, {"rows": sample_rows(2, 4, 2)})  # warm-up
        req = {"rows": sample_rows(spec["rows"], spec["prompt"], spec["max_tokens"])}
        out["sample_peak"] = peak_growth(lambda: sample.sample(w, req))
    return out


if __name__ == "__main__":
    torch.manual_seed(0)
    print(json.dumps([main(spec) for spec in json.loads(sys.argv[1])]))
