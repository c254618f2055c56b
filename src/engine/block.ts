/**
 * One decoder layer, forward and backward:
 *   x ← x + o( attention( rope(q(n1)), rope(k(n1)), v(n1) ) )     n1 = rmsnorm(x; attnNorm)
 *   x ← x + down( silu(gate(n2)) ⊙ up(n2) )                       n2 = rmsnorm(x; mlpNorm)
 * Forward updates the residual stream x (N, C) in place (the o and down products add straight into it); with a
 * tape it keeps what backward needs. Activation buffers come from the model's workspace and go back to it once
 * their last reader is done.
 */
import type { Packed } from "./batch.ts";
import { kvDim, qDim } from "./config.ts";
import { type LinearCall, linearBackward, linearForward } from "./linear.ts";
import type { LayerWeights, LinearKind } from "./params.ts";
import { i32 } from "./tensor.ts";
import type { Transformer } from "./transformer.ts";

/** How the rows of a packed batch attend; computed once per forward, shared by every layer. */
export interface RowPlan {
  positions: Int32Array; // (N) position of each token (rotary embedding)
  packedRows: Int32Array; // (R, 3) [start, len, probsOffset] rows whose keys are in the batch, from position 0
  cachedRows: Int32Array; // (Rc, 3) [start, len, pos0] rows that continue a KV cache
  cacheK: Float32Array[][]; // (L, Rc) each cached row's key cache, per layer
  cacheV: Float32Array[][]; // (L, Rc)
  probsSize: number; // floats of one layer's attention probabilities: Σ NH·len² over packed rows
}

export function planRows(packed: Packed, NH: number, L: number): RowPlan {
  const positions = i32(packed.N);
  const plain = packed.rows.filter((r) => !r.cache && r.len > 0);
  const cached = packed.rows.filter((r) => r.cache && r.len > 0);
  const packedRows = new Int32Array(3 * plain.length);
  const cachedRows = new Int32Array(3 * cached.length);
  let probsSize = 0;
  plain.forEach((r, i) => {
    packedRows.set([r.start, r.len, probsSize], 3 * i);
    probsSize += NH * r.len * r.len;
  });
  cached.forEach((r, i) => cachedRows.set([r.start, r.len, r.pos0], 3 * i));
  for (const r of packed.rows) for (let t = 0; t < r.len; t++) positions[r.start + t] = r.pos0 + t;
  const layers = Array.from({ length: L }, (_, l) => l);
  const cacheK = cached.length ? layers.map((l) => cached.map((r) => r.cache!.k[l])) : [];
  const cacheV = cached.length ? layers.map((l) => cached.map((r) => r.cache!.v[l])) : [];
  return { positions, packedRows, cachedRows, cacheK, cacheV, probsSize };
}

/** Activations of one layer. In inference they are scratch; on a tape they are kept for backward. */
export interface BlockActs {
  xIn: Float32Array | null; // (N, C) residual stream entering the layer (tape only)
  rstd1: Float32Array; // (N)
  xn1: Float32Array; // (N, C)
  q: Float32Array; // (N, Q) after rope
  k: Float32Array; // (N, KV) after rope
  v: Float32Array; // (N, KV)
  probs: Float32Array | null; // (Σ NH·len²) per packed row (NH, len, len) at its plan offset (tape only)
  att: Float32Array; // (N, Q) attention output, input of o
  xMid: Float32Array | null; // (N, C) residual stream after attention (tape only)
  rstd2: Float32Array; // (N)
  xn2: Float32Array; // (N, C)
  gate: Float32Array; // (N, F) before silu
  up: Float32Array; // (N, F)
  h: Float32Array; // (N, F) silu(gate) ⊙ up, input of down
}

export function allocBlockActs(m: Transformer, packed: Packed, plan: RowPlan, tape: boolean): BlockActs {
  const { N } = packed;
  const c = m.config;
  const ws = m.workspace;
  return {
    xIn: tape ? ws.take(N * c.dim) : null,
    rstd1: ws.take(N),
    xn1: ws.take(N * c.dim),
    q: ws.take(N * qDim(c)),
    k: ws.take(N * kvDim(c)),
    v: ws.take(N * kvDim(c)),
    probs: tape ? ws.take(plan.probsSize) : null,
    att: ws.take(N * qDim(c)),
    xMid: tape ? ws.take(N * c.dim) : null,
    rstd2: ws.take(N),
    xn2: ws.take(N * c.dim),
    gate: ws.take(N * c.hiddenDim),
    up: ws.take(N * c.hiddenDim),
    h: ws.take(N * c.hiddenDim),
  };
}

/** Gives a layer's buffers back to the workspace (after their last use). */
export function releaseBlockActs(m: Transformer, a: BlockActs): void {
  m.workspace.give(a.xIn, a.rstd1, a.xn1, a.q, a.k, a.v, a.probs, a.att, a.xMid, a.rstd2, a.xn2, a.gate, a.up, a.h);
}

/** Bytes of activations a training tape keeps per token per layer, for a row of length T. */
export function tapeBytesPerTokenPerLayer(
  c: { dim: number; nHeads: number; nKvHeads: number; headDim: number; hiddenDim: number },
  T: number,
): number {
  const Q = c.nHeads * c.headDim,
    KV = c.nKvHeads * c.headDim;
  return 4 * (4 * c.dim + 2 + 2 * Q + 2 * KV + 3 * c.hiddenDim + c.nHeads * T);
}

function linear(m: Transformer, l: number, kind: LinearKind, W: LayerWeights, packed: Packed): LinearCall {
  const [outDim, inDim] = m.linearShapes[kind];
  return { k: m.kernels, ws: m.workspace, W: W.linear[kind], kind, layer: l, inDim, outDim, segments: packed.segments };
}

export function blockForward(m: Transformer, l: number, x: Float32Array, packed: Packed, plan: RowPlan, a: BlockActs): void {
  const c = m.config;
  const K = m.kernels;
  const W = m.weights.layers[l];
  const { N } = packed;
  const C = c.dim,
    HS = c.headDim,
    F = c.hiddenDim;

  if (a.xIn) a.xIn.set(x);
  K.rmsnormForward(a.xn1, a.rstd1, x, W.attnNorm, N, C, c.normEps);
  linearForward(linear(m, l, "q", W, packed), a.q, a.xn1, N, false);
  linearForward(linear(m, l, "k", W, packed), a.k, a.xn1, N, false);
  linearForward(linear(m, l, "v", W, packed), a.v, a.xn1, N, false);
  K.ropeRows(a.q, plan.positions, N, c.nHeads, HS, m.rope, c.ropeStyle, 1);
  K.ropeRows(a.k, plan.positions, N, c.nKvHeads, HS, m.rope, c.ropeStyle, 1);

  if (plan.packedRows.length) K.attentionRows(a.att, a.probs, a.q, a.k, a.v, plan.packedRows, c.nHeads, c.nKvHeads, HS);
  if (plan.cachedRows.length) {
    // appends each row's new keys and values to its cache, then attends to the whole cache
    K.attentionCachedRows(a.att, a.q, a.k, a.v, plan.cacheK[l], plan.cacheV[l], plan.cachedRows, c.nHeads, c.nKvHeads, HS);
  }
  linearForward(linear(m, l, "o", W, packed), x, a.att, N, true); // x += o(att)

  if (a.xMid) a.xMid.set(x);
  K.rmsnormForward(a.xn2, a.rstd2, x, W.mlpNorm, N, C, c.normEps);
  linearForward(linear(m, l, "gate", W, packed), a.gate, a.xn2, N, false);
  linearForward(linear(m, l, "up", W, packed), a.up, a.xn2, N, false);
  K.swigluForward(a.h, a.gate, a.up, N * F);
  linearForward(linear(m, l, "down", W, packed), x, a.h, N, true); // x += down(h)
}

/** dx (N, C): gradient w.r.t. the layer's output on entry, w.r.t. its input on return. */
export function blockBackward(m: Transformer, l: number, dx: Float32Array, packed: Packed, plan: RowPlan, a: BlockActs): void {
  const c = m.config;
  const K = m.kernels;
  const ws = m.workspace;
  const W = m.weights.layers[l];
  const G = m.grad?.layers[l] ?? null;
  const { N } = packed;
  const C = c.dim,
    Q = qDim(c),
    KV = kvDim(c),
    HS = c.headDim,
    F = c.hiddenDim;
  if (!a.xIn || !a.xMid || !a.probs) throw new Error("blockBackward needs a tape from a training forward");

  // MLP: x_out = x_mid + down(h)  →  dx_mid = dx + (through the MLP)
  const dh = ws.take(N * F); // (N, F)
  linearBackward(linear(m, l, "down", W, packed), dh, G?.linear.down ?? null, dx, a.h, N, false);
  const dgate = ws.take(N * F),
    dup = ws.take(N * F); // (N, F)
  K.swigluBackward(dgate, dup, dh, a.gate, a.up, N * F);
  const dxn2 = ws.take(N * C); // (N, C)
  linearBackward(linear(m, l, "gate", W, packed), dxn2, G?.linear.gate ?? null, dgate, a.xn2, N, false);
  linearBackward(linear(m, l, "up", W, packed), dxn2, G?.linear.up ?? null, dup, a.xn2, N, true);
  K.rmsnormBackward(dx, G?.mlpNorm ?? null, dxn2, a.xMid, a.rstd2, W.mlpNorm, N, C);
  ws.give(dh, dgate, dup);

  // attention: x_mid = x_in + o(att)
  const datt = ws.take(N * Q); // (N, Q)
  linearBackward(linear(m, l, "o", W, packed), datt, G?.linear.o ?? null, dx, a.att, N, false);
  const dq = ws.takeZeroed(N * Q),
    dk = ws.takeZeroed(N * KV),
    dv = ws.takeZeroed(N * KV);
  K.attentionRowsBackward(dq, dk, dv, datt, a.probs, a.q, a.k, a.v, plan.packedRows, c.nHeads, c.nKvHeads, HS);
  K.ropeRows(dq, plan.positions, N, c.nHeads, HS, m.rope, c.ropeStyle, -1);
  K.ropeRows(dk, plan.positions, N, c.nKvHeads, HS, m.rope, c.ropeStyle, -1);
  const dxn1 = dxn2; // (N, C), reused
  linearBackward(linear(m, l, "q", W, packed), dxn1, G?.linear.q ?? null, dq, a.xn1, N, false);
  linearBackward(linear(m, l, "k", W, packed), dxn1, G?.linear.k ?? null, dk, a.xn1, N, true);
  linearBackward(linear(m, l, "v", W, packed), dxn1, G?.linear.v ?? null, dv, a.xn1, N, true);
  K.rmsnormBackward(dx, G?.attnNorm ?? null, dxn1, a.xIn, a.rstd1, W.attnNorm, N, C);
  ws.give(datt, dq, dk, dv, dxn1);
}
