/**
 * The verbs on `--backend torch` (a PyTorch worker on the CPU, or on $COLLOQUY_TEST_DEVICE) against the same
 * references as the CPU engine: transformers' log-probs and greedy ids, llama2.c's 200 golden ids, PEFT's gradient
 * for one SGD step; and a smoke training run that writes its folder, resumes after a kill and repeats itself for a
 * seed.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import { NO_TORCH, ROOT, TORCH_DEVICE, assertClose, maxAbs, runCli, shared, tmpDir, tokenLogprobs, torchFlags } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const TORCH = torchFlags();
// the smoke runs' base dtype: float32, or $COLLOQUY_TEST_DTYPE (scripts/device/check.sh repeats them in bfloat16 on CUDA)
const SMOKE = torchFlags(process.env.COLLOQUY_TEST_DTYPE || "float32");
const HF = shared("fixtures/hf-llama/tiny-llama-gqa");
const STORIES = shared("data/models/stories260K");
const dir = tmpDir("colloquy-torch-cli-");

test("score --backend torch: transformers' log-probs within 1e-5, base and LoRA", { skip: NO_TORCH || HF.skip }, () => {
  const ref = SafetensorsFile.open(path.join(HF.path, "reference.safetensors"));
  const ids = Array.from(ref.readInt("input_ids").subarray(0, 24));
  for (const [logits, extra] of [
    ["logits", []],
    ["logits_lora", ["--adapter", path.join(HF.path, "adapter")]],
  ] as const) {
    const r = runCli(["score", "--model", HF.path, "--ids", ids.join(","), "--json", ...TORCH, ...extra]);
    assert.equal(r.status, 0, r.stderr);
    const got = (JSON.parse(r.stdout) as { logprobs: (number | null)[] }).logprobs;
    const want = tokenLogprobs(ref.readF32(logits).subarray(0, 24 * 320), ids, 320);
    assert.equal(got[0], null);
    assertClose(`torch ${logits}`, got.slice(1) as number[], want.slice(1), 1e-5);
  }
});

test("generate --backend torch --temperature 0: transformers' greedy ids and llama2.c's 200 golden ids", {
  skip: NO_TORCH || HF.skip || STORIES.skip,
}, () => {
  const ref = SafetensorsFile.open(path.join(HF.path, "reference.safetensors"));
  for (const [name, extra] of [
    ["greedy_base", []],
    ["greedy_lora", ["--adapter", path.join(HF.path, "adapter")]],
  ] as const) {
    const want = Array.from(ref.readInt(name));
    const g = runCli([
      "generate",
      "--model",
      HF.path,
      "--ids",
      want.slice(0, 6).join(","),
      "--max-tokens",
      "16",
      "--temperature",
      "0",
      "--ignore-eos",
      "--json",
      ...TORCH,
      ...extra,
    ]);
    assert.equal(g.status, 0, g.stderr);
    assert.deepEqual((JSON.parse(g.stdout) as { ids: number[] }).ids, want.slice(6), name);
  }
  const golden = JSON.parse(fs.readFileSync(path.join(STORIES.path, "expected_greedy_200.json"), "utf8")).greedy_ids as number[];
  const s = runCli([
    "generate",
    "--model",
    path.join(STORIES.path, "stories260K.bin"),
    "--tokenizer",
    path.join(STORIES.path, "tok512.bin"),
    "--max-tokens",
    String(golden.length),
    "--temperature",
    "0",
    "--json",
    ...TORCH,
  ]);
  assert.equal(s.status, 0, s.stderr);
  assert.deepEqual((JSON.parse(s.stdout) as { ids: number[] }).ids, golden);
});

test("finetune --backend torch, SGD lr 1, one step: the adapter moves by −(PEFT's gradient)", { skip: NO_TORCH || HF.skip }, () => {
  const rows = JSON.parse(fs.readFileSync(path.join(HF.path, "reference.json"), "utf8")).input_ids as number[][];
  const idsFile = path.join(dir, "ids.json");
  fs.writeFileSync(idsFile, JSON.stringify(rows));
  const adapter = path.join(HF.path, "adapter");
  const out = path.join(dir, "sgd");
  const r = runCli([
    "finetune",
    "--model",
    HF.path,
    "--adapter",
    adapter,
    "--ids-file",
    idsFile,
    "--optimizer",
    "sgd",
    "--lr",
    "1",
    "--steps",
    "1",
    "--max-grad-norm",
    "0",
    "--weight-decay",
    "0",
    "--out",
    out,
    "--json",
    ...TORCH,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const before = SafetensorsFile.open(path.join(adapter, "adapter_model.safetensors"));
  const after = SafetensorsFile.open(path.join(out, "adapter_model.safetensors"));
  const ref = SafetensorsFile.open(path.join(HF.path, "reference.safetensors"));
  for (const name of before.tensors.keys()) {
    const g = ref.readF32(`grad.${name.replace(/\.weight$/, ".default.weight")}`);
    assertClose(
      name,
      after.readF32(name),
      before.readF32(name).map((x, i) => x - g[i]),
      1e-5 * Math.max(1, maxAbs(g)),
    );
  }
});

const model = saveTinyModel(path.join(dir, "tiny"));
const smoke = (out: string) => ["train", "--preset", "smoke", `--model=${model}`, "--out", out, "--quiet", ...SMOKE];
const metrics = (run: string) =>
  fs
    .readFileSync(path.join(run, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => {
      const { time_generate: _g, time_score: _s, time_train: _t, tokens_per_s: _k, ...rest } = JSON.parse(l);
      return rest;
    });

test("train --preset smoke --backend torch: a full run folder, the same metrics for the same seed, a kill resumed without gap", {
  skip: NO_TORCH,
}, async () => {
  const a = path.join(dir, "run-a"),
    b = path.join(dir, "run-b"),
    killed = path.join(dir, "run-killed");
  for (const run of [a, b]) assert.equal(runCli(smoke(run)).status, 0);
  for (const f of [
    "config.json",
    "metrics.jsonl",
    "transcripts.jsonl",
    "summary.json",
    "checkpoint/state.json",
    "adapters/agent0/adapter_model.safetensors",
  ]) {
    assert.ok(fs.existsSync(path.join(a, f)), f);
  }
  const saved = JSON.parse(fs.readFileSync(path.join(a, "config.json"), "utf8")).config;
  assert.equal(saved.backend, "torch");
  assert.equal(saved.device, TORCH_DEVICE);
  const { placement } = JSON.parse(fs.readFileSync(path.join(a, "summary.json"), "utf8"));
  assert.equal(placement.backend, "torch");
  assert.ok(placement.device.startsWith(TORCH_DEVICE), placement.device); // cuda opens as cuda:0
  assert.equal(placement.dtype, process.env.COLLOQUY_TEST_DTYPE || "float32");
  assert.deepEqual(metrics(b), metrics(a));

  // kill -9 once the first iteration's line is written, then resume
  const child = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...smoke(killed), "--iterations=5"], { stdio: "ignore" });
  const file = path.join(killed, "metrics.jsonl");
  while (!(fs.existsSync(file) && fs.readFileSync(file, "utf8").split("\n").length > 2)) await new Promise((r) => setTimeout(r, 100));
  child.kill("SIGKILL");
  await new Promise((r) => child.on("exit", r));
  const r = runCli(["train", "--resume", killed, "--quiet"]);
  assert.equal(r.status, 0, r.stderr);
  const lines = metrics(killed);
  assert.deepEqual(
    lines.map((l) => l.iteration),
    [0, 1, 2, 3, 4, 5],
  );
  const full = path.join(dir, "run-full");
  assert.equal(runCli([...smoke(full), "--iterations=5"]).status, 0);
  assert.deepEqual(lines, metrics(full));
});

/** The process ids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  return fs
    .readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid ? [Number(d)] : [];
      } catch {
        return [];
      }
    });
}

test("train --backend torch: a worker killed mid-run stops the run with one line, and --resume continues it exactly", {
  skip: NO_TORCH,
}, async () => {
  const run = path.join(dir, "run-worker-killed");
  const child = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...smoke(run), "--iterations=5"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const file = path.join(run, "metrics.jsonl");
  while (!(fs.existsSync(file) && fs.readFileSync(file, "utf8").split("\n").length > 2)) await new Promise((r) => setTimeout(r, 100));
  const workers = childrenOf(child.pid!);
  assert.equal(workers.length, 1, `one worker process under colloquy (found ${workers.join(", ")})`);
  process.kill(workers[0], "SIGKILL");
  const code = await new Promise((r) => child.on("exit", r));
  assert.equal(code, 2, stderr);
  assert.match(stderr.trim().split("\n").at(-1)!, /^error\[E_WORKER_EXITED\]: .*SIGKILL/);
  assert.ok(fs.existsSync(path.join(run, "checkpoint", "state.json")), "the last checkpoint is intact");
  const r = runCli(["train", "--resume", run, "--quiet"]);
  assert.equal(r.status, 0, r.stderr);
  const full = path.join(dir, "run-full");
  if (!fs.existsSync(path.join(full, "summary.json"))) assert.equal(runCli([...smoke(full), "--iterations=5"]).status, 0);
  assert.deepEqual(metrics(run), metrics(full));
});
