/**
 * One decoder layer, forward and backward:
 *   x ← x + o( attention( rope(q(n1)), rope(k(n1)), v(n1) ) )     n1 = rmsnorm(x; attnNorm)
 *   x ← x + down( silu(gate(n2)) ⊙ up(n2) )                       n2 = rmsnorm(x; mlpNorm)
 * Forward updates the residual stream x (N, C) in place; with a tape it keeps what backward needs.
 */
import type { Packed } from "./batch.ts";
import { kvDim, qDim } from "./config.ts";
import { type LinearCall, linearBackward, linearForward } from "./linear.ts";
import type { LayerWeights, LinearKind } from "./params.ts";
import { f32 } from "./tensor.ts";
import type { Transformer } from "./transformer.ts";

/** Activations of one layer. In inference they are scratch; on a tape they are kept for backward. */
export interface BlockActs {
  xIn: Float32Array | null; // (N, C) residual stream entering the layer (tape only)
  rstd1: Float32Array; // (N)
  xn1: Float32Array; // (N, C)
  q: Float32Array; // (N, Q) after rope
  k: Float32Array; // (N, KV) after rope
  v: Float32Array; // (N, KV)
  probs: Float32Array[] | null; // per row (NH, T, T) (tape only)
  att: Float32Array; // (N, Q) attention output, input of o
  xMid: Float32Array | null; // (N, C) residual stream after attention (tape only)
  rstd2: Float32Array; // (N)
  xn2: Float32Array; // (N, C)
  gate: Float32Array; // (N, F) before silu
  up: Float32Array; // (N, F)
  h: Float32Array; // (N, F) silu(gate) ⊙ up, input of down
  tmp: Float32Array; // (N, C) scratch for the o and down outputs
}

export function allocBlockActs(m: Transformer, packed: Packed, tape: boolean): BlockActs {
  const { N } = packed;
  const c = m.config;
  return {
    xIn: tape ? f32(N * c.dim) : null,
    rstd1: f32(N),
    xn1: f32(N * c.dim),
    q: f32(N * qDim(c)),
    k: f32(N * kvDim(c)),
    v: f32(N * kvDim(c)),
    probs: tape ? packed.rows.map((r) => f32(c.nHeads * r.len * r.len)) : null,
    att: f32(N * qDim(c)),
    xMid: tape ? f32(N * c.dim) : null,
    rstd2: f32(N),
    xn2: f32(N * c.dim),
    gate: f32(N * c.hiddenDim),
    up: f32(N * c.hiddenDim),
    h: f32(N * c.hiddenDim),
    tmp: f32(N * c.dim),
  };
}

/** Bytes of activations a training tape keeps per token per layer, for a row of length T. */
export function tapeBytesPerTokenPerLayer(c: { dim: number; nHeads: number; nKvHeads: number; headDim: number; hiddenDim: number }, T: number): number {
  const Q = c.nHeads * c.headDim, KV = c.nKvHeads * c.headDim;
  return 4 * (5 * c.dim + 2 + 2 * Q + 2 * KV + 3 * c.hiddenDim + c.nHeads * T);
}

function linear(m: Transformer, l: number, kind: LinearKind, W: LayerWeights, packed: Packed): LinearCall {
  const [outDim, inDim] = m.linearShapes[kind];
  return { k: m.kernels, W: W.linear[kind], kind, layer: l, inDim, outDim, segments: packed.segments };
}

export function blockForward(m: Transformer, l: number, x: Float32Array, packed: Packed, a: BlockActs): void {
  const c = m.config;
  const K = m.kernels;
  const W = m.weights.layers[l];
  const { N } = packed;
  const C = c.dim, Q = qDim(c), KV = kvDim(c), HS = c.headDim, F = c.hiddenDim;

  if (a.xIn) a.xIn.set(x);
  K.rmsnormForward(a.xn1, a.rstd1, x, W.attnNorm, N, C, c.normEps);
  linearForward(linear(m, l, "q", W, packed), a.q, a.xn1, N);
  linearForward(linear(m, l, "k", W, packed), a.k, a.xn1, N);
  linearForward(linear(m, l, "v", W, packed), a.v, a.xn1, N);

  const maxKeys = packed.rows.reduce((mx, r) => Math.max(mx, r.pos0 + r.len), 0);
  const scores = new Float64Array(maxKeys);
  packed.rows.forEach((r, ri) => {
    if (r.len === 0) return;
    K.ropeApply(a.q, r.start * Q, r.len, c.nHeads, HS, r.pos0, m.rope, c.ropeStyle, 1);
    K.ropeApply(a.k, r.start * KV, r.len, c.nKvHeads, HS, r.pos0, m.rope, c.ropeStyle, 1);
    if (r.cache) {
      r.cache.k[l].set(a.k.subarray(r.start * KV, (r.start + r.len) * KV), r.pos0 * KV);
      r.cache.v[l].set(a.v.subarray(r.start * KV, (r.start + r.len) * KV), r.pos0 * KV);
      K.attentionForward(a.att, r.start * Q, null, a.q, r.start * Q, r.cache.k[l], 0, r.cache.v[l], 0,
        r.len, r.cache.capacity, r.pos0, c.nHeads, c.nKvHeads, HS, scores);
    } else {
      K.attentionForward(a.att, r.start * Q, a.probs ? a.probs[ri] : null, a.q, r.start * Q, a.k, r.start * KV, a.v, r.start * KV,
        r.len, r.len, 0, c.nHeads, c.nKvHeads, HS, scores);
    }
  });
  linearForward(linear(m, l, "o", W, packed), a.tmp, a.att, N);
  for (let i = 0; i < N * C; i++) x[i] += a.tmp[i];

  if (a.xMid) a.xMid.set(x);
  K.rmsnormForward(a.xn2, a.rstd2, x, W.mlpNorm, N, C, c.normEps);
  linearForward(linear(m, l, "gate", W, packed), a.gate, a.xn2, N);
  linearForward(linear(m, l, "up", W, packed), a.up, a.xn2, N);
  K.swigluForward(a.h, a.gate, a.up, N * F);
  linearForward(linear(m, l, "down", W, packed), a.tmp, a.h, N);
  for (let i = 0; i < N * C; i++) x[i] += a.tmp[i];
}

/** dx (N, C): gradient w.r.t. the layer's output on entry, w.r.t. its input on return. */
export function blockBackward(m: Transformer, l: number, dx: Float32Array, packed: Packed, a: BlockActs): void {
  const c = m.config;
  const K = m.kernels;
  const W = m.weights.layers[l];
  const G = m.grad?.layers[l] ?? null;
  const { N } = packed;
  const C = c.dim, Q = qDim(c), KV = kvDim(c), HS = c.headDim, F = c.hiddenDim;
  if (!a.xIn || !a.xMid || !a.probs) throw new Error("blockBackward needs a tape from a training forward");

  // MLP: x_out = x_mid + down(h)  →  dx_mid = dx + (through the MLP)
  const dh = f32(N * F);
  linearBackward(linear(m, l, "down", W, packed), dh, G?.linear.down ?? null, dx, a.h, N);
  const dgate = f32(N * F), dup = f32(N * F);
  K.swigluBackward(dgate, dup, dh, a.gate, a.up, N * F);
  const dxn2 = f32(N * C);
  linearBackward(linear(m, l, "gate", W, packed), dxn2, G?.linear.gate ?? null, dgate, a.xn2, N);
  linearBackward(linear(m, l, "up", W, packed), dxn2, G?.linear.up ?? null, dup, a.xn2, N);
  K.rmsnormBackward(dx, G?.mlpNorm ?? null, dxn2, a.xMid, a.rstd2, W.mlpNorm, N, C);

  // attention: x_mid = x_in + o(att)
  const datt = f32(N * Q);
  linearBackward(linear(m, l, "o", W, packed), datt, G?.linear.o ?? null, dx, a.att, N);
  const dq = f32(N * Q), dk = f32(N * KV), dv = f32(N * KV);
  const dp = new Float64Array(packed.rows.reduce((mx, r) => Math.max(mx, r.len), 0));
  packed.rows.forEach((r, ri) => {
    if (r.len === 0) return;
    K.attentionBackward(dq, dk, dv,
      datt, r.start * Q, a.probs![ri], a.q, r.start * Q, a.k, r.start * KV, a.v, r.start * KV, r.len, c.nHeads, c.nKvHeads, HS, dp);
    K.ropeApply(dq, r.start * Q, r.len, c.nHeads, HS, r.pos0, m.rope, c.ropeStyle, -1);
    K.ropeApply(dk, r.start * KV, r.len, c.nKvHeads, HS, r.pos0, m.rope, c.ropeStyle, -1);
  });
  const dxn1 = f32(N * C);
  linearBackward(linear(m, l, "q", W, packed), dxn1, G?.linear.q ?? null, dq, a.xn1, N);
  linearBackward(linear(m, l, "k", W, packed), dxn1, G?.linear.k ?? null, dk, a.xn1, N);
  linearBackward(linear(m, l, "v", W, packed), dxn1, G?.linear.v ?? null, dv, a.xn1, N);
  K.rmsnormBackward(dx, G?.attnNorm ?? null, dxn1, a.xIn, a.rstd1, W.attnNorm, N, C);
}
