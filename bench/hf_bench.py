#!/usr/bin/env python3
"""
colloquy's PyTorch worker against Hugging Face transformers + peft, on the same shapes, the same work and the same
weights, in one process (issue 15: GPU speed measured against transformers + peft).

For each shape and case the colloquy side calls the worker's verbs in process, as the TypeScript client drives them
(worker/colloquy_worker: create_adapter, sample, score, zero_grad + backward + step; the request dicts of
worker/PROTOCOL.md, without the frames and the pipe), and the HF side does the same work the way a transformers user
writes it. Both sides hold the same random weights (the colloquy model's tensors are copied into LlamaForCausalLM)
and the same LoRA adapters (copied into peft), so that a short log-prob check can say they compute the same thing.

Shapes (random weights; speed depends on shapes only):
  smollm2_135m  SmolLM2-135M's shape: dim 576, 30 layers, 9 heads, 3 KV heads, MLP 1536, vocab 49152, tied
  llama32_1b    Llama-3.2-1B's shape: dim 2048, 16 layers, 32 heads, 8 KV heads, MLP 8192, vocab 128256, tied,
                rope llama3 (factor 32, low 1, high 4, original 8192), theta 500000
--quick (and, by default, a CPU) uses tiny shapes of the same structure under the same keys (dim 48/64, 2 layers,
vocab 512/1024, the same GQA ratios, tying and rope), so that the script runs in seconds; setup.shapes says which.

Cases (full shapes; tiny ones in brackets):
  train_lora  one LoRA step, r 8, alpha 16, all seven linears, one adapter, 16 × 512 tokens [4 × 64]: colloquy
              zero_grad + backward (mean cross-entropy over every next token) + step (AdamW lr 1e-4); HF: peft
              LoraConfig(r=8, lora_alpha=16, lora_dropout=0, the same seven target modules), model(input_ids,
              labels=input_ids).loss.backward() and torch.optim.AdamW(lr=1e-4, weight_decay=0).step()
  sample      64 rows × 128 new tokens [8 × 16], prompts of 64 tokens [8], 4 adapters, row i on adapter i mod 4,
              temperature 1, no top-k / top-p, no stop token; colloquy: the sample verb; HF: PeftModel.generate(
              do_sample=True, max_new_tokens=128, adapter_names=[per row]) (peft's mixed-adapter batch; without it,
              one generate() per adapter, said in hf_method)
  score       64 × 512 tokens [8 × 64], the same 4 adapters per row: colloquy: the score verb (log-probs and
              entropies of every token); HF: a forward with adapter_names, then log-probs of the next tokens
              (logits gathered − logsumexp, in float32), the same rows per forward as the worker's token budget
Protocol: both sides built and warmed up (--warmup runs each), then --reps timed runs alternating colloquy, HF,
colloquy, HF ... (torch.cuda.synchronize() before and after each on CUDA); medians; tokens/s = tokens of one run ÷
the median; ratio = colloquy tokens/s ÷ HF tokens/s (> 1: colloquy is faster). Targets (issue 15): training ≥ 1.0,
sampling ≥ 3.0, scoring ≥ 1.0. On CUDA each side's peak GPU memory per case: peak_mem_gib (the most allocated
during its runs, everything resident included) and work_mem_gib (that peak less what was allocated when the run
began). What the in-process colloquy side leaves out: the frames and the pipe between colloquy and its worker.

  python3 bench/hf_bench.py [--device auto|cpu|cuda|cuda:N] [--dtype float32|bfloat16|float16] [--quick]
                            [--shapes tiny|full] [--only smollm2_135m,llama32_1b] [--cases train_lora,sample,score]
                            [--warmup N] [--reps N] [--threads N] [--no-hf] [--json]
Defaults: device auto (cuda when PyTorch sees one), dtype bfloat16 on CUDA and float32 on CPU, shapes full on
CUDA and tiny on CPU, warmup 2 and reps 5 (--quick: 1 and 3). Runs on PyTorch 1.13 (Debian, CPU) and 2.x (CUDA);
transformers and peft are imported only if present: without them every HF timing is null with the reason in
hf_unavailable, and so is every ratio.

Output (--json: exactly one JSON object on stdout; progress on stderr; without --json a table on stdout):
  {"setup": {"script", "torch", "transformers", "peft", "python", "device", "device_name", "dtype", "shapes",
             "quick", "warmup", "reps", "threads", "adapters", "max_tokens_per_pass", "targets"},
   "hf_unavailable": null | "why there are no HF timings",
   "hf": {"<shape>": {"label", "error": null | str (the shape could not be built), "config": {...},
                      "hf_attention": "sdpa" | ..., "logprob_check": {"rows", "tokens", "max_abs_diff"} | {"error"} | null,
                      "train_lora": CASE, "sample": CASE, "score": CASE,
                      "train_lora_ratio_vs_hf", "sample_ratio_vs_hf", "score_ratio_vs_hf"}, ...}}
  CASE = {"work", "tokens", "colloquy": TIMING | null, "colloquy_error": null | str, "hf": TIMING | null,
          "hf_unavailable": null | str, "hf_method", "ratio_vs_hf": number | null, "meets_target": bool | null}
  TIMING = {"median_s", "tokens_per_s", "times_s", "peak_mem_gib", "work_mem_gib"} (memory null off CUDA)
`colloquy bench --backend torch` runs this script and puts "hf" and "setup" (as hf_setup) into its report, with
flat keys <shape>_<case>_ratio_vs_hf (README, "Speed").
"""
import argparse
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

WORKER_DIR = Path(__file__).resolve().parents[1] / "worker"
sys.path.insert(0, str(WORKER_DIR))

from colloquy_worker import adapters as c_adapters  # noqa: E402
from colloquy_worker import sample as c_sample  # noqa: E402
from colloquy_worker import score as c_score  # noqa: E402
from colloquy_worker import train as c_train  # noqa: E402
from colloquy_worker.checkpoint import HF_LINEAR_PATH, LINEAR_KINDS, base_tensor_names, parse_config  # noqa: E402
from colloquy_worker.model import Transformer  # noqa: E402
from colloquy_worker.state import Worker  # noqa: E402

CASES = ("train_lora", "sample", "score")
TARGETS = {"train_lora": 1.0, "sample": 3.0, "score": 1.0}
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}

# shape key → (label, full config, tiny config of the same structure); config.json keys, as transformers writes them
SHAPES = {
    "smollm2_135m": ("SmolLM2-135M's shape",
                     dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                          intermediate_size=1536, vocab_size=49152, rope_theta=100000.0, max_position_embeddings=8192),
                     dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, num_key_value_heads=1,
                          intermediate_size=128, vocab_size=512, rope_theta=100000.0, max_position_embeddings=8192)),
    "llama32_1b": ("Llama-3.2-1B's shape",
                   dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                        intermediate_size=8192, vocab_size=128256, rope_theta=500000.0, rope_scaling=LLAMA3_ROPE,
                        max_position_embeddings=131072),
                   dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                        intermediate_size=256, vocab_size=1024, rope_theta=500000.0, rope_scaling=LLAMA3_ROPE,
                        max_position_embeddings=131072)),
}
COMMON = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu", rms_norm_eps=1e-5,
              tie_word_embeddings=True, bos_token_id=None, eos_token_id=None, pad_token_id=None)

# the work of each case: rows × tokens (training, scoring), rows × prompt + new tokens (sampling)
WORK = {
    "full": dict(train_rows=16, train_seq=512, sample_rows=64, prompt=64, new_tokens=128, score_rows=64, score_seq=512),
    "tiny": dict(train_rows=4, train_seq=64, sample_rows=8, prompt=8, new_tokens=16, score_rows=8, score_seq=64),
}
RANK, ALPHA, LR = 8, 16, 1e-4
TARGET_MODULES = [HF_LINEAR_PATH[k].split(".")[-1] for k in LINEAR_KINDS]  # q_proj … down_proj
ADAMW = {"kind": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
GIB = float(1 << 30)


def log(s: str) -> None:
    print(f"hf_bench: {s}", file=sys.stderr, flush=True)


# ---- timing ----

class Clock:
    """Times one run; on CUDA synchronizes before and after, and keeps the peak memory of the runs it timed."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.peak, self.work = 0, 0

    def time(self, fn) -> float:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        t = time.perf_counter()
        fn()
        if self.cuda:
            torch.cuda.synchronize(self.device)
        s = time.perf_counter() - t
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device)
            self.peak, self.work = max(self.peak, peak), max(self.work, peak - before)
        return s

    def timing(self, tokens: int, times: list) -> dict:
        med = statistics.median(times)
        mem = (lambda b: round(b / GIB, 3)) if self.cuda else (lambda b: None)
        return {"median_s": med, "tokens_per_s": tokens / med, "times_s": sorted(times),
                "peak_mem_gib": mem(self.peak), "work_mem_gib": mem(self.work)}


# ---- the model and adapters, colloquy's side ----

def config_json(shape: str, size: str) -> dict:
    _, full, tiny = SHAPES[shape]
    return {**COMMON, **(full if size == "full" else tiny)}


def random_weights(c, device: torch.device, dtype: torch.dtype, seed: int) -> dict:
    """Every base tensor by HF name: linears and embeddings N(0, 0.02²) (transformers' init), norms 1."""
    g = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for name, shape in base_tensor_names(c):
        if name.endswith("norm.weight"):
            out[name] = torch.ones(shape, device=device, dtype=dtype)
        else:
            out[name] = torch.randn(shape, generator=g, device=device, dtype=torch.float32).mul_(0.02).to(dtype)
    return out


def colloquy_worker(cfg: dict, device: torch.device, dtype: torch.dtype, budget: int, seed: int):
    """A worker holding a model built as state.open_model builds it (Transformer.from_weights), from random weights."""
    c = parse_config(dict(cfg), "bench config")
    c.max_seq_len = 4096  # the rope table grows on demand; no need for 131072 rows up front
    weights = random_weights(c, device, dtype, seed)
    w = Worker()
    w.model, w.config, w.max_tokens_per_pass = Transformer.from_weights(c, weights), c, budget
    return w, weights


def make_adapters(w, names: list, seed: int) -> None:
    """create_adapter (PEFT's init, AdamW) for each name; B drawn N(0, 0.01²) so that every adapter changes the output."""
    lora = {"rank": RANK, "alpha": ALPHA, "rslora": False, "targets": list(LINEAR_KINDS)}
    g = torch.Generator().manual_seed(seed + 7)
    for k, name in enumerate(names):
        c_adapters.create_adapter(w, {"name": name, "lora": lora, "seed": seed + k, "optimizer": dict(ADAMW)})
        a = w.adapters[name]
        with torch.no_grad():
            for (_, shape, _, _, ab), p in zip(a.table, a.params):
                if ab == "B":
                    p.copy_(torch.randn(shape, generator=g) * 0.01)


def random_tokens(V: int, rows: int, T: int, seed: int) -> torch.Tensor:
    return torch.randint(0, V, (rows, T), generator=torch.Generator().manual_seed(seed), dtype=torch.int64)


# ---- the HF side ----

def import_hf():
    """(transformers, peft, None) or (None, None, the reason)."""
    try:
        import transformers
    except Exception as e:  # noqa: BLE001 - any import failure is a reason to report, not to crash
        return None, None, f"transformers is not installed for {sys.executable} ({one_line(e)})"
    try:
        import peft
    except Exception as e:  # noqa: BLE001
        return None, None, f"peft is not installed for {sys.executable} ({one_line(e)})"
    return transformers, peft, None


def hf_model(transformers, cfg: dict, weights: dict, device: torch.device, dtype: torch.dtype):
    """LlamaForCausalLM from the same config.json keys, created in `dtype` on `device` (as from_pretrained does), then
    given the colloquy model's weights."""
    hcfg = transformers.LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("model_type", "architectures")})
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        if hasattr(torch.device, "__enter__"):
            with device:
                m = transformers.LlamaForCausalLM(hcfg)
        else:
            m = transformers.LlamaForCausalLM(hcfg).to(device)
    finally:
        torch.set_default_dtype(prev)
    missing, unexpected = m.load_state_dict(weights, strict=False)
    missing = [k for k in missing if k != "lm_head.weight" and "rotary" not in k]
    if missing or unexpected:
        raise RuntimeError(f"LlamaForCausalLM and the colloquy weights differ: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if m.lm_head.weight.data_ptr() != m.model.embed_tokens.weight.data_ptr():
        m.lm_head.weight = m.model.embed_tokens.weight
    m.generation_config.pad_token_id = 0
    m.generation_config.eos_token_id = None
    return m.to(device)


def hf_peft(peft, model, w, names: list):
    """peft LoRA adapters with the colloquy adapters' weights (float32, as peft keeps them by default)."""
    lc = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=list(TARGET_MODULES), bias="none",
                         task_type="CAUSAL_LM")
    pm = peft.get_peft_model(model, lc, adapter_name=names[0])
    for n in names[1:]:
        pm.add_adapter(n, lc)
    params = dict(pm.named_parameters())
    with torch.no_grad():
        for n in names:
            for pname, t in w.adapters[n].named():
                key = pname.replace(".lora_A.weight", f".lora_A.{n}.weight").replace(".lora_B.weight", f".lora_B.{n}.weight")
                p = params[key]
                if p.dtype != torch.float32:
                    p.data = p.data.float()
                p.copy_(t)
    return pm


# ---- the cases ----

def colloquy_case(kind: str, w, work: dict, names: list, toks: dict, seed: int):
    """The case's unit of work through the worker's verbs, and its token count."""
    if kind == "train_lora":
        ids = toks["train"]
        B, T = ids.shape
        rows = [{"tokens": r.to(torch.int32), "adapter": names[0],
                 "weights": torch.tensor([0.0] + [1.0] * (T - 1), dtype=torch.float64)} for r in ids]
        req = {"rows": rows, "normaliser": B * (T - 1)}

        def run():
            c_train.zero_grad(w, {"names": [names[0]]})
            c_train.backward(w, req)
            c_train.step(w, {"names": [names[0]], "lr": LR})

        return run, B * T
    if kind == "sample":
        prompts = toks["prompt"]
        n = work["new_tokens"]
        state = {"seed": seed}

        def run():
            rows = [{"prompt": p.to(torch.int32), "adapter": names[i % len(names)], "max_tokens": n, "temperature": 1,
                     "top_k": 0, "top_p": 1, "seed": state["seed"] + i} for i, p in enumerate(prompts)]
            state["seed"] += len(rows)
            out = c_sample.sample(w, {"rows": rows})
            got = sum(int(r["ids"].numel()) for r in out["rows"])
            if got != len(rows) * n:
                raise RuntimeError(f"colloquy sampled {got} tokens, expected {len(rows) * n}")

        return run, prompts.shape[0] * n
    ids = toks["score"]
    req = {"rows": [{"tokens": r.to(torch.int32), "adapter": names[i % len(names)]} for i, r in enumerate(ids)]}
    return (lambda: c_score.score(w, req)), ids.numel()


def hf_score_logprobs(pm, ids: torch.Tensor, names: list, rows_per_pass: int) -> list:
    """log p(token t | tokens < t) for t ≥ 1 of every row, float32, a chunk of rows per forward."""
    out = []
    for s in range(0, ids.shape[0], rows_per_pass):
        part = ids[s:s + rows_per_pass]
        logits = pm(input_ids=part, adapter_names=names[s:s + rows_per_pass]).logits[:, :-1]  # (b, T−1, V)
        z = logits.float()
        out.append(z.gather(-1, part[:, 1:, None])[..., 0] - torch.logsumexp(z, dim=-1))  # (b, T−1)
        del logits, z
    return out


def hf_case(kind: str, pm, work: dict, names: list, toks: dict, seed: int, device: torch.device, budget: int):
    """The same unit of work with transformers + peft: (run, tokens, method)."""
    if kind == "train_lora":
        ids = toks["train"].to(device)
        trained = []
        for n, p in pm.named_parameters():
            mine = f".{names[0]}." in n and "lora_" in n
            p.requires_grad_(mine)
            if mine:
                trained.append(p)
        opt = torch.optim.AdamW(trained, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

        def run():
            pm.train()
            opt.zero_grad(set_to_none=True)
            pm(input_ids=ids, labels=ids).loss.backward()
            opt.step()

        return run, ids.numel(), "peft LoRA, model(input_ids, labels=input_ids).loss.backward(), torch.optim.AdamW.step()"
    row_names = [names[i % len(names)] for i in range(toks["prompt" if kind == "sample" else "score"].shape[0])]
    if kind == "sample":
        prompt = toks["prompt"].to(device)
        n = work["new_tokens"]
        mask = torch.ones_like(prompt)
        state = {"seed": seed}
        kw = dict(attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=n,
                  min_new_tokens=n, pad_token_id=0)

        def generate(ids, m, names_):
            torch.manual_seed(state["seed"])
            return pm.generate(input_ids=ids, **{**kw, "attention_mask": m}, adapter_names=names_)

        method = "PeftModel.generate(do_sample=True, adapter_names=per row): peft's mixed-adapter batch"
        mixed = _peft_mixed_batch(pm, prompt, mask, row_names)
        if not mixed:
            method = "one PeftModel.generate(do_sample=True) per adapter (this peft takes no adapter_names)"

        def run():
            pm.eval()
            with torch.no_grad():
                state["seed"] += 1
                if mixed:
                    out = generate(prompt, mask, row_names)
                    got = (out.shape[1] - prompt.shape[1]) * out.shape[0]
                else:
                    got = 0
                    for a in names:
                        rows = torch.tensor([i for i, x in enumerate(row_names) if x == a], device=device)
                        pm.set_adapter(a)
                        torch.manual_seed(state["seed"])
                        out = pm.generate(input_ids=prompt[rows], **{**kw, "attention_mask": mask[rows]})
                        got += (out.shape[1] - prompt.shape[1]) * out.shape[0]
            if got != prompt.shape[0] * n:
                raise RuntimeError(f"generate() made {got} tokens, expected {prompt.shape[0] * n}")

        return run, prompt.shape[0] * n, method
    ids = toks["score"].to(device)
    rows_per_pass = max(1, budget // ids.shape[1])

    def run():
        pm.eval()
        with torch.no_grad():
            hf_score_logprobs(pm, ids, row_names, rows_per_pass)

    return run, ids.numel(), f"forward(adapter_names=per row), {rows_per_pass} rows a pass, log-probs = logits[target] − logsumexp"


def _peft_mixed_batch(pm, prompt, mask, row_names) -> bool:
    """Whether this peft's generate() takes adapter_names (mixed-adapter batches): one token on two rows."""
    pm.eval()
    try:
        with torch.no_grad():
            pm.generate(input_ids=prompt[:2, :2], attention_mask=mask[:2, :2], adapter_names=row_names[:2],
                        max_new_tokens=1, do_sample=False, pad_token_id=0)
        return True
    except (TypeError, ValueError) as e:
        log(f"peft's generate() refused adapter_names ({type(e).__name__}: {e}); one generate() per adapter instead")
        return False


def logprob_check(w, pm, toks: dict, names: list, budget: int, device: torch.device) -> dict:
    """Largest |colloquy − HF| log-prob over a few scoring rows (each on its adapter): the two compute the same thing."""
    ids = toks["score"][:4]
    row_names = [names[i % len(names)] for i in range(ids.shape[0])]
    mine = c_score.score(w, {"rows": [{"tokens": r.to(torch.int32), "adapter": n} for r, n in zip(ids, row_names)]})
    mine = torch.stack([r["logprobs"][1:] for r in mine["rows"]])  # (b, T−1) float64
    pm.eval()
    with torch.no_grad():
        theirs = torch.cat(hf_score_logprobs(pm, ids.to(device), row_names, max(1, budget // ids.shape[1]))).double().cpu()
    return {"rows": int(ids.shape[0]), "tokens": int(theirs.numel()), "max_abs_diff": float((mine - theirs).abs().max())}


# ---- one shape ----

def run_shape(shape: str, a, hf_mods, hf_reason) -> dict:
    label, _, _ = SHAPES[shape]
    cfg = config_json(shape, a.shapes)
    work = WORK[a.shapes]
    device, dtype = a.device_t, DTYPES[a.dtype]
    names = [f"a{k}" for k in range(a.adapters)]
    out = {"label": label if a.shapes == "full" else f"{label}, scaled down (tiny shapes)", "error": None,
           "config": {"dim": cfg["hidden_size"], "layers": cfg["num_hidden_layers"], "heads": cfg["num_attention_heads"],
                      "kv_heads": cfg["num_key_value_heads"], "mlp": cfg["intermediate_size"], "vocab": cfg["vocab_size"],
                      "tied": True, "rope": cfg.get("rope_scaling", {}).get("rope_type", "default"),
                      "rope_theta": cfg["rope_theta"]},
           "hf_attention": None, "logprob_check": None}
    log(f"{shape}: {out['label']} — building on {device} in {a.dtype}")
    torch.manual_seed(a.seed)
    w, weights = colloquy_worker(cfg, device, dtype, a.max_tokens_per_pass, a.seed)
    make_adapters(w, names, a.seed)
    V = cfg["vocab_size"]
    toks = {"train": random_tokens(V, work["train_rows"], work["train_seq"], a.seed + 1),
            "prompt": random_tokens(V, work["sample_rows"], work["prompt"], a.seed + 2),
            "score": random_tokens(V, work["score_rows"], work["score_seq"], a.seed + 3)}
    pm = None
    if hf_mods:
        transformers, peft = hf_mods
        try:
            pm = hf_peft(peft, hf_model(transformers, cfg, weights, device, dtype), w, names)
            out["hf_attention"] = getattr(pm.get_base_model().config, "_attn_implementation", None)
        except Exception as e:  # noqa: BLE001 - the colloquy side still runs
            hf_reason = f"building the HF model failed: {one_line(e)}"
            log(hf_reason)
            pm = None
    if pm is not None:
        try:
            out["logprob_check"] = logprob_check(w, pm, toks, names, a.max_tokens_per_pass, device)
            log(f"{shape}: log-probs colloquy vs HF: max |Δ| {out['logprob_check']['max_abs_diff']:.2e} "
                f"over {out['logprob_check']['tokens']} tokens")
        except Exception as e:  # noqa: BLE001
            out["logprob_check"] = {"error": one_line(e)}
            log(f"{shape}: the log-prob check failed: {one_line(e)}")
    del weights
    work_text = {
        "train_lora": f"LoRA r{RANK} step (AdamW), {work['train_rows']} × {work['train_seq']} tokens, one adapter",
        "sample": f"{work['sample_rows']} rows × {work['new_tokens']} new tokens, prompt {work['prompt']}, "
                  f"{len(names)} adapters (row i on adapter i mod {len(names)}), temperature 1",
        "score": f"{work['score_rows']} × {work['score_seq']} tokens, {len(names)} adapters (row i on adapter i mod {len(names)})",
    }
    for kind in a.cases:
        out[kind] = one_case(kind, w, pm, work, names, toks, a, hf_reason, work_text[kind])
        out[f"{kind}_ratio_vs_hf"] = out[kind]["ratio_vs_hf"]
    for kind in CASES:
        out.setdefault(f"{kind}_ratio_vs_hf", None)
    del w, pm
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def one_case(kind, w, pm, work, names, toks, a, hf_reason, work_text) -> dict:
    device = a.device_t
    res = {"work": work_text, "tokens": None, "colloquy": None, "colloquy_error": None, "hf": None,
           "hf_unavailable": hf_reason if pm is None else None, "hf_method": None, "ratio_vs_hf": None, "meets_target": None}
    log(f"  {kind}: {work_text}")
    try:
        mine, tokens = colloquy_case(kind, w, work, names, toks, a.seed)
        res["tokens"] = tokens
    except Exception as e:  # noqa: BLE001
        res["colloquy_error"] = one_line(e)
        return res
    theirs = None
    if pm is not None:
        try:
            theirs, _, res["hf_method"] = hf_case(kind, pm, work, names, toks, a.seed, device, a.max_tokens_per_pass)
        except Exception as e:  # noqa: BLE001
            res["hf_unavailable"] = one_line(e)
    sides = {"colloquy": (mine, Clock(device), [])}
    if theirs:
        sides["hf"] = (theirs, Clock(device), [])

    def attempt(side: str, timed: bool) -> None:
        fn, clock, times = sides[side]
        try:
            if timed:
                times.append(clock.time(fn))
            else:
                fn()
        except Exception as e:  # noqa: BLE001 - out of memory, an API that differs: reported, the other side goes on
            if device.type == "cuda":
                torch.cuda.empty_cache()
            res["colloquy_error" if side == "colloquy" else "hf_unavailable"] = one_line(e)
            log(f"  {kind}: {side} failed: {one_line(e)}")
            del sides[side]

    for _ in range(a.warmup):
        for side in list(sides):
            attempt(side, False)
    for _ in range(a.reps):  # alternate: colloquy, HF, colloquy, HF ...
        for side in list(sides):
            attempt(side, True)
    for side, (_, clock, times) in sides.items():
        res[side] = clock.timing(tokens, times)
    if res["colloquy"] is None:
        return res
    if res["hf"] is not None:
        res["ratio_vs_hf"] = res["colloquy"]["tokens_per_s"] / res["hf"]["tokens_per_s"]
        res["meets_target"] = res["ratio_vs_hf"] >= TARGETS[kind]
    c, h = res["colloquy"], res["hf"]
    log(f"  {kind}: colloquy {c['tokens_per_s']:.0f} tok/s" + (f", HF {h['tokens_per_s']:.0f} tok/s, ratio {res['ratio_vs_hf']:.2f}"
                                                                  f" (target ≥ {TARGETS[kind]})" if h else ", HF -"))
    return res


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"


# ---- main ----

def parse_args(argv):
    p = argparse.ArgumentParser(description="colloquy's torch worker against transformers + peft (see the module docstring)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N")
    p.add_argument("--dtype", default=None, choices=list(DTYPES), help="base weights (default bfloat16 on CUDA, float32 on CPU)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 1 warm-up and 3 timed runs")
    p.add_argument("--shapes", default=None, choices=["tiny", "full"], help="default: full on CUDA, tiny on CPU or with --quick")
    p.add_argument("--only", default=",".join(SHAPES), help="shapes to run, comma-separated")
    p.add_argument("--cases", default=",".join(CASES), help="cases to run, comma-separated")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--adapters", type=int, default=4, help="adapters of the sampling and scoring rows")
    p.add_argument("--max-tokens-per-pass", type=int, default=16384, help="the worker's token budget of one forward")
    p.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-hf", action="store_true", help="colloquy only")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = p.parse_args(argv)
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    a.device_t = torch.device(a.device)
    if a.device_t.type == "cuda":
        if not torch.cuda.is_available():
            p.error(f"--device {a.device}: CUDA is not available to this PyTorch ({torch.__version__})")
        if a.device_t.index is None:
            a.device_t = torch.device("cuda", torch.cuda.current_device())
    cuda = a.device_t.type == "cuda"
    a.dtype = a.dtype or ("bfloat16" if cuda else "float32")
    a.shapes = a.shapes or ("full" if cuda and not a.quick else "tiny")
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else 2)
    a.reps = a.reps if a.reps is not None else (3 if a.quick else 5)
    a.only = [s for s in a.only.split(",") if s]
    a.cases = [c for c in a.cases.split(",") if c]
    for s in a.only:
        if s not in SHAPES:
            p.error(f"unknown shape {s} (shapes: {', '.join(SHAPES)})")
    for c in a.cases:
        if c not in CASES:
            p.error(f"unknown case {c} (cases: {', '.join(CASES)})")
    if a.reps < 1 or a.warmup < 0 or a.adapters < 1:
        p.error("--reps ≥ 1, --warmup ≥ 0, --adapters ≥ 1")
    return a


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cuda = a.device_t.type == "cuda"
    transformers = peft = None
    reason = "--no-hf" if a.no_hf else None
    if not a.no_hf:
        transformers, peft, reason = import_hf()
        if reason:
            log(f"no HF timings: {reason}")
    report = {
        "setup": {"script": "bench/hf_bench.py", "torch": torch.__version__,
                  "transformers": getattr(transformers, "__version__", None), "peft": getattr(peft, "__version__", None),
                  "python": platform.python_version(), "device": str(a.device_t),
                  "device_name": torch.cuda.get_device_name(a.device_t) if cuda else cpu_name(),
                  "dtype": a.dtype, "shapes": a.shapes, "quick": a.quick, "warmup": a.warmup, "reps": a.reps,
                  "threads": torch.get_num_threads(), "adapters": a.adapters, "max_tokens_per_pass": a.max_tokens_per_pass,
                  "targets": {f"{k}_ratio_vs_hf": v for k, v in TARGETS.items()}},
        "hf_unavailable": reason,
        "hf": {},
    }
    t0 = time.perf_counter()
    for shape in a.only:
        try:
            report["hf"][shape] = run_shape(shape, a, (transformers, peft) if transformers else None, reason)
        except Exception as e:  # noqa: BLE001 - the colloquy model could not be built (out of memory, ...): the next shape
            log(f"{shape}: failed: {one_line(e)}")
            report["hf"][shape] = {"label": SHAPES[shape][0], "error": one_line(e),
                                   **{f"{k}_ratio_vs_hf": None for k in CASES}}
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    report["setup"]["seconds"] = round(time.perf_counter() - t0, 1)
    if a.json:
        print(json.dumps(report, allow_nan=False, default=_finite))
    else:
        print(format_report(report))
    return 0


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _finite(x):
    raise TypeError(f"not JSON: {x!r}")


def format_report(r: dict) -> str:
    s = r["setup"]
    lines = [f"colloquy worker vs transformers {s['transformers'] or '-'} + peft {s['peft'] or '-'} (torch {s['torch']}), "
             f"{s['device']} ({s['device_name']}), {s['dtype']}, {s['shapes']} shapes, median of {s['reps']}"]
    if r["hf_unavailable"]:
        lines.append(f"HF: unavailable ({r['hf_unavailable']})")
    fmt = lambda x, d=0: "-" if x is None else f"{x:,.{d}f}"  # noqa: E731
    lines.append(f"{'shape':<13} {'case':<11} {'colloquy tok/s':>15} {'HF tok/s':>12} {'ratio':>6} {'target':>7} {'peak GiB c/HF':>14}")
    for shape, o in r["hf"].items():
        for kind in CASES:
            c = o.get(kind)
            if not c:
                continue
            col, hf = c["colloquy"] or {}, c["hf"] or {}
            mem = f"{fmt(col.get('peak_mem_gib'), 1)}/{fmt(hf.get('peak_mem_gib'), 1)}"
            lines.append(f"{shape:<13} {kind:<11} {fmt(col.get('tokens_per_s')):>15} {fmt(hf.get('tokens_per_s')):>12} "
                         f"{fmt(c['ratio_vs_hf'], 2):>6} {'≥ ' + str(TARGETS[kind]):>7} {mem:>14}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
