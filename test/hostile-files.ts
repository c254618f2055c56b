/**
 * Tools to damage files on purpose, for test/hostile-inputs.test.ts: safetensors files taken apart and written back
 * with a lying header or bad data, named pipes, device links and sparse files that claim terabytes.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";

export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

/** The tensors of a well-formed safetensors file, in file order (metadata dropped). */
export function readRaw(file: string): [string, RawTensor][] {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: number[] }
  >;
  const data = buf.subarray(8 + n);
  return Object.entries(header)
    .filter(([name]) => name !== "__metadata__")
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])
    .map(([name, e]) => [
      name,
      { dtype: e.dtype, shape: e.shape, bytes: Buffer.from(data.subarray(e.data_offsets[0], e.data_offsets[1])) },
    ]);
}

/**
 * Writes tensors laid end to end; `edit` may then change the header (to make it lie), `headerLength` overrides the
 * 8-byte length and `truncate` cuts bytes off the end.
 */
export function writeRaw(
  file: string,
  tensors: [string, RawTensor][],
  o: { edit?: (h: Record<string, unknown>) => void; headerText?: string; headerLength?: bigint; truncate?: number } = {},
): void {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  o.edit?.(header);
  let json = o.headerText ?? JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(o.headerLength ?? BigInt(Buffer.byteLength(json)));
  const all = Buffer.concat([len, Buffer.from(json), ...tensors.map(([, t]) => t.bytes)]);
  fs.writeFileSync(file, o.truncate ? all.subarray(0, all.length - o.truncate) : all);
}

/** Rewrites one tensor of a safetensors file in place of the original. */
export function replaceTensor(file: string, name: string, t: (old: RawTensor) => RawTensor): void {
  writeRaw(
    file,
    readRaw(file).map(([n, old]) => [n, n === name ? t(old) : old]),
  );
}

/** float32 bytes of `values`. */
export function f32Bytes(values: ArrayLike<number>): Buffer {
  return Buffer.from(Float32Array.from(values).buffer);
}

/** A copy of a float32 tensor's bytes with element `i` set to `v` (NaN, ±Infinity, ...). */
export function withValue(t: RawTensor, i: number, v: number): RawTensor {
  const bytes = Buffer.from(t.bytes);
  bytes.writeFloatLE(v, 4 * i);
  return { ...t, bytes };
}

/** A tensor converted to F16 / BF16 / F64 (values as float32 read them), element `i` then set to raw bits or a value. */
export function convert(t: RawTensor, dtype: "F16" | "BF16" | "F64", set?: { i: number; bits?: number; value?: number }): RawTensor {
  const src = new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.length));
  if (dtype === "F64") {
    const out = Float64Array.from(src);
    if (set?.value !== undefined) out[set.i] = set.value;
    return { dtype, shape: t.shape, bytes: Buffer.from(out.buffer) };
  }
  const out = new Uint16Array(src.length);
  const u32 = new Uint32Array(src.buffer);
  for (let i = 0; i < src.length; i++) out[i] = dtype === "BF16" ? u32[i] >>> 16 : toHalf(src[i]);
  if (set?.bits !== undefined) out[set.i] = set.bits;
  return { dtype, shape: t.shape, bytes: Buffer.from(out.buffer) };
}

/** float → IEEE half (round toward zero; fine for test weights of moderate size). */
function toHalf(x: number): number {
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.floor((a / 2 ** e - 1) * 1024);
}

/** A named pipe at `file` (false when mkfifo is not available). */
export function mkfifo(file: string): boolean {
  return spawnSync("mkfifo", [file]).status === 0;
}

/** A file of `size` bytes that takes no disk space (a hole), starting with `head`. */
export function sparseFile(file: string, size: number, head: Buffer = Buffer.alloc(0)): void {
  fs.writeFileSync(file, head);
  fs.truncateSync(file, size);
}
