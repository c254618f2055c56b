"""Against the transformers + peft references of ../shared/fixtures/hf-llama/tiny-llama-gqa."""
import json
import unittest

import torch

from helpers import ADAMW, ALL, TINY, assert_close, f64, i32, open_worker, read_safetensors, report, require_tiny
from colloquy_worker import adapters, sample, score, train

LORA = {"rank": 4, "alpha": 8, "rslora": False, "targets": ALL}


class Reference(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_tiny()
        cls.ref = read_safetensors(TINY / "reference.safetensors")
        cls.ids = cls.ref["input_ids"].long()  # (2, 24)
        cls.adapter = [{"name": k, "data": v} for k, v in read_safetensors(TINY / "adapter" / "adapter_model.safetensors").items()]
        cls.w = open_worker(TINY)
        adapters.import_adapter(cls.w, {"name": "peft", "lora": LORA, "weights": cls.adapter, "optimizer": None})

    def rows(self, adapter, **extra):
        return [{"tokens": i32(self.ids[b].tolist()), "adapter": adapter, **extra} for b in range(2)]

    def check_logprobs(self, label, adapter, logits, temperature=1.0):
        out = score.score(self.w, {"rows": self.rows(adapter, temperature=temperature)})["rows"]
        lsm = torch.log_softmax(logits.double() / temperature, -1)  # (2, 24, V)
        worst_lp = worst_h = 0.0
        for b in range(2):
            want = lsm[b, :-1].gather(1, self.ids[b, 1:, None])[:, 0]
            got = out[b]["logprobs"]
            self.assertTrue(torch.isnan(got[0]))
            worst_lp = max(worst_lp, assert_close(f"{label} row {b} log-probs", got[1:], want, 1e-5))
            ent = -(lsm[b, :-1].exp() * lsm[b, :-1]).sum(-1)
            worst_h = max(worst_h, assert_close(f"{label} row {b} entropies", out[b]["entropies"][1:], ent, 1e-5))
        report(f"{label} max |Δ log p|", worst_lp)
        report(f"{label} max |Δ entropy|", worst_h)

    def test_base_logprobs(self):
        self.check_logprobs("base", None, self.ref["logits"])

    def test_lora_logprobs(self):
        self.check_logprobs("lora", "peft", self.ref["logits_lora"])

    def test_logprobs_at_temperature(self):
        self.check_logprobs("lora τ=0.7", "peft", self.ref["logits_lora"], temperature=0.7)

    def test_lora_gradients(self):
        w = self.w
        adapters.create_adapter(w, {"name": "train", "lora": LORA, "seed": 1, "optimizer": ADAMW})
        adapters.import_adapter(w, {"name": "train", "lora": LORA, "weights": self.adapter, "optimizer": None})
        T = self.ids.shape[1]
        rows = self.rows("train", weights=f64([0.0] + [1.0] * (T - 1)), entropy_weights=None)
        res = train.backward(w, {"rows": rows, "normaliser": 2 * (T - 1)})  # the mean cross-entropy of tokens 1..23
        err = abs(res["loss"] - float(self.ref["loss_lora"]))
        report("loss |Δ|", err)
        self.assertLess(err, 1e-5)
        worst = 0.0
        for name, p in w.adapters["train"].named():
            want = self.ref["grad." + name.replace(".weight", ".default.weight")]
            worst = max(worst, assert_close(f"grad {name}", p.grad, want, 1e-5, relative_to_max=True))
        report("LoRA gradients max |Δ| / max |g| (worst tensor)", worst)
        del w.adapters["train"]

    def test_greedy(self):
        prompt = self.ref["greedy_base"][0, :6].tolist()
        req = {"rows": [{"prompt": i32(prompt), "adapter": a, "max_tokens": 16, "temperature": 0, "top_k": 0, "top_p": 1,
                         "stop_tokens": i32([]), "seed": 0} for a in (None, "peft")]}
        out = sample.sample(self.w, req)["rows"]
        self.assertEqual(out[0]["ids"].tolist(), self.ref["greedy_base"][0, 6:].tolist())
        self.assertEqual(out[1]["ids"].tolist(), self.ref["greedy_lora"][0, 6:].tolist())
        self.assertEqual([o["finish"] for o in out], ["length", "length"])

    def test_top_logprobs(self):
        k = 5
        out = score.top_logprobs(self.w, {"rows": [{"tokens": i32(self.ids[1].tolist()), "adapter": "peft", "from": 3, "k": k}]})["rows"][0]
        lsm = torch.log_softmax(self.ref["logits_lora"][1].double(), -1)[2:-1]  # positions predicting tokens 3..23
        vals, ids = torch.sort(lsm, dim=-1, descending=True, stable=True)
        self.assertEqual(out["top_ids"].tolist(), ids[:, :k].tolist())
        assert_close("top log-probs", out["top_logprobs"], vals[:, :k], 1e-5)
        assert_close("token log-probs", out["logprobs"], lsm.gather(1, self.ids[1, 3:, None])[:, 0], 1e-5)

    def test_last_hidden(self):
        h = score.last_hidden(self.w, {"rows": [{"tokens": i32(self.ids[b].tolist()), "adapter": None} for b in range(2)]})["hidden"]
        self.assertEqual(tuple(h.shape), (2, 64))
        logits = h @ self.w.model.lm_head.weight.cpu().t()
        assert_close("head(last hidden)", logits, self.ref["logits"][:, -1], 1e-4)

    def test_reference_versions(self):
        j = json.loads((TINY / "reference.json").read_text())
        self.assertEqual(j["lora"]["r"], LORA["rank"])


if __name__ == "__main__":
    unittest.main()
