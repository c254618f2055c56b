import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { encodeLlama2c, randomWeights, smallLlama2cConfig } from "../../test/llama2c-files.ts";
import { tmpDir } from "../../test/support.ts";
import { UserError } from "../util/errors.ts";
import { loadLlama2c } from "./llama2c.ts";

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test("llama2.c: versions 0 and 1, shared and separate classifier, read tensor by tensor into the same weights", () => {
  const dir = tmpDir();
  for (const tied of [true, false]) {
    const c = smallLlama2cConfig({ tiedEmbeddings: tied });
    const w = randomWeights(c, 11);
    for (const version of [0, 1] as const) {
      const file = path.join(dir, `m${version}${tied}.bin`);
      fs.writeFileSync(file, encodeLlama2c(c, w, version));
      const m = loadLlama2c(file);
      assert.equal(m.version, version);
      assert.equal(m.config.tiedEmbeddings, tied);
      assert.ok(bytes(m.weights.data).equals(bytes(w.data)), `version ${version}, tied ${tied}`);
    }
  }
});

test("llama2.c: impossible headers, wrong sizes, NaN weights and non-regular files are one-line errors", () => {
  const dir = tmpDir();
  const c = smallLlama2cConfig();
  const good = encodeLlama2c(c, randomWeights(c, 2), 0);
  const file = path.join(dir, "m.bin");
  const fails = (bytes: Buffer, why: RegExp, code = "E_BAD_CHECKPOINT") => {
    fs.writeFileSync(file, bytes);
    assert.throws(
      () => loadLlama2c(file),
      (e: unknown) => e instanceof UserError && e.code === code && why.test(e.message) && e.message.includes(file),
      why.source,
    );
  };
  const edit = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  fails(Buffer.alloc(0), /0 bytes, shorter than the 28-byte header/);
  fails(
    edit((b) => b.writeInt32LE(3, 12)),
    /do not divide/,
  );
  fails(
    edit((b) => (b.writeInt32LE(16, 12), b.writeInt32LE(16, 16))),
    /head size 1 .* must be even/,
  );
  fails(
    edit((b) => b.writeInt32LE(1 << 24, 8)),
    /nLayers = 16777216 is not a plausible size/,
  );
  fails(Buffer.concat([good, Buffer.alloc(4)]), /implies \d+ bytes, file has \d+/);
  fails(
    edit((b) => b.writeFloatLE(Number.NaN, 28 + 4 * 7)),
    /tensor token_embedding_table holds NaN at element 7/,
    "E_NON_FINITE",
  );
  const v1 = encodeLlama2c(c, randomWeights(c, 2), 1);
  const inf = Buffer.from(v1);
  inf.writeFloatLE(Number.NEGATIVE_INFINITY, inf.length - 4);
  fails(inf, /tensor w3 \(layer 1\) holds -Infinity/, "E_NON_FINITE");
  fails(Buffer.concat([v1.subarray(0, 8), Buffer.alloc(30)]), /shorter than the 256-byte version 1 header/);
  fails(Buffer.from(v1).fill(0, 4, 8), /format version 0 is not supported/);
  assert.throws(() => loadLlama2c("/dev/zero"), /\/dev\/zero is a device, not a regular file/);
  assert.throws(() => loadLlama2c(dir), /is a folder, not a regular file/);
});
