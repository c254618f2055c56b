/**
 * The worker protocol's frames (worker/PROTOCOL.md): u32 LE J, u64 LE P, J bytes of UTF-8 JSON header, P bytes of
 * payload. Tensors travel in the payload, never as JSON arrays: inside the header a tensor is {"$t": i}, entry i of
 * the header's "tensors" list {dtype, shape, offset, nbytes}, little-endian, C-contiguous, each at an offset that is
 * a multiple of 8.
 *
 * In JavaScript a tensor is a typed array (1-D) or a `Tensor` (a typed array with a shape). `encodeFrame` takes a
 * header object with typed arrays anywhere inside it; `decodeFrame` gives the header back with every {"$t": i}
 * replaced by a `Tensor` whose data is a fresh copy (aligned, the caller's to keep).
 */

export type Dtype = "f32" | "f64" | "i32" | "i64" | "u8";
export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

const ITEM: Record<Dtype, number> = { f32: 4, f64: 8, i32: 4, i64: 8, u8: 1 };
const CTOR = { f32: Float32Array, f64: Float64Array, i32: Int32Array, i64: BigInt64Array, u8: Uint8Array } as const;

/** A typed array with a row-major shape (the product of the shape is its length). */
export class Tensor<A extends TypedArray = TypedArray> {
  readonly data: A;
  readonly shape: number[];

  constructor(data: A, shape: readonly number[] = [data.length]) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`tensor of shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
    this.data = data;
    this.shape = [...shape];
  }

  get dtype(): Dtype {
    return dtypeOf(this.data);
  }
}

export function dtypeOf(a: TypedArray): Dtype {
  if (a instanceof Float32Array) return "f32";
  if (a instanceof Float64Array) return "f64";
  if (a instanceof Int32Array) return "i32";
  if (a instanceof BigInt64Array) return "i64";
  if (a instanceof Uint8Array) return "u8";
  throw new Error(`no wire dtype for ${(a as object).constructor.name}`);
}

function isTyped(v: unknown): v is TypedArray {
  return (
    v instanceof Float32Array ||
    v instanceof Float64Array ||
    v instanceof Int32Array ||
    v instanceof BigInt64Array ||
    v instanceof Uint8Array
  );
}

interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  offset: number;
  nbytes: number;
}

const PREFIX = 12; // u32 J + u64 P
const align8 = (n: number) => (n + 7) & ~7;

/** One frame for `header` (a JSON-able object whose typed arrays and Tensors go into the payload). */
export function encodeFrame(header: Record<string, unknown>): Buffer {
  const arrays: TypedArray[] = [];
  const entries: TensorEntry[] = [];
  let P = 0;
  const walk = (v: unknown): unknown => {
    if (v instanceof Tensor || isTyped(v)) {
      const t = v instanceof Tensor ? v : new Tensor(v);
      const offset = align8(P);
      entries.push({ dtype: t.dtype, shape: t.shape, offset, nbytes: t.data.byteLength });
      arrays.push(t.data);
      P = offset + t.data.byteLength;
      return { $t: entries.length - 1 };
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = walk(x);
      return out;
    }
    return v;
  };
  const body = walk(header) as Record<string, unknown>;
  if ("tensors" in body) throw new Error('a frame header may not have its own "tensors" field');
  body.tensors = entries;
  const json = Buffer.from(JSON.stringify(body), "utf8");
  P = align8(P);
  const frame = Buffer.alloc(PREFIX + json.length + P);
  frame.writeUInt32LE(json.length, 0);
  frame.writeBigUInt64LE(BigInt(P), 4);
  json.copy(frame, PREFIX);
  const payload = PREFIX + json.length;
  arrays.forEach((a, i) => {
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).copy(frame, payload + entries[i].offset);
  });
  return frame;
}

/** Bytes of the whole frame whose first bytes are `buf`, or null while fewer than the 12 length bytes are there. */
export function frameLength(buf: Buffer): number | null {
  if (buf.length < PREFIX) return null;
  const J = buf.readUInt32LE(0);
  const P = buf.readBigUInt64LE(4);
  if (P > BigInt(Number.MAX_SAFE_INTEGER)) throw new FrameError(`frame payload length ${P} is not plausible`);
  return PREFIX + J + Number(P);
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}

/** The header of one whole frame, its tensors decoded as `Tensor`s (copies). */
export function decodeFrame(buf: Buffer): Record<string, unknown> {
  if (buf.length < PREFIX) throw new FrameError(`truncated frame: ${buf.length} bytes, shorter than the ${PREFIX}-byte length prefix`);
  const J = buf.readUInt32LE(0);
  const total = frameLength(buf)!;
  if (buf.length < total)
    throw new FrameError(`truncated frame: its lengths (JSON ${J}, payload ${total - PREFIX - J}) need ${total} bytes, got ${buf.length}`);
  if (buf.length > total) throw new FrameError(`frame has ${buf.length - total} bytes past its end (${total} bytes)`);
  const text = buf.toString("utf8", PREFIX, PREFIX + J);
  let raw: unknown;
  try {
    raw = parseJson(text);
  } catch (e) {
    throw new FrameError(`frame header is not JSON (${(e as Error).message}): ${text.slice(0, 80)}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw new FrameError(`frame header is not a JSON object: ${text.slice(0, 80)}`);
  const header = raw as Record<string, unknown>;
  const P = total - PREFIX - J;
  const entries = header.tensors ?? [];
  if (!Array.isArray(entries)) throw new FrameError('frame header\'s "tensors" is not a list');
  const payload = PREFIX + J;
  const tensors = entries.map((e, i) => readTensor(buf, payload, P, e as TensorEntry, i));
  delete header.tensors;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if ("$t" in o) {
        const i = o.$t;
        if (typeof i !== "number" || !Number.isInteger(i) || i < 0 || i >= tensors.length)
          throw new FrameError(`tensor reference {"$t": ${JSON.stringify(i)}} is not one of the frame's ${tensors.length} tensors`);
        return tensors[i];
      }
      for (const k of Object.keys(o)) o[k] = walk(o[k]);
    }
    return v;
  };
  return walk(header) as Record<string, unknown>;
}

function readTensor(buf: Buffer, payload: number, P: number, e: TensorEntry, i: number): Tensor {
  const bad = (what: string) => new FrameError(`tensor ${i} ${JSON.stringify(e)}: ${what}`);
  if (e === null || typeof e !== "object") throw bad("not an object");
  const item = ITEM[e.dtype];
  if (!item) throw bad(`dtype must be one of ${Object.keys(ITEM).join(", ")}`);
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad("shape must be a list of sizes ≥ 0");
  const n = e.shape.reduce((a, b) => a * b, 1);
  if (e.nbytes !== n * item) throw bad(`nbytes must be ${n * item} (${n} × ${item})`);
  if (!Number.isInteger(e.offset) || e.offset < 0 || e.offset % 8 !== 0) throw bad("offset must be a multiple of 8");
  if (e.offset + e.nbytes > P) throw bad(`reaches byte ${e.offset + e.nbytes} of a ${P}-byte payload`);
  const copy = new ArrayBuffer(e.nbytes);
  buf.copy(new Uint8Array(copy), 0, payload + e.offset, payload + e.offset + e.nbytes);
  return new Tensor(new CTOR[e.dtype](copy), e.shape);
}

/**
 * JSON.parse that also takes the bare NaN, Infinity and -Infinity that Python's json.dumps writes for non-finite
 * floats (a loss or a gradient norm can be one).
 */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    if (!/NaN|Infinity/.test(text)) throw e;
  }
  const SENTINEL = "\u0000nonfinite:";
  // replace the bare words outside strings with marked strings, then revive them
  const out = text.replace(/"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g, (m, word: string | undefined) =>
    word ? JSON.stringify(SENTINEL + word) : m,
  );
  return JSON.parse(out, (_k, v) => (typeof v === "string" && v.startsWith(SENTINEL) ? Number(v.slice(SENTINEL.length)) : v));
}

/**
 * Splits a byte stream into frames: `push` the chunks as they arrive; each whole frame is decoded and handed to
 * `onFrame`. `pending` says how many bytes of an unfinished frame are held (for an error when the stream ends).
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private need: number | null = null;

  /** Largest JSON header accepted (bytes): a bigger length means the stream is not frames (e.g. a stray print). */
  maxHeader = 64 << 20;

  constructor(private readonly onFrame: (header: Record<string, unknown>) => void) {}

  get pending(): number {
    return this.size;
  }

  /** The whole length of the frame being read, when its prefix has arrived. */
  get expected(): number | null {
    return this.need;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    for (;;) {
      if (this.need === null) {
        if (this.size < PREFIX) return;
        // the 12 length bytes alone (joining everything on each chunk of a large frame would be quadratic)
        const head = this.chunks[0].length >= PREFIX ? this.chunks[0] : Buffer.concat(this.chunks).subarray(0, PREFIX);
        const J = head.readUInt32LE(0);
        if (J > this.maxHeader) {
          const text = JSON.stringify(head.toString("latin1", 0, Math.min(head.length, 40)));
          throw new FrameError(`not a frame: a ${J}-byte JSON header is over the ${this.maxHeader}-byte limit (the bytes begin ${text})`);
        }
        this.need = frameLength(head);
      }
      if (this.need === null || this.size < this.need) return;
      const all = this.join();
      const frame = all.subarray(0, this.need);
      const rest = all.subarray(this.need);
      this.chunks = rest.length ? [rest] : [];
      this.size = rest.length;
      this.need = null;
      this.onFrame(decodeFrame(frame));
    }
  }

  private join(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0];
  }
}
