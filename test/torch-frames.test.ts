/**
 * src/torch/frames.ts: the worker protocol's frames (u32 J, u64 P, JSON header, payload of 8-byte aligned tensors).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FrameError, FrameReader, Tensor, decodeFrame, encodeFrame, parseJson } from "../src/torch/frames.ts";

test("round trip of every dtype, with shapes, nested in lists and objects", () => {
  const header = {
    id: 7,
    op: "score",
    rows: [
      { tokens: Int32Array.from([1, -2, 2147483647]), adapter: null, from: 1 },
      { tokens: new Int32Array(0), adapter: "a", weights: Float64Array.from([0.1, NaN, -Infinity, 1e300]) },
    ],
    f32: new Tensor(Float32Array.from([1.5, -0.25, 3e38, 1e-45, 0, -0, 7, 8]), [2, 4]),
    i64: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n]),
    u8: Uint8Array.from([0, 255, 7]),
    text: 'π ≠ 3 \u0000 "quoted"',
  };
  const back = decodeFrame(encodeFrame(header));
  const rows = back.rows as Record<string, Tensor>[];
  assert.deepEqual(rows[0].tokens.data, header.rows[0].tokens);
  assert.deepEqual(rows[0].tokens.shape, [3]);
  assert.equal(rows[0].tokens.dtype, "i32");
  assert.equal(rows[0].adapter, null);
  assert.deepEqual(rows[1].tokens.data, new Int32Array(0));
  assert.deepEqual(rows[1].weights.data, header.rows[1].weights);
  const f32 = back.f32 as Tensor;
  assert.deepEqual(f32.shape, [2, 4]);
  assert.deepEqual(f32.data, header.f32.data);
  assert.ok(Object.is(f32.data[5], -0));
  assert.deepEqual((back.i64 as Tensor).data, header.i64);
  assert.deepEqual((back.u8 as Tensor).data, header.u8);
  assert.equal(back.text, header.text);
  assert.equal(back.id, 7);
  assert.equal("tensors" in back, false);
});

test("layout: lengths little-endian, every tensor 8-byte aligned, payload padded; decoded arrays are copies", () => {
  const a = Uint8Array.from([1, 2, 3]);
  const b = Float64Array.from([2.5]);
  const c = Float32Array.from([1, 2, 3]);
  const frame = encodeFrame({ a, b, c });
  const J = frame.readUInt32LE(0);
  const P = Number(frame.readBigUInt64LE(4));
  assert.equal(frame.length, 12 + J + P);
  const header = JSON.parse(frame.toString("utf8", 12, 12 + J));
  assert.deepEqual(header.a, { $t: 0 });
  assert.deepEqual(header.tensors, [
    { dtype: "u8", shape: [3], offset: 0, nbytes: 3 },
    { dtype: "f64", shape: [1], offset: 8, nbytes: 8 },
    { dtype: "f32", shape: [3], offset: 16, nbytes: 12 },
  ]);
  assert.equal(P % 8, 0);
  assert.equal(frame.readDoubleLE(12 + J + 8), 2.5);
  const back = decodeFrame(frame);
  assert.equal(((back.b as Tensor).data.buffer as ArrayBuffer).byteLength, 8, "each tensor has its own buffer");
  frame.fill(0); // the decoded arrays do not see later changes to the frame
  assert.equal((back.b as Tensor).data[0], 2.5);

  // a view into a larger (shared) buffer encodes only its own bytes
  const big = new Float32Array(new SharedArrayBuffer(64), 8, 3);
  big.set([4, 5, 6]);
  assert.deepEqual((decodeFrame(encodeFrame({ x: big })).x as Tensor).data, Float32Array.from([4, 5, 6]));
});

test("empty payloads: no tensors means tensors [] and P = 0", () => {
  const frame = encodeFrame({ op: "hello", protocol: 1 });
  assert.equal(Number(frame.readBigUInt64LE(4)), 0);
  assert.deepEqual(JSON.parse(frame.toString("utf8", 12)).tensors, []);
  assert.deepEqual(decodeFrame(frame), { op: "hello", protocol: 1 });
  const empty = decodeFrame(encodeFrame({ x: new Float32Array(0), y: new Tensor(new Float64Array(0), [0, 5]) }));
  assert.deepEqual((empty.y as Tensor).shape, [0, 5]);
  assert.equal((empty.x as Tensor).data.length, 0);
});

test("truncated and malformed frames are clear errors", () => {
  const frame = encodeFrame({ w: Float64Array.from([1, 2, 3]) });
  assert.throws(
    () => decodeFrame(frame.subarray(0, 5)),
    (e: Error) => e instanceof FrameError && /truncated frame: 5 bytes, shorter than the 12-byte length prefix/.test(e.message),
  );
  assert.throws(
    () => decodeFrame(frame.subarray(0, frame.length - 1)),
    /truncated frame: its lengths \(JSON \d+, payload 24\) need \d+ bytes, got \d+/,
  );
  assert.throws(() => decodeFrame(Buffer.concat([frame, Buffer.from([0])])), /1 bytes past its end/);

  const withHeader = (h: object, P = 0) => {
    const j = Buffer.from(JSON.stringify(h));
    const f = Buffer.alloc(12 + j.length + P);
    f.writeUInt32LE(j.length, 0);
    f.writeBigUInt64LE(BigInt(P), 4);
    j.copy(f, 12);
    return f;
  };
  assert.throws(
    () => decodeFrame(withHeader({ x: { $t: 1 }, tensors: [{ dtype: "f32", shape: [1], offset: 0, nbytes: 4 }] }, 8)),
    /\{"\$t": 1\} is not one of the frame's 1 tensors/,
  );
  assert.throws(
    () => decodeFrame(withHeader({ x: { $t: 0 }, tensors: [{ dtype: "f16", shape: [1], offset: 0, nbytes: 2 }] }, 8)),
    /dtype must be one of/,
  );
  assert.throws(
    () => decodeFrame(withHeader({ x: { $t: 0 }, tensors: [{ dtype: "f32", shape: [2], offset: 4, nbytes: 8 }] }, 16)),
    /offset must be a multiple of 8/,
  );
  assert.throws(
    () => decodeFrame(withHeader({ x: { $t: 0 }, tensors: [{ dtype: "f32", shape: [3], offset: 0, nbytes: 8 }] }, 16)),
    /nbytes must be 12/,
  );
  assert.throws(
    () => decodeFrame(withHeader({ x: { $t: 0 }, tensors: [{ dtype: "f64", shape: [3], offset: 0, nbytes: 24 }] }, 16)),
    /reaches byte 24 of a 16-byte payload/,
  );
  const notJson = Buffer.from("\u0003\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000abc", "latin1");
  assert.throws(() => decodeFrame(notJson), /frame header is not JSON/);
});

test("Python's NaN / Infinity in a header (a loss or a norm) parse as numbers; strings stay as they are", () => {
  const v = parseJson('{"loss": NaN, "norm": Infinity, "m": -Infinity, "s": "NaN and Infinity", "e": "x\\"NaN"}') as Record<
    string,
    unknown
  >;
  assert.ok(Number.isNaN(v.loss));
  assert.equal(v.norm, Infinity);
  assert.equal(v.m, -Infinity);
  assert.equal(v.s, "NaN and Infinity");
  assert.equal(v.e, 'x"NaN');
});

test("FrameReader: frames split across chunks and several in one chunk; a stray print is not a frame", () => {
  const frames = [
    encodeFrame({ id: 1, x: Float32Array.from([1, 2]) }),
    encodeFrame({ id: 2 }),
    encodeFrame({ id: 3, y: new Float64Array(1000) }),
  ];
  const all = Buffer.concat(frames);
  for (const cut of [1, 5, 13, 40]) {
    const got: number[] = [];
    const r = new FrameReader((h) => got.push(h.id as number));
    for (let i = 0; i < all.length; i += cut) r.push(all.subarray(i, i + cut));
    assert.deepEqual(got, [1, 2, 3]);
    assert.equal(r.pending, 0);
  }
  const r = new FrameReader(() => {});
  r.push(all.subarray(0, 20));
  assert.equal(r.pending, 20);
  assert.equal(r.expected, frames[0].length);

  const strict = new FrameReader(() => {});
  strict.maxHeader = 1 << 16;
  assert.throws(
    () => strict.push(Buffer.from("hello from a print()\n")),
    /not a frame: a \d+-byte JSON header is over the 65536-byte limit \(the bytes begin "hello from a print/,
  );
});
