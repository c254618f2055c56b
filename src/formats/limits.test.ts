import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { tmpDir } from "../../test/support.ts";
import { tinyGqaConfig } from "../../test/tiny.ts";
import { baseParamCount } from "../engine/params.ts";
import { UserError } from "../util/errors.ts";
import { checkLoadMemory, firstNonFinite, loadBytes, memoryBudget, readJsonBounded, regularFileSize } from "./limits.ts";

const config = tinyGqaConfig;

test("limits: a load's memory is the weights' float32 bytes, one conversion buffer and the rope tables built up front", () => {
  for (const c of [config({}), config({ tiedEmbeddings: true, nKvHeads: 4 }), config({ nLayers: 7, hiddenDim: 3 })]) {
    const rope = Math.min(c.maxSeqLen, 4096) * (c.headDim / 2) * 8;
    assert.equal(loadBytes(c), 4 * baseParamCount(c) + rope);
    assert.equal(loadBytes(c, 1000), 4 * baseParamCount(c) + rope + 1000);
  }
  // a context of 1e9 positions costs no more up front than one of 4096
  assert.equal(loadBytes(config({ maxSeqLen: 1e9 })), loadBytes(config({ maxSeqLen: 4096 })));
  checkLoadMemory(config({}), "small.json");
  const huge = config({ nLayers: 2 ** 20, dim: 2 ** 14, nHeads: 128, headDim: 128, nKvHeads: 128, hiddenDim: 2 ** 14 });
  assert.ok(loadBytes(huge) > memoryBudget());
  assert.throws(
    () => checkLoadMemory(huge, "/m/config.json"),
    (e: unknown) =>
      e instanceof UserError &&
      e.code === "E_TOO_LARGE" &&
      /^\/m\/config\.json: loading this model .* needs [\d.]+ GiB of memory; this machine has/.test(e.message),
  );
});

test("limits: the non-finite scan finds NaN and both infinities, and nothing else", () => {
  const a = new Float32Array(1000).map((_, i) => Math.sin(i) * 1e30);
  a[3] = -0;
  a[4] = 3.4028234663852886e38; // float32 max
  a[5] = 1e-45; // subnormal
  assert.equal(firstNonFinite(a), -1);
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    const b = a.slice();
    b[777] = bad;
    assert.equal(firstNonFinite(b), 777);
    assert.equal(firstNonFinite(b.subarray(700)), 77);
  }
});

test("limits: only regular files are read; JSON files have a size bound", () => {
  const dir = tmpDir();
  const f = path.join(dir, "a.json");
  fs.writeFileSync(f, '{"a": 1}');
  assert.equal(regularFileSize(f, "thing"), 8);
  assert.deepEqual(readJsonBounded(f, "thing"), { a: 1 });
  assert.throws(() => readJsonBounded(f, "thing", 4), /E?thing .*a\.json is 8 bytes, more than the 4 a thing may have/);
  assert.throws(
    () => regularFileSize(path.join(dir, "none"), "thing"),
    (e: unknown) => e instanceof UserError && e.code === "E_NOT_FOUND",
  );
  assert.throws(() => regularFileSize(dir, "thing"), /is a folder, not a regular file/);
  assert.throws(() => regularFileSize("/dev/zero", "thing"), /is a device, not a regular file/);
  const pipe = path.join(dir, "pipe");
  if (spawnSync("mkfifo", [pipe]).status === 0) {
    assert.throws(() => readJsonBounded(pipe, "thing"), /is a named pipe, not a regular file/); // would block forever if opened
  }
});
