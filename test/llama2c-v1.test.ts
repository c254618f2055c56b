/**
 * llama2.c version 1 files (`export.py --version 1`) against an outside reference: the real stories260K checkpoint
 * (version 0, ../shared), rewritten as version 1 at test time, must load to the same weights and give llama2.c's
 * own 200 greedy tokens (expected_greedy_200.json: test_all.py's expected output).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { loadLlama2c } from "../src/formats/llama2c.ts";
import { v0ToV1 } from "./llama2c-files.ts";
import { runCli, shared, tmpDir } from "./support.ts";

const STORIES = shared("data/models/stories260K");

test("a llama2.c version 1 file of stories260K loads to the version 0 weights and gives llama2.c's greedy tokens", {
  skip: STORIES.skip,
}, () => {
  const dir = tmpDir();
  const v1 = path.join(dir, "stories260K-v1.bin");
  fs.writeFileSync(v1, v0ToV1(fs.readFileSync(path.join(STORIES.path, "stories260K.bin"))));
  fs.copyFileSync(path.join(STORIES.path, "tok512.bin"), path.join(dir, "tok512.bin"));
  const a = loadLlama2c(path.join(STORIES.path, "stories260K.bin"));
  const b = loadLlama2c(v1);
  assert.equal(a.version, 0);
  assert.equal(b.version, 1);
  assert.deepEqual(b.config, a.config);
  const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  assert.ok(bytes(b.weights.data).equals(bytes(a.weights.data)), "the same weights, bit for bit");

  const want = JSON.parse(fs.readFileSync(path.join(STORIES.path, "expected_greedy_200.json"), "utf8")).greedy_ids as number[];
  const r = runCli(["generate", "--model", v1, "--max-tokens", String(want.length), "--temperature", "0", "--ignore-eos", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).ids, want);
});
