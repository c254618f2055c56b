/**
 * src/torch/process.ts against a tiny fake worker (a Python script written here; no torch needed): the hello and
 * its protocol check, tensors through Python and back, the request queue, error replies, a worker killed mid-call,
 * no child left behind (after close, and after the Node process exits, crashes or is signalled), no Python.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { Tensor } from "../src/torch/frames.ts";
import { WorkerProcess, type WorkerOptions } from "../src/torch/process.ts";
import { UserError } from "../src/util/errors.ts";
import { PYTHON, ROOT, alive, tmpDir } from "./support.ts";

const DIR = tmpDir("colloquy-torch-process-");
after(() => fs.rmSync(DIR, { recursive: true, force: true }));

const FAKE = path.join(DIR, "fake_worker.py");
fs.writeFileSync(
  FAKE,
  String.raw`
import json, os, struct, sys, tempfile, time
inp, out = sys.stdin.buffer, sys.stdout.buffer

def read_exact(n):
    b = b""
    while len(b) < n:
        c = inp.read(n - len(b))
        if not c:  # stdin closed: the client is gone
            if os.environ.get("FAKE_STUBBORN"):
                time.sleep(60)  # a worker stuck in a long kernel does not notice
            sys.exit(0)
        b += c
    return b

def send(h, payload=b""):
    h.setdefault("tensors", [])
    j = json.dumps(h).encode()
    out.write(struct.pack("<IQ", len(j), len(payload)) + j + payload)
    out.flush()

if os.environ.get("FAKE_PRINT"):
    print("hello from a print()", flush=True)
if os.environ.get("FAKE_NO_TORCH"):
    raise ModuleNotFoundError("No module named 'torch'")
sys.stderr.write("fake worker starting\n")
send({"op": "hello", "protocol": int(os.environ.get("FAKE_PROTOCOL", "1")), "worker": "fake", "torch": "none",
      "python": sys.version.split()[0], "cuda": False, "devices": 0})
while True:
    J, P = struct.unpack("<IQ", read_exact(12))
    h = json.loads(read_exact(J))
    payload = read_exact(P)
    rid, op = h["id"], h["op"]
    if op == "echo":
        tensors = h.pop("tensors")
        send({"id": rid, "ok": True, "echo": {k: v for k, v in h.items() if k not in ("id", "op")}, "tensors": tensors}, payload)
    elif op == "sum":  # reads an f32 tensor, answers its sum and the values reversed as f64
        t = h["tensors"][h["x"]["$t"]]
        n = t["nbytes"] // 4
        xs = struct.unpack("<%df" % n, payload[t["offset"]:t["offset"] + t["nbytes"]])
        rev = struct.pack("<%dd" % n, *reversed(xs))
        send({"id": rid, "ok": True, "sum": sum(xs), "rev": {"$t": 0},
              "tensors": [{"dtype": "f64", "shape": [n], "offset": 0, "nbytes": 8 * n}]}, rev)
    elif op == "nan":
        send({"id": rid, "ok": True, "loss": float("nan"), "norm": float("inf")})
    elif op in ("fail_user", "fail_internal"):
        fd, tb = tempfile.mkstemp(prefix="colloquy-worker-%d-" % os.getpid(), suffix=".txt")
        os.write(fd, b"Traceback (most recent call last):\n  ...\nValueError: no adapter named zz\n")
        os.close(fd)
        kind = "user" if op == "fail_user" else "internal"
        send({"id": rid, "ok": False, "error": {"kind": kind, "code": "E_NO_ADAPTER", "message": "no adapter named zz\n(have: a)", "traceback": tb}})
    elif op == "sleep":
        sys.stderr.write("sleeping in %d\n" % os.getpid())
        sys.stderr.flush()
        time.sleep(60)
    elif op == "die":
        sys.stderr.write("Traceback (most recent call last):\nRuntimeError: boom\n")
        sys.exit(3)
    elif op == "shutdown":
        send({"id": rid, "ok": True})
        sys.exit(0)
    else:
        send({"id": rid, "ok": False, "error": {"kind": "user", "code": "E_BAD_OP", "message": "unknown op " + op, "traceback": None}})
`,
);

const quiet = { onStderr: () => {} };
const fake = (env: Record<string, string> = {}, o: WorkerOptions = {}) =>
  WorkerProcess.start({ python: PYTHON, args: [FAKE], env, ...quiet, ...o });

async function gone(pid: number, ms = 5000): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 20))) if (!alive(pid)) return true;
  return false;
}

/** A rejection with a one-line message (and, for a UserError, a one-line oneLine()). */
async function rejectsOneLine(p: Promise<unknown>, re: RegExp): Promise<Error> {
  let err: Error | null = null;
  await p.then(
    () => assert.fail("expected a rejection"),
    (e: Error) => (err = e),
  );
  const e = err as unknown as Error;
  assert.match(e.message, re);
  assert.doesNotMatch(e.message, /\n/);
  if (e instanceof UserError) assert.doesNotMatch(e.oneLine(), /\n/);
  return e;
}

test("hello, tensors through Python and back, queued calls answered in order", async () => {
  const w = await fake();
  assert.equal(w.info.worker, "fake");
  const x = Float32Array.from([1.5, -2, 4]);
  const [s, e, n] = await Promise.all([
    w.call("sum", { x }),
    w.call("echo", {
      a: Int32Array.from([7, 8]),
      b: new Tensor(Float64Array.from([1, 2, 3, 4, 5, 6]), [2, 3]),
      note: "π",
      list: [1, null],
    }),
    w.call("nan"),
  ]);
  assert.equal(s.sum, 3.5);
  assert.deepEqual((s.rev as Tensor).data, Float64Array.from([4, -2, 1.5]));
  const echo = e.echo as Record<string, unknown>;
  assert.deepEqual((echo.a as Tensor).data, Int32Array.from([7, 8]));
  assert.deepEqual((echo.b as Tensor).shape, [2, 3]);
  assert.equal(echo.note, "π");
  assert.ok(Number.isNaN(n.loss));
  assert.equal(n.norm, Infinity);
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => w.call("echo", { i })));
  assert.deepEqual(
    many.map((r) => (r.echo as { i: number }).i),
    Array.from({ length: 20 }, (_, i) => i),
  );
  const pid = w.pid;
  await w.close();
  assert.ok(w.exited);
  assert.ok(await gone(pid), "the worker is gone after close");
  await assert.rejects(w.call("echo"), /closed/);
});

test("protocol mismatch: one line naming both versions", async () => {
  const e = await rejectsOneLine(fake({ FAKE_PROTOCOL: "2" }), /the torch worker speaks protocol 2, this colloquy speaks protocol 1/);
  assert.equal((e as UserError).code, "E_PROTOCOL");
});

test("a worker `user` error: a UserError with the worker's code and message and the traceback file; the worker goes on", async () => {
  const w = await fake();
  const e = (await rejectsOneLine(w.call("fail_user"), /^no adapter named zz \(have: a\)$/)) as UserError;
  assert.ok(e instanceof UserError);
  assert.equal(e.code, "E_NO_ADAPTER");
  const file = /^full traceback: (.*)$/.exec(e.hint ?? "")?.[1];
  assert.ok(file && fs.readFileSync(file, "utf8").includes("ValueError"), `hint ${e.hint}`);
  fs.rmSync(file!);
  assert.equal((await w.call("sum", { x: Float32Array.from([2]) })).sum, 2);
  await w.close();
});

test("a worker `internal` error: one line naming the traceback's file, then the worker is closed", async () => {
  const w = await fake();
  const pending = w.call("echo", { after: true });
  const first = w.call("fail_internal");
  const e = await rejectsOneLine(first, /internal error in fail_internal \[E_NO_ADAPTER\]: no adapter named zz \(have: a\)$/);
  assert.ok(e instanceof UserError && e.code === "E_WORKER_INTERNAL");
  fs.rmSync(/^full traceback: (.*)$/.exec(e.hint ?? "")![1], { force: true });
  await pending;
  await assert.rejects(w.call("echo"), /closed after an internal error in fail_internal/);
  assert.ok(await gone(w.pid));
});

test("a worker killed with SIGKILL mid-call: the call rejects with one line (signal, last stderr); later calls too", async () => {
  const w = await fake();
  const call = w.call("sleep");
  const queued = w.call("echo");
  await new Promise((r) => setTimeout(r, 200));
  process.kill(w.pid, "SIGKILL");
  const e = await rejectsOneLine(
    call,
    /^the torch worker was killed by SIGKILL during sleep; last stderr: fake worker starting \| sleeping in \d+$/,
  );
  assert.equal((e as UserError).code, "E_WORKER_EXITED");
  await assert.rejects(queued, /killed by SIGKILL/);
  await assert.rejects(w.call("echo"), /killed by SIGKILL/);
  await w.close();
});

test("a worker that exits mid-call: its exit code and the traceback's last lines", async () => {
  const w = await fake();
  await rejectsOneLine(
    w.call("die"),
    /the torch worker exited with code 3 during die; last stderr: .*Traceback \(most recent call last\): \| RuntimeError: boom$/,
  );
});

test("start-up failures: no Python, no torch, no worker package, a stray print on stdout", async () => {
  const e = (await rejectsOneLine(
    WorkerProcess.start({ python: "/nonexistent/python", ...quiet }),
    /^no Python at \/nonexistent\/python$/,
  )) as UserError;
  assert.equal(
    e.oneLine(),
    "error[E_NO_PYTHON]: no Python at /nonexistent/python (hint: apt-get install python3-torch, or pip install torch; or set --python / $COLLOQUY_PYTHON)",
  );
  const notPython = (await rejectsOneLine(
    WorkerProcess.start({ python: "/bin/true", ...quiet }),
    /^the torch worker exited with code 0 during start-up; no stderr$/,
  )) as UserError;
  assert.match(notPython.hint!, /^is \/bin\/true a Python 3\.8\+ with PyTorch\? apt-get install python3-torch/);
  const t = (await rejectsOneLine(fake({ FAKE_NO_TORCH: "1" }), /cannot import torch/)) as UserError;
  assert.equal(t.code, "E_NO_TORCH");
  assert.match(t.hint!, /apt-get install python3-torch/);
  const empty = tmpDir("colloquy-no-worker-");
  try {
    const m = (await rejectsOneLine(
      WorkerProcess.start({ python: PYTHON, workerDir: empty, ...quiet }),
      /cannot import colloquy_worker/,
    )) as UserError;
    assert.equal(m.code, "E_NO_WORKER");
  } finally {
    fs.rmSync(empty, { recursive: true });
  }
  await rejectsOneLine(fake({ FAKE_PRINT: "1" }), /broke the protocol: not a frame.*hello from a print/);
});

/**
 * Runs a Node script that starts a fake worker (one that ignores its stdin closing, so only a kill ends it), prints
 * its pid, then ends as `how` says; returns the pid.
 */
function workerOfDeadParent(how: string): { pid: number; status: number | null; signal: string | null } {
  const script = path.join(DIR, `parent-${Math.random().toString(36).slice(2)}.mts`);
  fs.writeFileSync(
    script,
    `
import { WorkerProcess } from ${JSON.stringify(path.join(ROOT, "src/torch/process.ts"))};
const w = await WorkerProcess.start({ python: ${JSON.stringify(PYTHON)}, args: [${JSON.stringify(FAKE)}], env: { FAKE_STUBBORN: "1" }, onStderr: () => {} });
console.log(w.pid);
${how}
`,
  );
  const r = spawnSync(process.execPath, ["--import", "tsx", script], { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
  const pid = Number(r.stdout.trim().split("\n")[0]);
  assert.ok(pid > 0, `no pid from the parent: ${r.stdout} ${r.stderr}`);
  return { pid, status: r.status, signal: r.signal };
}

test("the worker dies with its Node process: a natural end (idle worker), process.exit, a crash, SIGTERM, SIGINT", async () => {
  const cases: [string, string, (r: { status: number | null; signal: string | null }) => boolean][] = [
    ["natural end", "", (r) => r.status === 0],
    ["process.exit", "process.exit(4);", (r) => r.status === 4],
    ["crash", "setTimeout(() => { throw new Error('a bug'); }, 10);", (r) => r.status === 1],
    ["SIGTERM", "process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 5000);", (r) => r.signal === "SIGTERM"],
    [
      "SIGINT mid-call",
      "w.call('sleep').catch(() => {}); setTimeout(() => process.kill(process.pid, 'SIGINT'), 100);",
      (r) => r.signal === "SIGINT",
    ],
  ];
  for (const [name, how, ended] of cases) {
    const r = workerOfDeadParent(how);
    assert.ok(ended(r), `${name}: the parent ended with status ${r.status}, signal ${r.signal}`);
    assert.ok(await gone(r.pid), `${name}: worker ${r.pid} is still running`);
  }
});
