/**
 * The engine's CLI verbs end to end (inspect, generate, score): real checkpoints from ../shared, JSON contracts,
 * and bad input that must end in a one-line error with exit status 2.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import { TORCH_FIXTURES, assertUserError, runCli, shared, tmpDir, tokenLogprobs } from "./support.ts";

const STORIES = shared("data/models/stories260K");
const HF = shared("fixtures/hf-llama/tiny-llama-gqa");

test("generate --json from an empty prompt starts at BOS and reproduces llama2.c", { skip: STORIES.skip }, () => {
  const want = JSON.parse(fs.readFileSync(path.join(STORIES.path, "expected_greedy_200.json"), "utf8"));
  const r = runCli([
    "generate",
    "--model",
    path.join(STORIES.path, "stories260K.bin"),
    "--tokenizer",
    path.join(STORIES.path, "tok512.bin"),
    "--max-tokens",
    "50",
    "--temperature",
    "0",
    "--json",
  ]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.ids, want.greedy_ids.slice(0, 50));
  assert.ok(out.text.startsWith("Once upon a time, there was a little girl named Lily"), out.text);
  assert.equal(r.stdout.trim().split("\n").length, 1);
});

test("score --json gives transformers' log-probs; generate --adapter gives greedy_lora", { skip: HF.skip }, () => {
  const ref = SafetensorsFile.open(path.join(HF.path, "reference.safetensors"));
  const ids = Array.from(ref.readInt("input_ids").subarray(0, 24));
  const r = runCli(["score", "--model", HF.path, "--ids", ids.join(","), "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.ids, ids);
  assert.equal(out.logprobs[0], null);
  const want = tokenLogprobs(ref.readF32("logits").subarray(0, 24 * 320), ids, 320);
  for (let t = 1; t < 24; t++) assert.ok(Math.abs(out.logprobs[t] - want[t]) < 1e-4, `token ${t}`);

  const lora = Array.from(ref.readInt("greedy_lora"));
  const g = runCli([
    "generate",
    "--model",
    HF.path,
    "--adapter",
    path.join(HF.path, "adapter"),
    "--ids",
    lora.slice(0, 6).join(","),
    "--max-tokens",
    "16",
    "--temperature",
    "0",
    "--ignore-eos",
    "--json",
  ]);
  assert.equal(g.status, 0, g.stderr);
  assert.deepEqual(JSON.parse(g.stdout).ids, lora.slice(6));
});

test("inspect --json reports architecture, parameters, dtype and context", { skip: STORIES.skip }, () => {
  const r = runCli(["inspect", path.join(STORIES.path, "stories260K.bin"), "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.parameters, 260032);
  assert.equal(out.context_length, 512);
  assert.equal(out.tokenizer.vocab_size, 512);
  const t = runCli(["inspect", path.join(TORCH_FIXTURES, "llama3-gqa-bf16"), "--json"]);
  assert.equal(JSON.parse(t.stdout).dtype, "bfloat16");
});

test("bad input: one line naming the file and the problem, exit 2", { skip: HF.skip }, () => {
  const dir = tmpDir();
  const copy = (name: string) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    for (const f of ["config.json", "model.safetensors"]) fs.copyFileSync(path.join(HF.path, f), path.join(d, f));
    return d;
  };
  assertUserError(runCli(["score", "--model", path.join(dir, "missing"), "--ids", "1,2"]), /model not found: .*missing/);

  const truncated = copy("truncated");
  const st = path.join(truncated, "model.safetensors");
  fs.truncateSync(st, fs.statSync(st).size - 100);
  assertUserError(runCli(["score", "--model", truncated, "--ids", "1,2"]), new RegExp(`${st}.*ends at byte`));

  const lying = copy("lying");
  const bytes = fs.readFileSync(path.join(lying, "model.safetensors"));
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = bytes
    .subarray(8, 8 + headerLen)
    .toString("utf8")
    .replace('"shape":[320,64]', '"shape":[320,65]');
  fs.writeFileSync(
    path.join(lying, "model.safetensors"),
    Buffer.concat([bytes.subarray(0, 8), Buffer.from(header), bytes.subarray(8 + headerLen)]),
  );
  assertUserError(
    runCli(["score", "--model", lying, "--ids", "1,2"]),
    /model\.safetensors: tensor .* header says 81920 bytes but shape \[320, 65\]/,
  );

  const wrongShape = copy("wrong-shape");
  const cfg = JSON.parse(fs.readFileSync(path.join(wrongShape, "config.json"), "utf8"));
  fs.writeFileSync(path.join(wrongShape, "config.json"), JSON.stringify({ ...cfg, intermediate_size: 170 }));
  assertUserError(
    runCli(["score", "--model", wrongShape, "--ids", "1,2"]),
    /mlp\.gate_proj\.weight has shape \[176, 64\] but config\.json implies \[170, 64\]/,
  );

  assertUserError(
    runCli(["score", "--model", HF.path, "--adapter", path.join(TORCH_FIXTURES, "llama3-gqa-bf16/adapter"), "--ids", "1,2"]),
    /adapter_model\.safetensors: tensor .* has shape .* but this model needs/,
  );
  assertUserError(runCli(["score", "--model", HF.path, "--ids", "1,320"]), /token id 320 .* outside the vocabulary 0\.\.319/);
  assertUserError(
    runCli(["generate", "--model", HF.path, "--ids", "1,2", "--max-tokens", "3", "--top-p", "2"]),
    /--top-p=2: too big: expected number to be <=1/,
  );
  assertUserError(runCli(["generate", "--model", HF.path, "--prompt", "hi", "--max-tokens", "3"]), /no tokenizer/);
  assertUserError(runCli(["frobnicate"]), /unknown command "frobnicate"/);
  // the torch backend's keys on the CPU engine are refused, not ignored
  for (const [flag, value] of [
    ["--device", "cuda"],
    ["--dtype", "bfloat16"],
    ["--python", "/usr/bin/python3"],
    ["--nproc", "2"],
  ]) {
    assertUserError(
      runCli(["generate", "--model", HF.path, "--ids", "1,2", "--max-tokens", "3", flag, value]),
      new RegExp(`^error\\[E_BAD_FLAG\\]: ${flag} ${value} is for the torch backend; .* \\(hint: add --backend torch\\)$`),
    );
  }
  assertUserError(runCli(["bench", "--quick", "--no-torch", "--dtype", "bfloat16"]), /--dtype bfloat16 is for the torch backend/);
});
