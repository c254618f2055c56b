"""Batches: mixed adapters equal per-adapter calls, chunking equals one pass, rows do not depend on each other,
sampling semantics (greedy, top-k, top-p, stop tokens, seeds), and generation agrees with scoring."""
import unittest

import torch

from helpers import ADAMW, assert_close, f64, i32, open_worker, report, synthetic_model
from colloquy_worker import adapters, sample, score, train
from colloquy_worker.errors import UserError
from colloquy_worker.lora import LoraConfig
from colloquy_worker.sample import draw

V = 61


def random_adapter(w, name, rank, targets, seed, trainable=True):
    lora = {"rank": rank, "alpha": 2 * rank, "rslora": False, "targets": targets}
    g = torch.Generator().manual_seed(seed)
    tensors = [{"name": n, "data": torch.randn(shape, generator=g) * 0.1} for n, shape, *_ in LoraConfig.parse(lora).size_table(w.config)]
    if trainable:
        adapters.create_adapter(w, {"name": name, "lora": lora, "seed": seed, "optimizer": ADAMW})
    adapters.import_adapter(w, {"name": name, "lora": lora, "weights": tensors, "optimizer": None})
    return tensors


def tokens(seed, n):
    g = torch.Generator().manual_seed(seed)
    return i32(torch.randint(3, V, (n,), generator=g).tolist())


def setup_worker(budget=4096):
    w = open_worker(synthetic_model(), budget=budget)
    random_adapter(w, "a", 2, ["q", "v"], 1)
    random_adapter(w, "b", 4, ["q", "k", "v", "o", "gate", "up", "down"], 2)
    random_adapter(w, "c", 3, ["up", "down"], 3, trainable=False)
    return w


NAMES = ["b", None, "a", "c", "a", "b", None, "c", "b"]
LENGTHS = [7, 12, 3, 9, 15, 1, 5, 11, 6]


def rows():
    return [{"tokens": tokens(i, n), "adapter": a, "from": 1 + i % 3 if n > 3 else 1, "temperature": [1.0, 0.7, 1.3][i % 3]}
            for i, (a, n) in enumerate(zip(NAMES, LENGTHS))]


def train_rows():
    out = []
    for i, r in enumerate(rows()):
        T, f = r["tokens"].numel(), r["from"]
        wts = [0.0] * T
        for t in range(f, T):
            wts[t] = ((t * 3 + i) % 5 - 2) / 2
        out.append({**r, "weights": f64(wts), "entropy_weights": f64([0.05 * (t % 2) for t in range(T)]) if i % 2 else None})
    return out


def grads(w):
    return {n: [p.grad.clone() for p in w.adapters[n].params] for n in ("a", "b")}


class Batching(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = setup_worker()
        cls.small = setup_worker(budget=8)  # one or two rows per forward

    def zero(self, w):
        train.zero_grad(w, {"names": ["a", "b"]})

    def test_mixed_adapters_equal_separate_calls(self):
        w, rs = self.w, rows()
        mixed = score.score(w, {"rows": rs})["rows"]
        worst = 0.0
        for i, r in enumerate(rs):
            alone = score.score(w, {"rows": [r]})["rows"][0]
            worst = max(worst, assert_close(f"row {i} log-probs", mixed[i]["logprobs"], alone["logprobs"], 1e-5))
            assert_close(f"row {i} entropies", mixed[i]["entropies"], alone["entropies"], 1e-5)
        report("score: mixed batch vs one row per call, max |Δ log p|", worst)
        # backward: the gradient of a mixed batch is the sum of the per-adapter batches' gradients
        trs = train_rows()
        self.zero(w)
        loss = train.backward(w, {"rows": trs, "normaliser": 10})["loss"]
        g_mixed = grads(w)
        total = 0.0
        g_sum = None
        for name in ("a", "b", "c", None):
            self.zero(w)
            part = [r for r in trs if r["adapter"] == name]
            total += train.backward(w, {"rows": part, "normaliser": 10})["loss"]
            g = grads(w)
            g_sum = g if g_sum is None else {n: [x + y for x, y in zip(g_sum[n], g[n])] for n in g}
        self.assertLess(abs(loss - total), 1e-5)
        worst = 0.0
        for n in ("a", "b"):
            for i, (x, y) in enumerate(zip(g_mixed[n], g_sum[n])):
                worst = max(worst, assert_close(f"grad {n}[{i}]", x, y, 1e-5, relative_to_max=True))
        report("backward: mixed vs per-adapter gradients, max |Δ| / max |g|", worst)
        self.zero(w)

    def test_chunking_equals_one_pass(self):
        rs, trs = rows(), train_rows()
        one = score.score(self.w, {"rows": rs})["rows"]
        many = score.score(self.small, {"rows": rs})["rows"]
        worst = max(assert_close(f"row {i}", a["logprobs"], b["logprobs"], 1e-5) for i, (a, b) in enumerate(zip(one, many)))
        report("score: budget 8 vs 4096 tokens per pass, max |Δ log p|", worst)
        for w in (self.w, self.small):
            self.zero(w)
        l1 = train.backward(self.w, {"rows": trs, "normaliser": 3})["loss"]
        l2 = train.backward(self.small, {"rows": trs, "normaliser": 3})["loss"]
        self.assertLess(abs(l1 - l2), 1e-5)
        g1, g2 = grads(self.w), grads(self.small)
        worst = max(assert_close(f"grad {n}[{i}]", x, y, 1e-5, relative_to_max=True)
                    for n in g1 for i, (x, y) in enumerate(zip(g1[n], g2[n])))
        report("backward: budget 8 vs 4096, max |Δ grad| / max |g|", worst)
        for w in (self.w, self.small):
            self.zero(w)
        top = [{"tokens": r["tokens"], "adapter": r["adapter"], "from": r["from"], "k": 4} for r in rs]
        t1 = score.top_logprobs(self.w, {"rows": top})["rows"]
        t2 = score.top_logprobs(self.small, {"rows": top})["rows"]
        for a, b in zip(t1, t2):
            self.assertEqual(a["top_ids"].tolist(), b["top_ids"].tolist())
            assert_close("top log-probs", a["top_logprobs"], b["top_logprobs"], 1e-5)
        h1 = score.last_hidden(self.w, {"rows": rs})["hidden"]
        h2 = score.last_hidden(self.small, {"rows": rs})["hidden"]
        assert_close("last hidden", h1, h2, 1e-5)
        req = {"rows": self.sample_rows()}
        s1, s2 = sample.sample(self.w, req)["rows"], sample.sample(self.small, req)["rows"]
        for a, b in zip(s1, s2):
            self.assertEqual(a["ids"].tolist(), b["ids"].tolist())
            assert_close("sample log-probs", a["logprobs"], b["logprobs"], 1e-5)

    def sample_rows(self):
        specs = [(None, 0.0, 0, 1.0), ("a", 1.0, 0, 1.0), ("b", 0.8, 5, 1.0), ("c", 1.2, 0, 0.9), ("b", 0.0, 0, 1.0), ("a", 1.0, 3, 0.8)]
        return [{"prompt": tokens(100 + i, 2 + 3 * i), "adapter": a, "max_tokens": 4 + 2 * i, "temperature": t, "top_k": k,
                 "top_p": p, "stop_tokens": i32([]), "seed": 1000 + i} for i, (a, t, k, p) in enumerate(specs)]

    def test_sample_rows_are_independent(self):
        rs = self.sample_rows()
        together = sample.sample(self.w, {"rows": rs})["rows"]
        again = sample.sample(self.w, {"rows": rs})["rows"]
        for i, r in enumerate(rs):
            alone = sample.sample(self.w, {"rows": [r]})["rows"][0]
            self.assertEqual(together[i]["ids"].tolist(), alone["ids"].tolist(), f"row {i}")
            self.assertEqual(together[i]["ids"].tolist(), again[i]["ids"].tolist(), f"row {i} (same seed)")
            assert_close(f"row {i} log-probs", together[i]["logprobs"], alone["logprobs"], 1e-5)
            self.assertEqual(len(alone["ids"]), r["max_tokens"])
        other = sample.sample(self.w, {"rows": [{**rs[1], "seed": 77}]})["rows"][0]
        self.assertNotEqual(other["ids"].tolist(), together[1]["ids"].tolist())

    def test_generation_agrees_with_scoring(self):
        # the KV-cache path (prefill + decode) gives the log-probs a full forward gives
        rs = self.sample_rows()
        out = sample.sample(self.w, {"rows": rs})["rows"]
        worst = 0.0
        for r, o in zip(rs, out):
            seq = torch.cat([r["prompt"], o["ids"]])
            sc = score.score(self.w, {"rows": [{"tokens": seq, "adapter": r["adapter"], "from": r["prompt"].numel()}]})["rows"][0]
            worst = max(worst, assert_close("generated log-probs", o["logprobs"], sc["logprobs"][r["prompt"].numel():], 1e-5))
            if r["temperature"] == 0:  # greedy: each id is the argmax of the full forward's logits
                top = score.top_logprobs(self.w, {"rows": [{"tokens": seq, "adapter": r["adapter"], "from": r["prompt"].numel(), "k": 1}]})
                self.assertEqual(top["rows"][0]["top_ids"][:, 0].tolist(), o["ids"].tolist())
        report("sample log-probs vs score of the generated sequence, max |Δ|", worst)

    def test_stop_tokens_and_max_tokens(self):
        w = self.w
        base = {"prompt": tokens(5, 4), "adapter": "b", "max_tokens": 12, "temperature": 0, "top_k": 0, "top_p": 1, "seed": 0}
        free = sample.sample(w, {"rows": [{**base, "stop_tokens": i32([])}]})["rows"][0]
        stop = int(free["ids"][3])
        first = free["ids"].tolist().index(stop)
        out = sample.sample(w, {"rows": [{**base, "stop_tokens": i32([stop])}, {**base, "max_tokens": 0, "stop_tokens": i32([])}]})["rows"]
        self.assertEqual(out[0]["ids"].tolist(), free["ids"][:first + 1].tolist())
        self.assertEqual(out[0]["finish"], "eos")
        self.assertEqual((out[1]["ids"].numel(), out[1]["finish"]), (0, "length"))
        self.assertEqual(free["finish"], "length")
        # top_k = 1 is greedy at any temperature
        k1 = sample.sample(w, {"rows": [{**base, "temperature": 1.7, "top_k": 1, "seed": 9, "stop_tokens": i32([])}]})["rows"][0]
        self.assertEqual(k1["ids"].tolist(), free["ids"].tolist())

    def test_draw(self):
        z = torch.log(f64([0.1, 0.2, 0.0, 0.7]))[None].repeat(5, 1)  # (5, 4) with a zero-probability id
        u = f64([0.05, 0.25, 0.95, 0.31, 0.9999999])
        off = torch.zeros(5, dtype=torch.int64)
        self.assertEqual(draw(z, off, f64([1] * 5), u).tolist(), [0, 1, 3, 3, 3])
        # top-p 0.7 keeps id 3 alone; 0.75 keeps 3 and 1 (renormalised: 1 → 2/9, 3 → 7/9)
        self.assertEqual(draw(z, off, f64([0.7] * 5), u).tolist(), [3, 3, 3, 3, 3])
        self.assertEqual(draw(z, off, f64([0.75] * 5), f64([0.1, 0.2, 0.23, 0.5, 0.9])).tolist(), [1, 1, 3, 3, 3])
        # top-k 2 keeps ids 3 and 1; ties with the k-th are kept
        self.assertEqual(draw(z, torch.full((5,), 2), f64([1] * 5), f64([0.1, 0.2, 0.23, 0.5, 0.9])).tolist(), [1, 1, 3, 3, 3])
        tie = torch.log(f64([0.25, 0.25, 0.25, 0.25]))[None]
        self.assertEqual(draw(tie, torch.tensor([1]), f64([1]), f64([0.99])).tolist(), [3])

    def test_user_errors(self):
        w = self.w
        cases = [
            ("E_UNKNOWN_ADAPTER", score.score, {"rows": [{"tokens": i32([1, 2]), "adapter": "zzz"}]}),
            ("E_BAD_FROM", score.score, {"rows": [{"tokens": i32([1, 2]), "adapter": None, "from": 3}]}),
            ("E_BAD_FROM", score.score, {"rows": [{"tokens": i32([1, 2]), "adapter": None, "from": 0}]}),
            ("E_BAD_TEMPERATURE", score.score, {"rows": [{"tokens": i32([1, 2]), "adapter": None, "temperature": 0}]}),
            ("E_TOKEN_RANGE", score.score, {"rows": [{"tokens": i32([1, V]), "adapter": None}]}),
            ("E_BAD_WEIGHTS", train.backward, {"rows": [{"tokens": i32([1, 2, 3]), "adapter": "a", "from": 2, "weights": f64([0, 1, 1])}], "normaliser": 1}),
            ("E_BAD_WEIGHTS", train.backward, {"rows": [{"tokens": i32([1, 2, 3]), "adapter": "a", "weights": f64([0, 1])}], "normaliser": 1}),
            ("E_BAD_NORMALISER", train.backward, {"rows": [], "normaliser": 0}),
            ("E_EMPTY_PROMPT", sample.sample, {"rows": [{"prompt": i32([]), "adapter": None, "max_tokens": 1}]}),
            ("E_NO_OPTIMIZER", train.step, {"names": ["c"], "lr": 0.1}),
            ("E_UNKNOWN_ADAPTER", train.zero_grad, {"names": ["a", "zzz"]}),
        ]
        for code, fn, req in cases:
            with self.assertRaises(UserError, msg=code) as cm:
                fn(w, req)
            self.assertEqual(cm.exception.code, code, cm.exception.message)
        # a rejected call changed nothing: the worker still answers
        self.assertEqual(len(score.score(w, {"rows": [{"tokens": i32([1, 2]), "adapter": "a"}]})["rows"]), 1)


if __name__ == "__main__":
    unittest.main()
