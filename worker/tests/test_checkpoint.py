"""Checkpoint reading: config keys of transformers 4 and 5, sharded and bf16 files, tied heads, rope scaling."""
import math
import tempfile
import unittest
from pathlib import Path

import torch

from helpers import TINY, assert_close, i32, open_worker, random_checkpoint, read_safetensors
from colloquy_worker import score
from colloquy_worker.checkpoint import load_weights, parse_config, read_config
from colloquy_worker.errors import UserError
from colloquy_worker.model import rope_inv_freq

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}


def hf_llama3_inv_freq(head_dim, theta, s):
    """transformers' _compute_default_rope_parameters + _compute_llama3_parameters, in float32 as it computes them."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    factor, lo, hi, old = s["factor"], s["low_freq_factor"], s["high_freq_factor"], s["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / lo, old / hi
    wavelen = 2 * math.pi / inv
    out = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, out)


class Checkpoints(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_transformers_4_and_5_keys(self):
        a = read_config(random_checkpoint(self.dir / "v4", rope_scaling=LLAMA3))
        b = read_config(random_checkpoint(self.dir / "v5", rope_scaling=LLAMA3, transformers5=True))
        self.assertEqual(a, b)
        self.assertEqual(a.rope_theta, 500000.0)
        self.assertEqual(a.rope_scaling["type"], "llama3")
        self.assertEqual((a.head_dim, a.eos_ids, a.bos_id), (8, [2], 1))
        if TINY.exists():
            c = read_config(TINY)
            self.assertEqual((c.rope_theta, c.head_dim, c.n_kv_heads, c.tied_embeddings), (10000.0, 16, 2, False))

    def test_config_errors(self):
        base = {"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 8,
                "vocab_size": 10}
        parse_config(base, "c")
        for change, code in [({"model_type": "mistral"}, "E_UNSUPPORTED"), ({"attention_bias": True}, "E_UNSUPPORTED"),
                             ({"rope_scaling": {"rope_type": "yarn", "factor": 2}}, "E_UNSUPPORTED"),
                             ({"rope_scaling": {"rope_type": "linear"}}, "E_BAD_CONFIG"), ({"hidden_size": 0}, "E_BAD_CONFIG"),
                             ({"num_key_value_heads": 3}, "E_BAD_CONFIG"), ({"hidden_act": "gelu"}, "E_UNSUPPORTED")]:
            with self.assertRaises(UserError, msg=str(change)) as cm:
                parse_config({**base, **change}, "c")
            self.assertEqual(cm.exception.code, code)
        c = parse_config({**base, "rope_scaling": {"type": "linear", "factor": 4}}, "c")
        self.assertEqual(c.rope_scaling, {"type": "linear", "factor": 4.0})

    def test_rope_scaling(self):
        c = parse_config({"model_type": "llama", "hidden_size": 256, "num_attention_heads": 2, "num_hidden_layers": 1,
                          "intermediate_size": 8, "vocab_size": 10, "rope_theta": 500000.0, "rope_scaling": LLAMA3}, "c")
        want = hf_llama3_inv_freq(128, 500000.0, LLAMA3)
        assert_close("llama3 inv_freq", rope_inv_freq(c), want, 1e-6, relative_to_max=True)
        self.assertTrue(bool((rope_inv_freq(c) != hf_llama3_inv_freq(128, 500000.0, {**LLAMA3, "factor": 1.0})).any()))
        lin = parse_config({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 2, "num_hidden_layers": 1,
                            "intermediate_size": 8, "vocab_size": 10, "rope_scaling": {"rope_type": "linear", "factor": 4.0}}, "c")
        plain = 1.0 / (10000.0 ** (torch.arange(0, 32, 2).float() / 32))
        assert_close("linear inv_freq", rope_inv_freq(lin), plain / 4, 1e-6, relative_to_max=True)

    def test_sharded_bf16_and_tied(self):
        one = random_checkpoint(self.dir / "one", tied=True, seed=3)
        three = random_checkpoint(self.dir / "three", tied=True, seed=3, shards=3)
        bf = random_checkpoint(self.dir / "bf", tied=True, seed=3, dtype=torch.bfloat16)
        c = read_config(one)
        self.assertTrue(c.tied_embeddings)
        w1 = load_weights(str(one), c, torch.device("cpu"), torch.float32)
        w3 = load_weights(str(three), c, torch.device("cpu"), torch.float32)
        wb = load_weights(str(bf), c, torch.device("cpu"), torch.float32)
        self.assertNotIn("lm_head.weight", w1)
        raw_bf = read_safetensors(bf / "model.safetensors")
        for name, t in w1.items():
            self.assertTrue(torch.equal(t, w3[name]), name)
            self.assertEqual(raw_bf[name].dtype, torch.bfloat16)
            self.assertTrue(torch.equal(raw_bf[name].float(), wb[name]), name)
        rows = {"rows": [{"tokens": i32([1, 4, 9, 16, 25]), "adapter": None}]}
        s1 = score.score(open_worker(one), rows)["rows"][0]["logprobs"]
        s3 = score.score(open_worker(three), rows)["rows"][0]["logprobs"]
        self.assertTrue(torch.equal(s1[1:], s3[1:]))
        w = open_worker(one)
        self.assertIs(w.model.lm_head.weight, w.model.model.embed_tokens.weight)
        sb = score.score(open_worker(bf, dtype="bfloat16"), rows)["rows"][0]["logprobs"]
        assert_close("bf16 vs f32 log-probs", sb[1:], s1[1:], 0.02, relative_to_max=True)

    def test_load_errors(self):
        with self.assertRaises(UserError) as cm:
            open_worker(self.dir / "missing")
        self.assertEqual(cm.exception.code, "E_NOT_FOUND")
        folder = random_checkpoint(self.dir / "untied", tied=False)
        cfg = (folder / "config.json").read_text()
        t = read_safetensors(folder / "model.safetensors")
        del t["lm_head.weight"]
        from helpers import write_safetensors
        write_safetensors(folder / "model.safetensors", t)
        with self.assertRaises(UserError) as cm:
            open_worker(folder)
        self.assertEqual(cm.exception.code, "E_MISSING_TENSOR")
        (folder / "config.json").write_text(cfg.replace('"hidden_size": 32', '"hidden_size": 40'))
        with self.assertRaises(UserError) as cm:
            open_worker(folder)
        self.assertIn(cm.exception.code, ("E_SHAPE", "E_BAD_CONFIG"))


if __name__ == "__main__":
    unittest.main()
