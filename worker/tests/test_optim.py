"""The optimizers and clipping against hand computations and torch.optim; adapters in and out."""
import math
import os
import struct
import unittest

import torch

from helpers import ADAMW, ALL, assert_close, open_worker, synthetic_model
from colloquy_worker import adapters, train
from colloquy_worker.errors import UserError
from colloquy_worker.lora import LoraConfig
from colloquy_worker.optim import Optimizer, clip_grad_norm
from colloquy_worker.server import Server


def fround(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def params(seed, shapes=((3, 4), (5,))):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=g) for s in shapes]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g) * 0.1
    return ps


class Optimizers(unittest.TestCase):
    def test_adamw_by_hand(self):
        # optim.ts: p ← p(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
        #           p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps), each stored value rounded to float32
        lr, b1, b2, eps, wd = 0.01, 0.9, 0.95, 1e-8, 0.1
        ps = params(0)
        opt = Optimizer({"kind": "adamw", "beta1": b1, "beta2": b2, "eps": eps, "weight_decay": wd}, ps)
        want = [[float(x) for x in p.reshape(-1)] for p in ps]
        m = [[0.0] * len(x) for x in want]
        v = [[0.0] * len(x) for x in want]
        for t in (1, 2, 3):
            for i, p in enumerate(ps):
                g = [float(x) for x in p.grad.reshape(-1)]
                for j in range(len(g)):
                    want[i][j] = fround(want[i][j] * (1 - lr * wd))
                    m[i][j] = fround(b1 * m[i][j] + (1 - b1) * g[j])
                    v[i][j] = fround(b2 * v[i][j] + (1 - b2) * g[j] * g[j])
                    want[i][j] = fround(want[i][j] - (lr / (1 - b1 ** t)) * m[i][j] / (math.sqrt(v[i][j]) / math.sqrt(1 - b2 ** t) + eps))
            opt.update(lr)
            for i, p in enumerate(ps):
                self.assertEqual(p.reshape(-1).tolist(), want[i], f"step {t} tensor {i}")
                self.assertEqual(opt.moments["exp_avg"][i].reshape(-1).tolist(), m[i])
                self.assertEqual(opt.moments["exp_avg_sq"][i].reshape(-1).tolist(), v[i])
            for p in ps:
                p.grad.mul_(-0.7)
        self.assertEqual(opt.step, 3)

    def test_adamw_matches_torch(self):
        ps, qs = params(1), params(1)
        opt = Optimizer({"kind": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}, ps)
        ref = torch.optim.AdamW([torch.nn.Parameter(q.detach().clone()) for q in qs], lr=0.003, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        for rp, q in zip(ref.param_groups[0]["params"], qs):
            rp.grad = q.grad.clone()
        for _ in range(4):
            opt.update(0.003)
            ref.step()
        for p, rp in zip(ps, ref.param_groups[0]["params"]):
            assert_close("AdamW vs torch.optim.AdamW", p, rp.detach(), 1e-6, relative_to_max=True)

    def test_sgd_momentum_matches_torch(self):
        ps, qs = params(2), params(2)
        opt = Optimizer({"kind": "sgd", "beta1": 0.9, "beta2": 0, "eps": 0, "weight_decay": 0.05}, ps)
        ref = torch.optim.SGD([torch.nn.Parameter(q.detach().clone()) for q in qs], lr=0.1, momentum=0.9, weight_decay=0.05)
        for rp, q in zip(ref.param_groups[0]["params"], qs):
            rp.grad = q.grad.clone()
        for _ in range(3):
            opt.update(0.1)
            ref.step()
        for p, rp in zip(ps, ref.param_groups[0]["params"]):
            assert_close("SGD vs torch.optim.SGD", p, rp.detach(), 1e-6, relative_to_max=True)
            self.assertEqual(Optimizer({"kind": "sgd", "beta1": 0, "beta2": 0, "eps": 0, "weight_decay": 0}, ps).moment_names(), ())

    def test_clip(self):
        ps = params(3)
        total = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in ps))
        before = [p.grad.clone() for p in ps]
        self.assertAlmostEqual(clip_grad_norm(ps, 0), total, places=12)  # 0: no clipping
        self.assertTrue(all(torch.equal(a, p.grad) for a, p in zip(before, ps)))
        self.assertAlmostEqual(clip_grad_norm(ps, total * 2), total, places=12)  # below max: unchanged
        self.assertAlmostEqual(clip_grad_norm(ps, 0.1), total, places=12)
        k = 0.1 / (total + 1e-6)
        for a, p in zip(before, ps):
            self.assertTrue(torch.equal(p.grad, (a.double() * k).float()))


class Adapters(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = open_worker(synthetic_model())

    def lora(self, **kw):
        return {"rank": 4, "alpha": 8, "rslora": False, "targets": ALL, **kw}

    def test_create_init(self):
        w = self.w
        adapters.create_adapter(w, {"name": "i1", "lora": self.lora(), "seed": 42, "optimizer": ADAMW})
        adapters.create_adapter(w, {"name": "i2", "lora": self.lora(), "seed": 42, "optimizer": ADAMW})
        adapters.create_adapter(w, {"name": "i3", "lora": self.lora(), "seed": 43, "optimizer": ADAMW})
        e1, e2, e3 = (adapters.export_adapter(w, {"name": n}) for n in ("i1", "i2", "i3"))
        for t1, t2, t3 in zip(e1["weights"], e2["weights"], e3["weights"]):
            self.assertTrue(torch.equal(t1["data"], t2["data"]))
            if ".lora_B." in t1["name"]:
                self.assertEqual(float(t1["data"].abs().max()), 0.0)
            else:
                bound = 1 / math.sqrt(t1["data"].shape[1])
                self.assertLessEqual(float(t1["data"].abs().max()), bound)
                self.assertGreater(float(t1["data"].abs().max()), 0.5 * bound)
                self.assertFalse(torch.equal(t1["data"], t3["data"]))
        with self.assertRaises(UserError) as cm:
            adapters.create_adapter(w, {"name": "i1", "lora": self.lora(), "seed": 1, "optimizer": ADAMW})
        self.assertEqual(cm.exception.code, "E_ADAPTER_EXISTS")
        self.assertAlmostEqual(LoraConfig.parse(self.lora(rslora=True)).scale, 8 / 2)
        self.assertEqual(LoraConfig.parse(self.lora(targets=["down_proj", "q"])).targets, ("q", "down"))

    def test_import_checks(self):
        w = self.w
        adapters.create_adapter(w, {"name": "x", "lora": self.lora(), "seed": 1, "optimizer": ADAMW})
        good = adapters.export_adapter(w, {"name": "x"})
        cases = [
            ("E_MISSING_TENSOR", {"weights": good["weights"][1:]}),
            ("E_SHAPE", {"weights": [{**good["weights"][0], "data": good["weights"][0]["data"][:2]}] + good["weights"][1:]}),
            ("E_SHAPE", {"weights": good["weights"] + [{"name": "extra.weight", "data": torch.zeros(1)}]}),
            ("E_BAD_ADAPTER", {"weights": good["weights"] + good["weights"][:1]}),
            ("E_BAD_ADAPTER", {"lora": self.lora(alpha=16)}),  # another config under a known name
            ("E_BAD_ADAPTER", {"optimizer": {"step": 1, "moments": {"momentum_buffer": {}}}}),
            ("E_BAD_ADAPTER", {"optimizer": {"step": 1, "moments": {"exp_avg": good["optimizer"]["moments"]["exp_avg"]}}}),
            ("E_SHAPE", {"optimizer": {"step": 1, "moments": {"exp_avg": good["optimizer"]["moments"]["exp_avg"],
                                                               "exp_avg_sq": {k: v[:1] for k, v in good["optimizer"]["moments"]["exp_avg_sq"].items()}}}}),
            ("E_BAD_ADAPTER", {"name": "fresh", "optimizer": good["optimizer"]}),  # an inference adapter has no optimizer
        ]
        before = adapters.export_adapter(w, {"name": "x"})
        for code, change in cases:
            req = {"name": "x", "lora": self.lora(), "weights": good["weights"], "optimizer": None, **change}
            with self.assertRaises(UserError, msg=code) as cm:
                adapters.import_adapter(w, req)
            self.assertEqual(cm.exception.code, code, cm.exception.message)
        after = adapters.export_adapter(w, {"name": "x"})
        for a, b in zip(before["weights"], after["weights"]):
            self.assertTrue(torch.equal(a["data"], b["data"]))  # nothing changed
        self.assertNotIn("fresh", w.adapters)

    def test_training_changes_only_its_adapter(self):
        w = self.w
        adapters.create_adapter(w, {"name": "p", "lora": self.lora(targets=["v", "up"]), "seed": 1,
                                    "optimizer": {"kind": "sgd", "beta1": 0.9, "beta2": 0, "eps": 0, "weight_decay": 0}})
        adapters.create_adapter(w, {"name": "q", "lora": self.lora(targets=["v", "up"]), "seed": 2, "optimizer": ADAMW})
        q0 = adapters.export_adapter(w, {"name": "q"})
        rows = [{"tokens": torch.tensor([1, 5, 7, 9], dtype=torch.int32), "adapter": "p",
                 "weights": torch.tensor([0, 1, 1, 1], dtype=torch.float64)}]
        for _ in range(2):
            train.backward(w, {"rows": rows, "normaliser": 3})
            train.step(w, {"names": ["p"], "lr": 0.5})
        ex = adapters.export_adapter(w, {"name": "p"})
        self.assertEqual(set(ex["optimizer"]["moments"]), {"momentum_buffer"})
        self.assertEqual(ex["optimizer"]["step"], 2)
        self.assertTrue(any(float(t["data"].abs().max()) > 0 for t in ex["weights"] if ".lora_B." in t["name"]))
        q1 = adapters.export_adapter(w, {"name": "q"})
        for a, b in zip(q0["weights"], q1["weights"]):
            self.assertTrue(torch.equal(a["data"], b["data"]))
        self.assertEqual(train.clip_grad_norm(w, {"names": ["q"], "max_norm": 1})["norm"], 0.0)


class Failures(unittest.TestCase):
    """What a request that fails part-way leaves behind, through the server's replies."""

    def setUp(self):
        self.server = Server(None, None)
        self.server.worker = open_worker(synthetic_model(), budget=8)  # 8 tokens a pass: two rows, two chunks
        self.lora = {"rank": 2, "alpha": 4, "rslora": False, "targets": ALL}
        self.rows = [{"tokens": torch.tensor([1, 5, 7, 9, 3, 4], dtype=torch.int32), "adapter": "a",
                      "weights": torch.tensor([0, 1, 1, 1, 1, 1], dtype=torch.float64)} for _ in range(2)]

    def reply(self, op, **req):
        r = self.server.handle(1, op, req)
        if not r["ok"] and r["error"]["traceback"]:
            os.unlink(r["error"]["traceback"])
        return r

    def grads(self):
        return [p.grad.clone() for p in self.server.worker.adapters["a"].params]

    def test_failed_backward_keeps_the_gradients(self):
        self.assertTrue(self.reply("create_adapter", name="a", lora=self.lora, seed=1, optimizer=ADAMW)["ok"])
        self.assertTrue(self.reply("backward", rows=self.rows, normaliser=1)["ok"])
        once = self.grads()
        self.assertGreater(sum(float(g.abs().sum()) for g in once), 0)
        real, calls = train.head_stats, [0]

        def second_chunk_runs_out(*a, **k):
            calls[0] += 1
            if calls[0] == 2:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
            return real(*a, **k)

        train.head_stats = second_chunk_runs_out
        try:
            r = self.reply("backward", rows=self.rows, normaliser=1)
        finally:
            train.head_stats = real
        self.assertEqual((calls[0], r["ok"], r["error"]["kind"], r["error"]["code"]), (2, False, "user", "E_OOM"))
        for g, g0 in zip(self.grads(), once):
            self.assertTrue(torch.equal(g, g0))  # the first chunk's gradients were not added
        self.assertTrue(self.reply("backward", rows=self.rows, normaliser=1)["ok"])
        for g, g0 in zip(self.grads(), once):
            assert_close("accumulated", g, 2 * g0, 1e-6, relative_to_max=True)

    def test_torn_step_is_internal(self):
        self.assertTrue(self.reply("create_adapter", name="a", lora=self.lora, seed=1, optimizer=ADAMW)["ok"])
        self.assertTrue(self.reply("backward", rows=self.rows, normaliser=1)["ok"])
        moments = self.server.worker.adapters["a"].optimizer.moments["exp_avg"]
        moments[1] = torch.zeros(moments[1].shape[0] + 1, 1)  # the first tensor updates, the second cannot
        r = self.reply("step", names=["a"], lr=0.1)
        self.assertEqual((r["ok"], r["error"]["kind"], r["error"]["code"]), (False, "internal", "E_TORN_UPDATE"))
        self.assertIn("the optimizer step failed part-way", r["error"]["message"])

    def test_bad_arguments_are_user_errors(self):
        big = 1 << 64
        cases = [("create_adapter", {"name": "a", "lora": self.lora, "seed": big, "optimizer": ADAMW}),
                 ("sample", {"rows": [{"prompt": torch.tensor([1, 2], dtype=torch.int32), "max_tokens": 2, "seed": big}]}),
                 ("open", {"model": str(synthetic_model()), "device": "cuda:x", "dtype": "float32"})]
        for op, req in cases:
            if op == "open":
                self.server = Server(None, None)  # a worker with no model yet
            r = self.reply(op, **req)
            self.assertEqual((r["ok"], r["error"]["kind"], r["error"]["code"]), (False, "user", "E_BAD_ARG"), (op, r))


if __name__ == "__main__":
    unittest.main()
