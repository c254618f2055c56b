/**
 * The torch backend as a torch.distributed group (gloo on the CPU): `--nproc 2` gives the adapter `--nproc 1`
 * gives, a smoke training run on two ranks writes its whole folder, and a worker group reached with `--worker`
 * refuses a wrong token and is used with the right one.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { test } from "node:test";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import { NO_TORCH, PYTHON, ROOT, assertClose, freePort, maxAbs, runCli, shared, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const TORCH = ["--backend", "torch", "--device", "cpu", "--python", PYTHON];
const HF = shared("fixtures/hf-llama/tiny-llama-gqa");
const dir = tmpDir("colloquy-torch-dist-");

test("finetune --backend torch --nproc 2: the adapter of --nproc 1 within 1e-5 (SGD, clipping, 3 steps)", {
  skip: NO_TORCH || HF.skip,
}, () => {
  const rows = JSON.parse(fs.readFileSync(path.join(HF.path, "reference.json"), "utf8")).input_ids as number[][];
  const idsFile = path.join(dir, "ids.json");
  fs.writeFileSync(idsFile, JSON.stringify([...rows, ...rows.map((r) => r.slice(0, Math.ceil(r.length / 2)))]));
  const outs = [1, 2].map((nproc) => {
    const out = path.join(dir, `finetune-nproc${nproc}`);
    const r = runCli([
      "finetune",
      "--model",
      HF.path,
      "--ids-file",
      idsFile,
      "--batch-size",
      String(rows.length * 2),
      "--steps",
      "3",
      "--optimizer",
      "sgd",
      "--lr",
      "0.5",
      "--max-grad-norm",
      "0.5",
      "--out",
      out,
      "--json",
      "--nproc",
      String(nproc),
      ...TORCH,
    ]);
    assert.equal(r.status, 0, r.stderr);
    return SafetensorsFile.open(path.join(out, "adapter_model.safetensors"));
  });
  let worst = 0;
  for (const name of outs[0]!.tensors.keys()) {
    const one = outs[0]!.readF32(name);
    worst = Math.max(worst, assertClose(name, outs[1]!.readF32(name), one, 1e-5 * Math.max(1, maxAbs(one))));
  }
  console.log(`# --nproc 2 vs 1: largest adapter difference ${worst.toExponential(2)}`);
});

test("train --preset smoke --backend torch --nproc 2: a full run folder, the metrics of --nproc 1", { skip: NO_TORCH }, () => {
  const model = saveTinyModel(path.join(dir, "tiny"));
  const [one, two] = [1, 2].map((nproc) => {
    const run = path.join(dir, `run-nproc${nproc}`);
    const r = runCli(["train", "--preset", "smoke", `--model=${model}`, "--out", run, "--quiet", "--nproc", String(nproc), ...TORCH]);
    assert.equal(r.status, 0, r.stderr);
    return run;
  });
  for (const f of [
    "config.json",
    "metrics.jsonl",
    "transcripts.jsonl",
    "summary.json",
    "checkpoint/state.json",
    "adapters/agent0/adapter_model.safetensors",
  ]) {
    assert.ok(fs.existsSync(path.join(two!, f)), f);
  }
  assert.equal(JSON.parse(fs.readFileSync(path.join(two!, "config.json"), "utf8")).config.nproc, 2);
  const rewards = (run: string) =>
    fs
      .readFileSync(path.join(run, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .slice(1) // iteration 0: the evaluation before training
      .map((l) => JSON.parse(l).reward as number);
  assert.ok(rewards(two!).length >= 2);
  assertClose("rewards, --nproc 2 vs 1", rewards(two!), rewards(one!), 1e-6);
});

async function listening(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`the worker exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.on("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the worker did not listen within 60 s");
}

test("--worker HOST:PORT: a wrong token is refused with one line, the right one scores as a local worker does", {
  skip: NO_TORCH || HF.skip,
}, async () => {
  const tokenFile = path.join(dir, "token");
  const wrongFile = path.join(dir, "wrong-token");
  fs.writeFileSync(tokenFile, "t0ken-4c1d\n");
  fs.writeFileSync(wrongFile, "not-the-token\n");
  const port = await freePort();
  const worker = spawn(PYTHON, ["-m", "colloquy_worker", "--listen", `127.0.0.1:${port}`, "--token-file", tokenFile], {
    env: { ...process.env, PYTHONPATH: path.join(ROOT, "worker") },
    stdio: ["ignore", "ignore", "ignore"],
  });
  try {
    await listening(port, worker);
    const score = (...extra: string[]) =>
      runCli(["score", "--model", HF.path, "--ids", "1,5,9,20,33,7", "--json", "--backend", "torch", "--device", "cpu", ...extra]);
    const wrong = score("--worker", `127.0.0.1:${port}`, "--token-file", wrongFile);
    assert.equal(wrong.status, 2, wrong.stderr);
    assert.match(wrong.stderr.trim(), /^error\[E_WORKER_CONNECT\]: the torch worker refused the connection: wrong or missing worker token/);
    assert.equal(wrong.stderr.trim().split("\n").length, 1, wrong.stderr);
    const missing = score("--worker", `127.0.0.1:${port}`);
    assert.equal(missing.status, 2, missing.stderr);
    const right = score("--worker", `127.0.0.1:${port}`, "--token-file", tokenFile);
    assert.equal(right.status, 0, right.stderr);
    const local = score("--python", PYTHON);
    assert.equal(local.status, 0, local.stderr);
    const lp = (s: string) => (JSON.parse(s) as { logprobs: (number | null)[] }).logprobs.slice(1) as number[];
    assertClose("remote vs local", lp(right.stdout), lp(local.stdout), 1e-6);
    // the group serves the next client too (it forgot the last one's model)
    assert.equal(score("--worker", `127.0.0.1:${port}`, "--token-file", tokenFile).status, 0);
  } finally {
    worker.kill("SIGKILL");
  }
});

test("off loopback a token is required: the worker refuses to start, colloquy refuses to connect", { skip: NO_TORCH || HF.skip }, () => {
  const env = { ...process.env, PYTHONPATH: path.join(ROOT, "worker"), COLLOQUY_WORKER_TOKEN: "" };
  const w = spawnSync(PYTHON, ["-m", "colloquy_worker", "--listen", "0.0.0.0:29999"], { env, encoding: "utf8", timeout: 60_000 });
  assert.equal(w.status, 2);
  assert.match(w.stderr.trim(), /^colloquy-worker: --listen 0\.0\.0\.0:29999 is not a loopback address: give --token-file F/);
  const c = runCli(["score", "--model", HF.path, "--ids", "1,5", "--backend", "torch", "--worker", "10.1.2.3:29600"], { env });
  assert.equal(c.status, 2);
  assert.match(c.stderr.trim(), /^error\[E_WORKER_CONNECT\]: --worker 10\.1\.2\.3:29600 is not a loopback address, and no token was given/);
});
