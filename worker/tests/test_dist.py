"""Data parallel (dist.py): `python -m colloquy_worker --nproc 2` (two ranks, gloo) gives what one process gives,
and a listening worker refuses what it must (a wrong token; a non-loopback address without one)."""
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import torch

from helpers import ADAMW, WORKER, assert_close, f64, i32, report, synthetic_model
from colloquy_worker.protocol import PREFIX, encode, read_frame, write_frame

LORA = {"rank": 2, "alpha": 4, "rslora": False, "targets": ["q", "v", "down"]}
V = 61


def env():
    return {**os.environ, "PYTHONPATH": str(WORKER), "PYTHONUNBUFFERED": "1"}


class Client:
    """The protocol over a byte stream pair: one request, one reply."""

    def __init__(self, fin, fout):
        self.fin, self.fout, self.id = fin, fout, 0

    def call(self, op, **fields):
        self.id += 1
        write_frame(self.fout, {"id": self.id, "op": op, **fields})
        r = read_frame(self.fin)
        if not r["ok"]:
            raise RuntimeError(f"{op}: {r['error']['code']}: {r['error']['message']}")
        return r


def spawn(nproc):
    p = subprocess.Popen([sys.executable, "-m", "colloquy_worker", "--nproc", str(nproc)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env())
    c = Client(p.stdout, p.stdin)
    hello = read_frame(p.stdout)
    assert hello["world_size"] == nproc, hello
    return p, c


def rows(n=7):
    g = torch.Generator().manual_seed(5)
    out = []
    for i in range(n):
        T = 4 + (i * 5) % 11
        out.append({"tokens": i32(torch.randint(3, V, (T,), generator=g).tolist()), "adapter": ["a", "b", None][i % 3], "from": 1 + i % 2})
    return out


def session(c, folder):
    """One training step on a few rows of two adapters; everything a run needs back."""
    c.call("open", model=str(folder), device="cpu", dtype="float32", max_tokens_per_pass=64)
    for k, name in enumerate(("a", "b")):
        c.call("create_adapter", name=name, lora=LORA, seed=k + 1, optimizer=ADAMW)
    rs = rows()
    scored = c.call("score", rows=rs)["rows"]
    trs = [{**r, "weights": f64([0.0] * r["from"] + [((t + i) % 3 - 1) * 0.5 for t in range(r["from"], r["tokens"].numel())])}
           for i, r in enumerate(rs)]
    loss = c.call("backward", rows=trs, normaliser=9)["loss"]
    norm = c.call("clip_grad_norm", names=["a", "b"], max_norm=1.0)["norm"]
    c.call("step", names=["a", "b"], lr=0.01)
    sampled = c.call("sample", rows=[{"prompt": r["tokens"][:3], "adapter": r["adapter"], "max_tokens": 6, "temperature": 1.0,
                                      "seed": 11 + i} for i, r in enumerate(rs)])["rows"]
    hidden = c.call("last_hidden", rows=[{"tokens": r["tokens"], "adapter": r["adapter"]} for r in rs])["hidden"]
    exported = {n: c.call("export_adapter", name=n, optimizer=True) for n in ("a", "b")}
    return {"scored": scored, "loss": loss, "norm": norm, "sampled": sampled, "hidden": hidden, "exported": exported}


def stop(p, c):
    c.call("shutdown")
    code = p.wait(timeout=60)
    p.stdin.close()
    p.stdout.close()
    return code


class DataParallel(unittest.TestCase):
    def test_two_ranks_equal_one(self):
        folder = synthetic_model()
        results = []
        for nproc in (1, 2):
            p, c = spawn(nproc)
            try:
                results.append(session(c, folder))
                self.assertEqual(stop(p, c), 0)
            finally:
                p.kill()
        one, two = results
        worst = 0.0
        for i, (a, b) in enumerate(zip(one["scored"], two["scored"])):
            worst = max(worst, assert_close(f"row {i} log-probs", b["logprobs"], a["logprobs"], 1e-5))
        self.assertLess(abs(one["loss"] - two["loss"]), 1e-5)
        self.assertLess(abs(one["norm"] - two["norm"]), 1e-5)
        for i, (a, b) in enumerate(zip(one["sampled"], two["sampled"])):
            self.assertEqual(a["ids"].tolist(), b["ids"].tolist(), f"row {i} sampled ids")
        assert_close("last hidden", two["hidden"], one["hidden"], 1e-5)
        for n in ("a", "b"):
            for x, y in zip(one["exported"][n]["weights"], two["exported"][n]["weights"]):
                worst = max(worst, assert_close(f"adapter {n} {x['name']}", y["data"], x["data"], 1e-5))
        report("--nproc 2 vs 1: max |Δ| over log-probs and stepped adapters", worst)

    def test_a_failing_row_fails_the_call_and_keeps_the_group(self):
        p, c = spawn(2)
        try:
            c.call("open", model=str(synthetic_model()), device="cpu", dtype="float32")
            bad = [{"tokens": i32([1, 2, 3])}, {"tokens": i32([1, V + 5])}]  # row 1 lives on rank 1
            with self.assertRaisesRegex(RuntimeError, "E_TOKEN_RANGE: token id 66 .row 1 tokens"):
                c.call("score", rows=bad)
            self.assertEqual(len(c.call("score", rows=bad[:1])["rows"]), 1)
            self.assertEqual(stop(p, c), 0)
        finally:
            p.kill()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth_frame(token):
    return encode({"op": "auth", **({"token": token} if token is not None else {})})


class Listening(unittest.TestCase):
    def test_token(self):
        with tempfile.TemporaryDirectory() as d:
            tf = os.path.join(d, "token")
            with open(tf, "w") as f:
                f.write("s3cret-token\n")
            port = free_port()
            p = subprocess.Popen([sys.executable, "-m", "colloquy_worker", "--listen", f"127.0.0.1:{port}", "--token-file", tf],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
            try:
                deadline = time.time() + 60
                while True:
                    try:
                        s = socket.create_connection(("127.0.0.1", port), timeout=5)
                        break
                    except OSError:
                        if time.time() > deadline:
                            raise
                        time.sleep(0.1)
                # wrong token, followed by a big payload the worker must not read
                with s:
                    s.sendall(auth_frame("wrong") + PREFIX.pack(10, 1 << 20))
                    r = read_frame(s.makefile("rb"))
                    self.assertEqual((r["ok"], r["error"]["code"]), (False, "E_AUTH"))
                    self.assertEqual(s.recv(1), b"")  # closed
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # no token at all
                    s.sendall(auth_frame(None))
                    self.assertEqual(read_frame(s.makefile("rb"))["error"]["code"], "E_AUTH")
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:  # the right one
                    s.sendall(auth_frame("s3cret-token"))
                    fin, fout = s.makefile("rb"), s.makefile("wb")
                    self.assertEqual(read_frame(fin)["op"], "hello")
                    c = Client(fin, fout)
                    c.call("open", model=str(synthetic_model()), device="cpu", dtype="float32")
                    self.assertEqual(len(c.call("score", rows=[{"tokens": i32([1, 2, 3])}])["rows"]), 1)
                    c.call("shutdown")
                    self.assertEqual(s.recv(1), b"")  # the worker closes the connection after a shutdown (then serves the next)
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:  # an unreadable frame: the end, too
                    s.sendall(auth_frame("s3cret-token") + PREFIX.pack(1 << 31, 0))
                    fin = s.makefile("rb")
                    self.assertEqual(read_frame(fin)["op"], "hello")
                    self.assertIsNone(read_frame(fin))
            finally:
                p.kill()
                p.wait()
                p.stderr.close()

    def test_no_token_off_loopback(self):
        e = {k: v for k, v in env().items() if k != "COLLOQUY_WORKER_TOKEN"}
        r = subprocess.run([sys.executable, "-m", "colloquy_worker", "--listen", "0.0.0.0:0"], capture_output=True, text=True,
                           env=e, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is not a loopback address", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
