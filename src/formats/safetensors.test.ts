import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { tmpDir } from "../../test/support.ts";
import { UserError } from "../util/errors.ts";
import { SafetensorsFile, bf16ToF32, encodeSafetensors, f16ToF32, writeSafetensors } from "./safetensors.ts";

function writeRaw(file: string, header: object, data: Uint8Array): void {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
}

test("safetensors: write then read gives the same tensors, dtypes and metadata", () => {
  const file = path.join(tmpDir(), "t.safetensors");
  const a = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 3);
  const b = Int32Array.from([7, -1, 3]);
  writeSafetensors(file, { a: { dtype: "F32", shape: [3, 4], data: a }, b: { dtype: "I32", shape: [3], data: b } }, { format: "pt" });
  const f = SafetensorsFile.open(file);
  assert.deepEqual(f.info("a").shape, [3, 4]);
  assert.deepEqual(Array.from(f.readF32("a")), Array.from(a));
  assert.deepEqual(Array.from(f.readInt("b")), [7, -1, 3]);
  assert.equal(f.metadata.format, "pt");
  f.close();
});

test("safetensors: F16 and BF16 convert exactly to float32", () => {
  // 1.0, -2.0, 0.5, smallest subnormal, 65504, -0
  const f16 = Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x0001, 0x7bff, 0x8000]);
  const out = new Float32Array(6);
  f16ToF32(out, f16);
  assert.deepEqual(Array.from(out), [1, -2, 0.5, 2 ** -24, 65504, -0]);
  const bf = Uint16Array.from([0x3f80, 0xc040, 0x3e80]); // 1, -3, 0.25
  bf16ToF32(out.subarray(0, 3), bf);
  assert.deepEqual(Array.from(out.subarray(0, 3)), [1, -3, 0.25]);
  const file = path.join(tmpDir(), "h.safetensors");
  writeRaw(file, { x: { dtype: "BF16", shape: [3], data_offsets: [0, 6] } }, new Uint8Array(bf.buffer));
  assert.deepEqual(Array.from(SafetensorsFile.open(file).readF32("x")), [1, -3, 0.25]);
});

test("safetensors: a truncated file is a user error naming the file", () => {
  const dir = tmpDir();
  const file = path.join(dir, "full.safetensors");
  const bytes = encodeSafetensors({ w: { dtype: "F32", shape: [64], data: new Float32Array(64) } });
  const cut = path.join(dir, "cut.safetensors");
  fs.writeFileSync(file, bytes);
  fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
  assert.throws(
    () => SafetensorsFile.open(cut),
    (e: unknown) => e instanceof UserError && e.message.includes(cut) && /ends at byte/.test(e.message),
  );
  fs.writeFileSync(cut, bytes.subarray(0, 5));
  assert.throws(
    () => SafetensorsFile.open(cut),
    (e: unknown) => e instanceof UserError && e.message.includes("shorter than"),
  );
  fs.writeFileSync(cut, bytes.subarray(0, 20));
  assert.throws(
    () => SafetensorsFile.open(cut),
    (e: unknown) => e instanceof UserError && /header length/.test(e.message),
  );
});

test("safetensors: a header that lies about sizes is rejected", () => {
  const file = path.join(tmpDir(), "lie.safetensors");
  writeRaw(file, { w: { dtype: "F32", shape: [4, 4], data_offsets: [0, 32] } }, new Uint8Array(64));
  assert.throws(
    () => SafetensorsFile.open(file),
    (e: unknown) => e instanceof UserError && /needs 64/.test(e.message) && e.message.includes(file),
  );
  writeRaw(file, { w: { dtype: "Q4", shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4));
  assert.throws(() => SafetensorsFile.open(file), /unsupported dtype Q4/);
  fs.writeFileSync(file, Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{{{{")]));
  assert.throws(() => SafetensorsFile.open(file), /not valid JSON/);
});

test("safetensors: malformed header entries, overlapping tensors and non-regular files are one-line errors", () => {
  const dir = tmpDir();
  const file = path.join(dir, "bad.safetensors");
  const open = (header: object, data: Uint8Array, why: RegExp) => {
    writeRaw(file, header, data);
    assert.throws(
      () => SafetensorsFile.open(file),
      (e: unknown) => e instanceof UserError && why.test(e.message) && e.message.includes(file),
      why.source,
    );
  };
  const w = { dtype: "F32", shape: [2], data_offsets: [0, 8] };
  open({ w: null }, new Uint8Array(8), /tensor w has no \{dtype, shape, data_offsets\} entry/);
  open({ w: "F32" }, new Uint8Array(8), /tensor w has no/);
  open({ w: { ...w, dtype: "toString" } }, new Uint8Array(8), /unsupported dtype toString/);
  open({ w: { ...w, shape: [2 ** 60, 2 ** 60] } }, new Uint8Array(8), /bad shape/);
  open(
    { w: { ...w, shape: [2 ** 30, 2 ** 30] } },
    new Uint8Array(8),
    /header says 8 bytes but shape \[1073741824, 1073741824\] of F32 needs/,
  );
  open({ w, v: { ...w, data_offsets: [4, 12] } }, new Uint8Array(12), /tensors w \(bytes 0\.\.8\) and v \(bytes 4\.\.12\) overlap/);
  open({ w, __metadata__: { format: 1 } }, new Uint8Array(8), /__metadata__ must be an object of strings/);
  open({ w, __metadata__: null }, new Uint8Array(8), /__metadata__/);
  // zero-sized tensors may share an offset
  writeRaw(
    file,
    { w, e: { dtype: "F32", shape: [0], data_offsets: [8, 8] }, f: { dtype: "F32", shape: [0, 3], data_offsets: [8, 8] } },
    new Uint8Array(8),
  );
  assert.deepEqual(SafetensorsFile.open(file).info("f").shape, [0, 3]);

  fs.mkdirSync(path.join(dir, "folder.safetensors"));
  assert.throws(() => SafetensorsFile.open(path.join(dir, "folder.safetensors")), /E?folder.safetensors is a folder, not a regular file/);
  assert.throws(() => SafetensorsFile.open("/dev/zero"), /\/dev\/zero is a device, not a regular file/);
});

test("safetensors: NaN and infinities in any float dtype are one-line errors naming the file and the tensor", () => {
  const file = path.join(tmpDir(), "nan.safetensors");
  const read = (dtype: string, bytes: Uint8Array, n: number) => {
    writeRaw(file, { "layer.w": { dtype, shape: [n], data_offsets: [0, bytes.length] } }, bytes);
    return SafetensorsFile.open(file).readF32("layer.w");
  };
  const nonFinite = (e: unknown) =>
    e instanceof UserError && e.code === "E_NON_FINITE" && e.message.includes(file) && e.message.includes("layer.w");
  assert.throws(() => read("F32", new Uint8Array(Float32Array.from([1, Number.NaN, 2]).buffer), 3), nonFinite);
  assert.throws(() => read("F32", new Uint8Array(Float32Array.from([1, 2, Number.NEGATIVE_INFINITY]).buffer), 3), nonFinite);
  assert.throws(() => read("F16", new Uint8Array(Uint16Array.from([0x3c00, 0x7c00]).buffer), 2), nonFinite); // +inf
  assert.throws(() => read("F16", new Uint8Array(Uint16Array.from([0x7e00, 0x3c00]).buffer), 2), nonFinite); // NaN
  assert.throws(() => read("BF16", new Uint8Array(Uint16Array.from([0x3f80, 0xffc0]).buffer), 2), nonFinite); // NaN
  assert.throws(() => read("F64", new Uint8Array(Float64Array.from([1e300]).buffer), 1), nonFinite); // beyond float32
  assert.deepEqual(Array.from(read("F16", new Uint8Array(Uint16Array.from([0x7bff, 0xfbff]).buffer), 2)), [65504, -65504]);
});
