/**
 * What loading a file may cost, checked before it is paid: only regular files are opened (a named pipe would block,
 * a device would never end), JSON files have a size bound, a model's memory is computed from its config and refused
 * when this machine cannot hold it, and every float read is checked for NaN and infinities.
 */
import fs from "node:fs";
import os from "node:os";
import type { ModelConfig } from "../engine/config.ts";
import { ROPE_POSITIONS_UP_FRONT } from "../engine/transformer.ts";
import { UserError } from "../util/errors.ts";
import { readJsonFile } from "../util/fs.ts";

/** Largest JSON file read whole (tokenizer.json files of large vocabularies are tens of MB). */
export const MAX_JSON_BYTES = 256 * 2 ** 20;

/** The size of a regular file; anything else (missing, a folder, a pipe, a device, a socket) is a one-line error. */
export function regularFileSize(file: string, what: string, hint?: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new UserError("E_NOT_FOUND", `${what} not found: ${file}`, hint);
  }
  if (!st.isFile()) {
    const kind = st.isDirectory()
      ? "a folder"
      : st.isFIFO()
        ? "a named pipe"
        : st.isCharacterDevice() || st.isBlockDevice()
          ? "a device"
          : "not a regular file";
    throw new UserError("E_NOT_FILE", `${what} ${file} is ${kind}, not a regular file`, hint);
  }
  return st.size;
}

/** Reads and parses a JSON file of at most `maxBytes`, refusing anything that is not a regular file. */
export function readJsonBounded(file: string, what: string, maxBytes = MAX_JSON_BYTES): unknown {
  const size = regularFileSize(file, what);
  if (size > maxBytes) {
    throw new UserError("E_TOO_LARGE", `${what} ${file} is ${size} bytes, more than the ${maxBytes} a ${what} may have`);
  }
  return readJsonFile(file, what);
}

/** Bytes of memory loading a model of config `c` takes: its float32 weights, one tensor's conversion buffer, rope tables. */
export function loadBytes(c: ModelConfig, largestTensorBytes = 0): number {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const perLayer = 2 * c.dim + q * c.dim * 2 + kv * c.dim * 2 + 3 * c.hiddenDim * c.dim;
  const params = c.vocabSize * c.dim * (c.tiedEmbeddings ? 1 : 2) + c.nLayers * perLayer + c.dim;
  const rope = Math.min(c.maxSeqLen, ROPE_POSITIONS_UP_FRONT) * (c.headDim / 2) * 2 * 4;
  return 4 * params + largestTensorBytes + rope;
}

/** The memory this process may use: the machine's, or its cgroup's limit when lower. */
export function memoryBudget(): number {
  const total = os.totalmem();
  const limit = process.constrainedMemory?.() ?? 0;
  return limit > 0 && limit < total ? limit : total;
}

/** Refuses, before anything is allocated, a model whose load needs more memory than this machine has. */
export function checkLoadMemory(c: ModelConfig, file: string, largestTensorBytes = 0): void {
  checkMemory(loadBytes(c, largestTensorBytes), file, `this model (${c.nLayers} layers, dim ${c.dim}, vocab ${c.vocabSize})`);
}

/** Refuses, before anything is allocated, to load `what` (described by `file`) when it needs more than this machine's memory. */
export function checkMemory(need: number, file: string, what: string): void {
  const budget = memoryBudget();
  if (need > budget) {
    throw new UserError(
      "E_TOO_LARGE",
      `${file}: loading ${what} needs ${gib(need)} of memory; this machine has ${gib(budget)}`,
      "use a machine with more memory, or a smaller model",
    );
  }
}

const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 3 : 1)} GiB`;

/** Index of the first NaN or ±Infinity in `a`, or −1 (one pass over the exponent bits). */
export function firstNonFinite(a: Float32Array): number {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < u.length; i++) if ((u[i] & 0x7f800000) === 0x7f800000) return i;
  return -1;
}

/** Throws a one-line error naming the file and the tensor when `a` holds NaN or an infinity. */
export function checkFinite(a: Float32Array, file: string, tensor: string): void {
  const i = firstNonFinite(a);
  if (i >= 0) {
    throw new UserError(
      "E_NON_FINITE",
      `${file}: tensor ${tensor} holds ${a[i]} at element ${i}`,
      "the weights are corrupt (a diverged training run, or a damaged file)",
    );
  }
}

/** A value as JSON for an error message, cut to `max` characters (a hostile file may hold megabytes in one key). */
export function shown(v: unknown, max = 80): string {
  return cut(JSON.stringify(v) ?? String(v), max);
}

/** Text for an error message, cut to `max` characters. */
export function cut(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
