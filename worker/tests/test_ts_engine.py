"""
The worker against colloquy's own TypeScript engine (CpuBackend) on the same model, adapters and rows: score,
top_logprobs, last_hidden and backward (loss, per-token log-probs and entropies, LoRA gradients) must agree to
float32 rounding. Needs node and the repository's node_modules (tsx); skipped without them.
"""
import json
import math
import shutil
import subprocess
import tempfile
import unittest

import torch

from helpers import ADAMW, TINY, WORKER, assert_close, f64, i32, open_worker, read_safetensors, report, synthetic_model
from colloquy_worker import adapters, score, train
from colloquy_worker.lora import LoraConfig

REPO = WORKER.parent


def nan_list(xs):
    return [math.nan if v is None else v for v in xs]


class AgainstTypeScript(unittest.TestCase):
    def test_same_numbers(self):
        if shutil.which("node") is None or not (REPO / "node_modules" / "tsx").exists():
            raise unittest.SkipTest("node or the repository's node_modules/tsx is missing")
        model = TINY if (TINY / "model.safetensors").exists() else synthetic_model()
        w = open_worker(model, budget=64)
        c = w.config
        g = torch.Generator().manual_seed(11)
        ads = []
        for name, rank, targets in (("a", 4, ["q", "k", "v", "o", "gate", "up", "down"]), ("b", 2, ["v", "down"])):
            lora = {"rank": rank, "alpha": 2.0 * rank, "rslora": name == "b", "targets": targets}
            if name == "a" and model == TINY:
                tensors = [{"name": k, "data": v} for k, v in read_safetensors(TINY / "adapter" / "adapter_model.safetensors").items()]
            else:
                tensors = [{"name": n, "data": torch.randn(s, generator=g) * 0.2} for n, s, *_ in LoraConfig.parse(lora).size_table(c)]
            adapters.create_adapter(w, {"name": name, "lora": lora, "seed": 1, "optimizer": ADAMW})
            adapters.import_adapter(w, {"name": name, "lora": lora, "weights": tensors, "optimizer": None})
            ads.append({"name": name, "lora": lora, "optimizer": {"kind": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weightDecay": 0},
                        "tensors": [{"name": t["name"], "shape": list(t["data"].shape), "data": t["data"].reshape(-1).tolist()} for t in tensors]})
        toks = [torch.randint(0, c.vocab_size, (n,), generator=g).tolist() for n in (24, 9, 17, 2, 13)]
        names = ["a", None, "b", "a", "b"]
        score_rows = [{"tokens": t, "adapter": a, "from": 1 + i % 3 if len(t) > 3 else 1, "temperature": [1.0, 0.8, 1.25][i % 3]}
                      for i, (t, a) in enumerate(zip(toks, names))]
        bw_rows = []
        for i, r in enumerate(score_rows):
            T, f = len(r["tokens"]), r["from"]
            wts = [0.0 if t < f else ((t * 7 + i) % 5 - 2) / 3 for t in range(T)]
            ew = [0.0 if t < f else 0.02 * ((t + i) % 3) for t in range(T)] if i % 2 == 0 else None
            bw_rows.append({**r, "weights": wts, "entropy_weights": ew})
        top_rows = [{"tokens": r["tokens"], "adapter": r["adapter"], "from": r["from"], "k": 5} for r in score_rows]
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"model": str(model), "adapters": ads, "score": score_rows, "backward": bw_rows, "normaliser": 7.0,
                       "top": top_rows}, f)
            f.flush()
            run = subprocess.run(["node", "--import", "tsx", str(WORKER / "tests" / "ts_engine.ts"), f.name], cwd=REPO,
                                 capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        ts = json.loads(run.stdout)

        def as_req(r):
            return {**r, "tokens": i32(r["tokens"])}

        sc = score.score(w, {"rows": [as_req(r) for r in score_rows]})["rows"]
        worst_lp = worst_h = 0.0
        for i, (got, want) in enumerate(zip(sc, ts["score"])):
            worst_lp = max(worst_lp, assert_close(f"score row {i}", got["logprobs"], f64(nan_list(want["logprobs"])), 1e-5))
            worst_h = max(worst_h, assert_close(f"entropy row {i}", got["entropies"], f64(nan_list(want["entropies"])), 1e-5))
        report("vs TS engine: score max |Δ log p|", worst_lp)
        report("vs TS engine: score max |Δ entropy|", worst_h)

        tp = score.top_logprobs(w, {"rows": [as_req(r) for r in top_rows]})["rows"]
        for i, (got, want) in enumerate(zip(tp, ts["top"])):
            self.assertEqual(got["top_ids"].tolist(), [p["ids"] for p in want], f"top ids row {i}")
            assert_close(f"top log-probs row {i}", got["top_logprobs"], f64([v for p in want for v in p["lps"]]), 1e-5)
            assert_close(f"top token log-probs row {i}", got["logprobs"], f64([p["logprob"] for p in want]), 1e-5)

        hid = score.last_hidden(w, {"rows": [as_req(r) for r in score_rows]})["hidden"]
        d = assert_close("last hidden", hid, torch.tensor(ts["hidden"], dtype=torch.float64), 1e-5, relative_to_max=True)
        report("vs TS engine: last hidden max |Δ| / max", d)

        req = [{**as_req(r), "weights": f64(r["weights"]), "entropy_weights": None if r["entropy_weights"] is None else f64(r["entropy_weights"])}
               for r in bw_rows]
        res = train.backward(w, {"rows": req, "normaliser": 7.0})
        report("vs TS engine: loss |Δ|", abs(res["loss"] - ts["loss"]))
        self.assertLess(abs(res["loss"] - ts["loss"]), 1e-6)
        for i, row in enumerate(res["rows"]):
            assert_close(f"backward log-probs row {i}", row["logprobs"], f64(nan_list(ts["logprobs"][i])), 1e-5)
            assert_close(f"backward entropies row {i}", row["entropies"], f64(nan_list(ts["entropies"][i])), 1e-5)
        worst = 0.0
        for a in ads:
            got = torch.cat([p.grad.reshape(-1) for p in w.adapters[a["name"]].params])
            worst = max(worst, assert_close(f"grad {a['name']}", got, torch.tensor(ts["grads"][a["name"]], dtype=torch.float64), 1e-5, relative_to_max=True))
        report("vs TS engine: LoRA gradients max |Δ| / max |g|", worst)
        norm = train.clip_grad_norm(w, {"names": ["a", "b"], "max_norm": 0})["norm"]
        self.assertLess(abs(norm - ts["norm"]) / ts["norm"], 1e-5)


if __name__ == "__main__":
    unittest.main()
