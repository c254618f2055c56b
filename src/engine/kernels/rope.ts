/**
 * Rotary position embedding, in place.
 * - "half" (Hugging Face rotate-half): pairs (i, i + HS/2).
 * - "interleaved" (llama2.c, Meta's original): pairs (2i, 2i + 1).
 * Pair i at position p turns by angle p·invFreq[i]; backward turns by the opposite angle (the transpose).
 */
import type { RopeScaling, RopeStyle } from "../config.ts";

export interface RopeTables {
  positions: number; // P
  half: number; // HS/2
  cos: Float32Array; // (P, HS/2)
  sin: Float32Array; // (P, HS/2)
}

/** Inverse frequencies (HS/2) as transformers computes them (float32), with llama3 or linear scaling applied. */
export function ropeInvFreq(headDim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
  if (scaling?.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = inv[i] / scaling.factor;
  } else if (scaling?.type === "llama3") {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
    const lowWavelen = originalMaxPositions / lowFreqFactor;
    const highWavelen = originalMaxPositions / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i];
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        inv[i] = f / factor;
      } else {
        const smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = (1 - smooth) * (f / factor) + smooth * f;
      }
      inv[i] = Math.fround(inv[i]);
    }
  }
  return inv;
}

export function buildRopeTables(invFreq: Float64Array, positions: number): RopeTables {
  const half = invFreq.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * invFreq[i];
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { positions, half, cos, sin };
}

/**
 * Rotates x (T, H, HS) starting at element `off`, token t at position pos0 + t.
 * `direction` +1 applies the rotation (forward), −1 its transpose (backward).
 */
export function ropeApply(
  x: Float32Array,
  off: number,
  T: number,
  H: number,
  HS: number,
  pos0: number,
  tables: RopeTables,
  style: RopeStyle,
  direction: 1 | -1,
): void {
  const half = HS >> 1;
  const { cos, sin } = tables;
  for (let t = 0; t < T; t++) {
    const tab = (pos0 + t) * half;
    for (let h = 0; h < H; h++) {
      const base = off + (t * H + h) * HS;
      if (style === "half") {
        for (let i = 0; i < half; i++) {
          const c = cos[tab + i],
            s = direction * sin[tab + i];
          const a = x[base + i],
            b = x[base + i + half];
          x[base + i] = a * c - b * s;
          x[base + i + half] = b * c + a * s;
        }
      } else {
        for (let i = 0; i < half; i++) {
          const c = cos[tab + i],
            s = direction * sin[tab + i];
          const a = x[base + 2 * i],
            b = x[base + 2 * i + 1];
          x[base + 2 * i] = a * c - b * s;
          x[base + 2 * i + 1] = a * s + b * c;
        }
      }
    }
  }
}

/** Rotates every token of x (N, H, HS) in place, token i at position positions[i] (all rows of a packed batch at once). */
export function ropeRows(
  x: Float32Array,
  positions: Int32Array,
  N: number,
  H: number,
  HS: number,
  tables: RopeTables,
  style: RopeStyle,
  direction: 1 | -1,
): void {
  for (let i = 0; i < N; i++) ropeApply(x, i * H * HS, 1, H, HS, positions[i], tables, style, direction);
}
