/**
 * safetensors: 8-byte little-endian header length N, N bytes of JSON header, then raw little-endian data.
 * Header: { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, "__metadata__": {..} }
 * with offsets relative to the start of the data region.
 *
 * The reader keeps the file open and reads each tensor straight into its destination, so a large checkpoint is
 * read once and never held twice in memory. F16, BF16 and F64 are converted to float32 on the way in.
 */
import fs from "node:fs";
import { UserError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { checkFinite, regularFileSize, shown } from "./limits.ts";

export type Dtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

const DTYPE_BYTES: Record<Dtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number; // byte offset in the data region
  end: number;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsFile {
  readonly path: string;
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  private fd: number;
  private dataStart: number;

  private constructor(file: string, fd: number, dataStart: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.path = file;
    this.fd = fd;
    this.dataStart = dataStart;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /**
   * Opens a file and validates its header against the file size (entries well-formed, each tensor's bytes inside
   * the data region, no two tensors sharing bytes); tensors are read later, on demand.
   */
  static open(file: string): SafetensorsFile {
    const size = regularFileSize(file, "safetensors file"); // a folder, a pipe or a device is refused before open()
    const fd = fs.openSync(file, "r");
    try {
      const bad = (what: string) =>
        new UserError("E_BAD_SAFETENSORS", `${file}: ${what}`, "the file is truncated or not a safetensors file");
      if (size < 8) throw bad(`file is ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
        throw bad(`header length ${headerLen} does not fit in a file of ${size} bytes`);
      }
      const headerBuf = Buffer.alloc(headerLen);
      fs.readSync(fd, headerBuf, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString("utf8"));
      } catch {
        throw bad("header is not valid JSON");
      }
      if (!isObject(header)) throw bad("header is not a JSON object");
      const dataStart = 8 + headerLen;
      const dataLen = size - dataStart;
      const tensors = new Map<string, TensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, entry] of Object.entries(header)) {
        if (name === "__metadata__") {
          if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === "string")) {
            throw bad("__metadata__ must be an object of strings");
          }
          metadata = entry as Record<string, string>;
          continue;
        }
        const label = name.length > 200 ? `${name.slice(0, 200)}…` : name;
        if (!isObject(entry)) throw bad(`tensor ${label} has no {dtype, shape, data_offsets} entry, found ${shown(entry)}`);
        const dtype = entry.dtype as Dtype;
        if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype))
          throw bad(`tensor ${label} has unsupported dtype ${typeof dtype === "string" ? dtype.slice(0, 40) : shown(dtype)}`);
        const shape = entry.shape;
        if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
          throw bad(`tensor ${label} has a bad shape ${shown(shape)}`);
        const offs = entry.data_offsets;
        if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
          throw bad(`tensor ${label} has bad data_offsets ${shown(offs)}`);
        }
        const [begin, end] = offs as [number, number];
        const want = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
        if (end - begin !== want) {
          throw bad(`tensor ${label}: header says ${end - begin} bytes but shape [${shape.join(", ")}] of ${dtype} needs ${want}`);
        }
        if (end > dataLen) throw bad(`tensor ${label} ends at byte ${end} of the data but the data has only ${dataLen} bytes`);
        tensors.set(name, { name, dtype, shape: shape as number[], begin, end });
      }
      const byOffset = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
      for (let i = 1; i < byOffset.length; i++) {
        const [a, b] = [byOffset[i - 1], byOffset[i]];
        if (b.begin < a.end)
          throw bad(
            `tensors ${a.name.slice(0, 200)} (bytes ${a.begin}..${a.end}) and ${b.name.slice(0, 200)} (bytes ${b.begin}..${b.end}) overlap`,
          );
      }
      return new SafetensorsFile(file, fd, dataStart, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new UserError("E_MISSING_TENSOR", `${this.path}: tensor ${name} is missing`);
    return t;
  }

  /**
   * Reads a floating-point tensor as float32 into `out` (allocated when not given). NaN or an infinity in it is a
   * one-line error naming the file and the tensor: no weight, adapter or optimizer state may hold one.
   */
  readF32(name: string, out?: Float32Array): Float32Array {
    const t = this.info(name);
    const n = numel(t.shape);
    const dst = out ?? new Float32Array(n);
    if (dst.length !== n) throw new Error(`readF32(${name}): destination has ${dst.length} elements, tensor has ${n}`);
    switch (t.dtype) {
      case "F32":
        this.readInto(t, new Uint8Array(dst.buffer, dst.byteOffset, n * 4));
        break;
      case "F16":
      case "BF16": {
        const raw = this.readBytes(t);
        const u16 = new Uint16Array(raw.buffer, raw.byteOffset, n);
        if (t.dtype === "BF16") bf16ToF32(dst, u16);
        else f16ToF32(dst, u16);
        break;
      }
      case "F64": {
        const raw = this.readBytes(t);
        const f64 = new Float64Array(raw.buffer, raw.byteOffset, n);
        for (let i = 0; i < n; i++) dst[i] = f64[i];
        break;
      }
      default:
        throw new UserError("E_BAD_DTYPE", `${this.path}: tensor ${name} is ${t.dtype}, expected a floating-point dtype`);
    }
    checkFinite(dst, this.path, name);
    return dst;
  }

  /** Reads an integer tensor (I8/I16/I32/I64/U8/BOOL) as numbers. */
  readInt(name: string): Int32Array {
    const t = this.info(name);
    const n = numel(t.shape);
    const raw = this.readBytes(t);
    const out = new Int32Array(n);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < n; i++) {
      switch (t.dtype) {
        case "I64":
          out[i] = Number(dv.getBigInt64(i * 8, true));
          break;
        case "I32":
          out[i] = dv.getInt32(i * 4, true);
          break;
        case "I16":
          out[i] = dv.getInt16(i * 2, true);
          break;
        case "I8":
          out[i] = dv.getInt8(i);
          break;
        case "U8":
        case "BOOL":
          out[i] = dv.getUint8(i);
          break;
        default:
          throw new UserError("E_BAD_DTYPE", `${this.path}: tensor ${name} is ${t.dtype}, expected an integer dtype`);
      }
    }
    return out;
  }

  private readBytes(t: TensorInfo): Uint8Array {
    // 8-byte aligned so that typed-array views over it are legal for every dtype
    const buf = new Uint8Array(new ArrayBuffer(Math.ceil((t.end - t.begin) / 8) * 8), 0, t.end - t.begin);
    this.readInto(t, buf);
    return buf;
  }

  private readInto(t: TensorInfo, dst: Uint8Array): void {
    let done = 0;
    const total = t.end - t.begin;
    while (done < total) {
      const chunk = Math.min(total - done, 1 << 30);
      const got = fs.readSync(this.fd, dst, done, chunk, this.dataStart + t.begin + done);
      if (got <= 0) throw new UserError("E_BAD_SAFETENSORS", `${this.path}: unexpected end of file in tensor ${t.name}`);
      done += got;
    }
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function bf16ToF32(dst: Float32Array, src: Uint16Array): void {
  const u32 = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) u32[i] = src[i] << 16;
}

const F16_SCRATCH = new Float32Array(1);
const F16_SCRATCH_U32 = new Uint32Array(F16_SCRATCH.buffer);

export function f16ToF32(dst: Float32Array, src: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = halfToFloat(src[i]);
}

function halfToFloat(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) {
    if (mant === 0) {
      F16_SCRATCH_U32[0] = sign;
      return F16_SCRATCH[0];
    }
    return (sign ? -1 : 1) * mant * 2 ** -24; // subnormal
  }
  if (exp === 31) {
    F16_SCRATCH_U32[0] = sign | 0x7f800000 | (mant << 13);
    return F16_SCRATCH[0];
  }
  F16_SCRATCH_U32[0] = sign | ((exp + 112) << 23) | (mant << 13);
  return F16_SCRATCH[0];
}

export interface TensorToWrite {
  dtype: "F32" | "I32";
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Serialises tensors (in the given order) into safetensors bytes. */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.data.length * 4;
    if (numel(t.shape) !== t.data.length) throw new Error(`encodeSafetensors: ${name} has ${t.data.length} values, shape [${t.shape}]`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // data starts 8-byte aligned
  const headerBytes = Buffer.from(json, "utf8");
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.length * 4), pos);
    pos += t.data.length * 4;
  }
  return out;
}

export function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
