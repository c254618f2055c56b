/**
 * The native kernels: build/colloquy_native.node (native/*.c, built by scripts/build-native.mjs at install) behind
 * the `Kernels` interface. Buffers are passed as they are (the addon reads the typed arrays' memory in place, so
 * the frozen base weights are shared by its threads, never copied); the three matrix products are one strided
 * GEMM. Loading never throws: `loadNativeAddon` says why it failed.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Kernels } from "./index.ts";

/** The addon's functions (see native/addon.c for argument order). */
export interface NativeAddon {
  gemm(
    M: number,
    N: number,
    K: number,
    alpha: number,
    a: Float32Array,
    aOff: number,
    rsa: number,
    csa: number,
    b: Float32Array,
    bOff: number,
    rsb: number,
    csb: number,
    beta: number,
    c: Float32Array,
    cOff: number,
    rsc: number,
    csc: number,
  ): void;
  attentionForward(
    out: Float32Array,
    probs: Float32Array | null,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    rows: Int32Array,
    NH: number,
    KVH: number,
    HS: number,
  ): void;
  attentionBackward(
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    dout: Float32Array,
    probs: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    rows: Int32Array,
    NH: number,
    KVH: number,
    HS: number,
  ): void;
  attentionCached(
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    kc: readonly Float32Array[],
    vc: readonly Float32Array[],
    rows: Int32Array,
    NH: number,
    KVH: number,
    HS: number,
  ): void;
  rmsnormForward(out: Float32Array, rstd: Float32Array | null, x: Float32Array, w: Float32Array, N: number, C: number, eps: number): void;
  rmsnormBackward(
    dx: Float32Array,
    dw: Float32Array | null,
    dout: Float32Array,
    x: Float32Array,
    rstd: Float32Array,
    w: Float32Array,
    N: number,
    C: number,
  ): void;
  rope(
    x: Float32Array,
    pos: Int32Array,
    N: number,
    H: number,
    HS: number,
    cos: Float32Array,
    sin: Float32Array,
    P: number,
    style: number,
    direction: number,
  ): void;
  swigluForward(h: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;
  swigluBackward(dgate: Float32Array, dup: Float32Array, dh: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;
  softmaxXent(
    logits: Float32Array,
    logprob: Float64Array,
    entropy: Float64Array,
    targets: Int32Array,
    w: Float64Array | null,
    e: Float64Array | null,
    n: number,
    V: number,
    grad: boolean,
  ): void;
  sampleRows(
    logits: Float32Array,
    n: number,
    V: number,
    temperature: Float64Array,
    u: Float64Array,
    ids: Int32Array,
    logprobs: Float64Array,
  ): void;
  adamw(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    wd: number,
    stepSize: number,
    sqrtBc2: number,
  ): void;
  gatherRows(out: Float32Array, src: Float32Array, idx: Int32Array, n: number, C: number): void;
  scatterAddRows(dst: Float32Array, src: Float32Array, idx: Int32Array, n: number, C: number): void;
  threads(set?: number | null): number;
  simd(): string;
  fmaPeak(threads: number, seconds: number): number;
  clockHz(seconds: number): number;
  alignOffset(view: ArrayBufferView): number;
}

export const NATIVE_ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../build/colloquy_native.node");

let cached: { addon: NativeAddon | null; reason: string } | null = null;

const REQUIRED = [
  "gemm",
  "attentionForward",
  "attentionBackward",
  "attentionCached",
  "rmsnormForward",
  "rmsnormBackward",
  "rope",
  "swigluForward",
  "swigluBackward",
  "softmaxXent",
  "sampleRows",
  "adamw",
  "gatherRows",
  "scatterAddRows",
  "threads",
  "simd",
  "fmaPeak",
  "clockHz",
  "alignOffset",
];

/** The addon, or null and the reason it is unavailable (loaded once per process). */
export function loadNativeAddon(): { addon: NativeAddon | null; reason: string } {
  if (cached) return cached;
  if (!fs.existsSync(NATIVE_ADDON_PATH)) {
    cached = { addon: null, reason: `${path.relative(process.cwd(), NATIVE_ADDON_PATH) || NATIVE_ADDON_PATH} is not built` };
  } else {
    try {
      const addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeAddon;
      const missing = REQUIRED.filter((f) => typeof (addon as unknown as Record<string, unknown>)[f] !== "function");
      cached = missing.length
        ? { addon: null, reason: `${NATIVE_ADDON_PATH} is stale (no ${missing.join(", ")}): rebuild it` }
        : { addon, reason: "" };
    } catch (e) {
      cached = { addon: null, reason: `loading ${NATIVE_ADDON_PATH} failed: ${(e as Error).message.split("\n")[0]}` };
    }
  }
  return cached;
}

/**
 * A SharedArrayBuffer of `bytes` (+ 64 spare) and the byte offset of its first 64-byte-aligned address. Node
 * allocates large buffers 16 bytes past a page boundary; a vector load from such a row straddles two cache lines
 * (decode-step products run 2-3× slower). Offset 0 without the addon.
 */
export function alignedShared(bytes: number): { sab: SharedArrayBuffer; offset: number } {
  const { addon } = loadNativeAddon();
  if (!addon) return { sab: new SharedArrayBuffer(bytes), offset: 0 };
  const sab = new SharedArrayBuffer(bytes + 64);
  return { sab, offset: addon.alignOffset(new Uint8Array(sab, 0, 1)) };
}

export function nativeKernels(n: NativeAddon): Kernels {
  return {
    name: "native",
    // out (M, N) = [out +] alpha · x (M, K) · w (N, K)^T
    matmulXWt: (out, x, w, M, K, N, accumulate, alpha = 1) =>
      n.gemm(M, N, K, alpha, x, 0, K, 1, w, 0, 1, K, accumulate ? 1 : 0, out, 0, N, 1),
    // out (M, K) = [out +] alpha · dy (M, N) · w (N, K)
    matmulXW: (out, dy, w, M, N, K, accumulate, alpha = 1) =>
      n.gemm(M, K, N, alpha, dy, 0, N, 1, w, 0, K, 1, accumulate ? 1 : 0, out, 0, K, 1),
    // out (N, K) += alpha · dy (M, N)^T · x (M, K)
    matmulXtY: (out, dy, x, M, N, K, alpha = 1) => n.gemm(N, K, M, alpha, dy, 0, 1, N, x, 0, K, 1, 1, out, 0, K, 1),
    rmsnormForward: (out, rstd, x, w, N, C, eps) => n.rmsnormForward(out, rstd, x, w, N, C, eps),
    rmsnormBackward: (dx, dw, dout, x, rstd, w, N, C) => n.rmsnormBackward(dx, dw, dout, x, rstd, w, N, C),
    ropeRows: (x, positions, N, H, HS, tables, style, direction) =>
      n.rope(x, positions, N, H, HS, tables.cos, tables.sin, tables.positions, style === "half" ? 0 : 1, direction),
    attentionRows: (out, probs, q, k, v, rows, NH, KVH, HS) => n.attentionForward(out, probs, q, k, v, rows, NH, KVH, HS),
    attentionCachedRows: (out, q, k, v, kc, vc, rows, NH, KVH, HS) => n.attentionCached(out, q, k, v, kc, vc, rows, NH, KVH, HS),
    attentionRowsBackward: (dq, dk, dv, dout, probs, q, k, v, rows, NH, KVH, HS) =>
      n.attentionBackward(dq, dk, dv, dout, probs, q, k, v, rows, NH, KVH, HS),
    swigluForward: (h, gate, up, count) => n.swigluForward(h, gate, up, count),
    swigluBackward: (dgate, dup, dh, gate, up, count) => n.swigluBackward(dgate, dup, dh, gate, up, count),
    headXent: (logits, logprob, entropy, targets, w, e, rows, V, grad) =>
      n.softmaxXent(logits, logprob, entropy, targets, w, e, rows, V, grad),
    sampleRows: (logits, rows, V, temperature, u, ids, logprobs) => n.sampleRows(logits, rows, V, temperature, u, ids, logprobs),
    adamwUpdate: (p, g, m, v, count, lr, beta1, beta2, eps, wd, stepSize, sqrtBc2) =>
      n.adamw(p, g, m, v, count, lr, beta1, beta2, eps, wd, stepSize, sqrtBc2),
    gatherRows: (out, src, idx, rows, C) => n.gatherRows(out, src, idx, rows, C),
    scatterAddRows: (dst, src, idx, rows, C) => n.scatterAddRows(dst, src, idx, rows, C),
  };
}
