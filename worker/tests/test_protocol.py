"""Frames, and a round trip through a real `python -m colloquy_worker` subprocess."""
import io
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import torch

from helpers import ADAMW, WORKER, i32, synthetic_model
from colloquy_worker.protocol import decode, encode, read_frame, write_frame

LORA = {"rank": 2, "alpha": 4, "rslora": False, "targets": ["q", "v", "down"]}


class Frames(unittest.TestCase):
    def test_round_trip(self):
        msg = {"id": 7, "op": "x", "rows": [{"a": torch.arange(3, dtype=torch.int32), "b": torch.tensor([1.5, float("nan")], dtype=torch.float64)},
                                           {"a": torch.zeros(0, dtype=torch.int32), "m": torch.ones(2, 3, dtype=torch.float32)}],
               "u": torch.tensor([255, 1], dtype=torch.uint8), "l": torch.tensor([-(2 ** 40)], dtype=torch.int64), "loss": float("nan")}
        frame = encode(msg)
        j, p = struct.unpack("<IQ", frame[:12])
        self.assertEqual(len(frame), 12 + j + p)
        header = frame[12:12 + j]
        import json
        specs = json.loads(header)["tensors"]
        self.assertTrue(all(s["offset"] % 8 == 0 for s in specs))
        self.assertEqual(json.loads(header)["loss"], "NaN")  # JSON has no NaN: sent as a string
        back = read_frame(io.BytesIO(frame))
        self.assertEqual(back["rows"][0]["a"].tolist(), [0, 1, 2])
        self.assertTrue(torch.isnan(back["rows"][0]["b"][1]))
        self.assertEqual(back["rows"][1]["a"].numel(), 0)
        self.assertEqual(back["rows"][1]["m"].shape, (2, 3))
        self.assertEqual(back["u"].tolist(), [255, 1])
        self.assertEqual(back["l"].tolist(), [-(2 ** 40)])
        self.assertIsNone(read_frame(io.BytesIO(b"")))

    def test_bad_reference(self):
        from colloquy_worker.errors import UserError
        with self.assertRaises(UserError):
            decode(b'{"x": {"$t": 3}, "tensors": []}', bytearray())
        with self.assertRaises(UserError):  # offset not a multiple of 8
            decode(b'{"x": {"$t": 0}, "tensors": [{"dtype": "f32", "shape": [1], "offset": 4, "nbytes": 4}]}', bytearray(8))


class Subprocess(unittest.TestCase):
    def setUp(self):
        env = {**os.environ, "PYTHONPATH": str(WORKER)}
        self.log = tempfile.TemporaryFile()  # the worker's stderr (a pipe nobody reads could fill up)
        self.p = subprocess.Popen([sys.executable, "-m", "colloquy_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, env=env)
        self.n = 0

    def tearDown(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.p.stdin.close()
        self.p.stdout.close()
        self.log.close()

    def call(self, op, **fields):
        self.n += 1
        write_frame(self.p.stdin, {"id": self.n, "op": op, **fields})
        reply = read_frame(self.p.stdout)
        if reply is None:
            self.log.seek(0)
            self.fail(f"the worker closed its stdout: {self.log.read().decode()[-2000:]}")
        self.assertEqual(reply["id"], self.n)
        return reply

    def ok(self, op, **fields):
        r = self.call(op, **fields)
        self.assertTrue(r["ok"], r.get("error"))
        return r

    def test_session(self):
        hello = read_frame(self.p.stdout)
        self.assertEqual(hello["op"], "hello")
        self.assertEqual(hello["protocol"], 1)
        for k in ("worker", "torch", "python", "cuda", "devices"):
            self.assertIn(k, hello)
        model = synthetic_model()
        r = self.ok("open", model=str(model), device="cpu", dtype="float32", max_tokens_per_pass=64)
        self.assertEqual(r["config"], {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "hidden_dim": 48,
                                       "vocab_size": 61, "max_seq_len": 64, "tied_embeddings": False})
        self.assertEqual((r["device"], r["dtype"]), ("cpu", "float32"))

        rows = [{"tokens": i32([1, 5, 9, 3]), "adapter": None, "from": 2, "temperature": 1},
                {"tokens": i32([1, 7]), "adapter": None, "from": 1, "temperature": 0.5}]
        sc = self.ok("score", rows=rows)["rows"]
        self.assertEqual(sc[0]["logprobs"].dtype, torch.float64)
        self.assertEqual(sc[0]["logprobs"].shape, (4,))
        self.assertTrue(torch.isnan(sc[0]["logprobs"][:2]).all() and not torch.isnan(sc[0]["logprobs"][2:]).any())

        self.ok("create_adapter", name="a", lora=LORA, seed=5, optimizer=ADAMW)
        ex = self.ok("export_adapter", name="a")
        self.assertEqual(ex["lora"], LORA)
        names = [t["name"] for t in ex["weights"]]
        self.assertEqual(names[:2], ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                                     "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"])
        self.assertEqual(len(names), 2 * 3 * 2)
        self.assertEqual(ex["optimizer"]["step"], 0)
        self.assertEqual(set(ex["optimizer"]["moments"]), {"exp_avg", "exp_avg_sq"})
        # a trained step, then the state goes out and into a second adapter of the same config
        train_rows = [{"tokens": i32([1, 5, 9, 3]), "adapter": "a", "weights": torch.tensor([0, 1, 1, 1], dtype=torch.float64),
                       "entropy_weights": None, "from": 1, "temperature": 1}]
        for t in ex["weights"]:  # B ≠ 0 so that A gets a gradient too
            if ".lora_B." in t["name"]:
                t["data"] = torch.full_like(t["data"], 0.01)
        self.ok("import_adapter", name="a", lora=LORA, weights=ex["weights"], optimizer=None)
        bw = self.ok("backward", rows=train_rows, normaliser=3)
        self.assertIsInstance(bw["loss"], float)
        norm = self.ok("clip_grad_norm", names=["a"], max_norm=0)["norm"]
        self.assertGreater(norm, 0)
        self.ok("step", names=["a"], lr=0.01)
        self.ok("zero_grad", names=["a"])
        self.assertEqual(self.ok("clip_grad_norm", names=["a"], max_norm=1)["norm"], 0)
        trained = self.ok("export_adapter", name="a")
        self.assertEqual(trained["optimizer"]["step"], 1)
        self.ok("create_adapter", name="b", lora=LORA, seed=6, optimizer=ADAMW)
        self.ok("import_adapter", name="b", lora=LORA, weights=trained["weights"], optimizer=trained["optimizer"])
        copy = self.ok("export_adapter", name="b")
        for x, y in zip(trained["weights"], copy["weights"]):
            self.assertTrue(torch.equal(x["data"], y["data"]), x["name"])
        for key, per in trained["optimizer"]["moments"].items():
            for name, t in per.items():
                self.assertTrue(torch.equal(t, copy["optimizer"]["moments"][key][name]))
        sa = self.ok("score", rows=[{**train_rows[0], "adapter": "a"}])["rows"][0]["logprobs"]
        sb = self.ok("score", rows=[{**train_rows[0], "adapter": "b"}])["rows"][0]["logprobs"]
        self.assertTrue(torch.equal(sa[1:], sb[1:]))

        # user errors: a reply with a one-line message and a traceback file; the worker goes on
        err = self.call("score", rows=[{"tokens": i32([1, 2]), "adapter": "nope"}])
        self.assertFalse(err["ok"])
        self.assertEqual((err["error"]["kind"], err["error"]["code"]), ("user", "E_UNKNOWN_ADAPTER"))
        self.assertNotIn("\n", err["error"]["message"])
        self.assertTrue(os.path.exists(err["error"]["traceback"]))
        with open(err["error"]["traceback"]) as f:
            self.assertIn("Traceback", f.read())
        os.unlink(err["error"]["traceback"])
        for op, fields, code in [("sample", {"rows": [{"prompt": i32([]), "adapter": None, "max_tokens": 2}]}, "E_EMPTY_PROMPT"),
                                 ("score", {"rows": [{"tokens": i32([1, 99]), "adapter": None}]}, "E_TOKEN_RANGE"),
                                 ("frobnicate", {}, "E_UNKNOWN_OP"),
                                 ("open", {"model": "/nonexistent"}, "E_ALREADY_OPEN")]:
            e = self.call(op, **fields)
            self.assertFalse(e["ok"])
            self.assertEqual(e["error"]["code"], code, e["error"])
            os.unlink(e["error"]["traceback"])

        out = self.ok("sample", rows=[{"prompt": i32([1, 4]), "adapter": "a", "max_tokens": 5, "temperature": 1.0, "top_k": 0,
                                       "top_p": 1.0, "stop_tokens": i32([2]), "seed": 4294967295}])["rows"][0]
        self.assertEqual(out["ids"].dtype, torch.int32)
        self.assertEqual(out["logprobs"].dtype, torch.float64)
        self.assertIn(out["finish"], ("eos", "length"))
        hid = self.ok("last_hidden", rows=[{"tokens": i32([1, 2, 3]), "adapter": "b"}])["hidden"]
        self.assertEqual((hid.dtype, tuple(hid.shape)), (torch.float32, (1, 32)))

        self.ok("shutdown")
        self.assertEqual(self.p.wait(timeout=20), 0)

    def test_frames_it_cannot_decode(self):
        """A frame read whole but not decodable is answered (id null) and the worker goes on; one it cannot read ends it."""
        read_frame(self.p.stdout)
        bad = [b'{"id": 1, "op": "score", "x": {"$t": 0}, "tensors": [{"dtype": "f32", "shape": [Infinity], "offset": 0, "nbytes": 4}]}',
               b"[" * 100000 + b"]" * 100000,  # deeper than the decoder recurses
               b'{"id": 2, "op": "score", "w": NaN}']
        for header in bad:
            self.p.stdin.write(struct.pack("<IQ", len(header), 0) + header)
            self.p.stdin.flush()
            r = read_frame(self.p.stdout)
            self.assertEqual((r["id"], r["ok"], r["error"]["kind"], r["error"]["code"]), (None, False, "user", "E_BAD_FRAME"), r)
            os.unlink(r["error"]["traceback"])
        e = self.call("score", rows=[])  # still in step
        self.assertEqual(e["error"]["code"], "E_NOT_OPEN")
        os.unlink(e["error"]["traceback"])
        self.p.stdin.write(struct.pack("<IQ", 2, 1 << 62) + b"{}")  # a payload length no frame has
        self.p.stdin.flush()
        self.assertEqual(self.p.wait(timeout=20), 1)
        self.log.seek(0)
        self.assertIn("implausible: the stream is out of step", self.log.read().decode().strip().splitlines()[-1])

    def test_exits_on_eof_and_errors_before_open(self):
        read_frame(self.p.stdout)
        e = self.call("score", rows=[])
        self.assertEqual(e["error"]["code"], "E_NOT_OPEN")
        os.unlink(e["error"]["traceback"])
        e = self.call("open", model="/nonexistent/folder", device="cpu", dtype="float32", max_tokens_per_pass=16)
        self.assertEqual(e["error"]["code"], "E_NOT_FOUND")
        os.unlink(e["error"]["traceback"])
        self.p.stdin.close()
        self.assertEqual(self.p.wait(timeout=20), 0)
        self.assertEqual(self.p.stdout.read(), b"")  # nothing but frames on stdout


if __name__ == "__main__":
    unittest.main()
