/**
 * Turning logits into a token: processors applied in transformers' order (temperature → top-k → top-p), then a
 * seeded draw. Temperature 0 is greedy (the first index of the maximum, as torch.argmax).
 */
import type { Rng } from "../util/rng.ts";

export interface SamplingParams {
  temperature: number; // 0 = greedy
  topK: number; // 0 = off
  topP: number; // 1 = off
}

export const DEFAULT_SAMPLING: SamplingParams = { temperature: 1, topK: 0, topP: 1 };

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** log-softmax of one row of logits, in float64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  const V = logits.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(V);
  for (let i = 0; i < V; i++) out[i] = logits[i] - lse;
  return out;
}

/** Draws a token from `logits` (V) under `p`, using one uniform draw from `rng` unless greedy. */
export function sampleToken(logits: ArrayLike<number>, p: SamplingParams, rng: Rng): number {
  if (p.temperature === 0) return argmax(logits);
  const V = logits.length;
  const scaled = new Float64Array(V);
  for (let i = 0; i < V; i++) scaled[i] = logits[i] / p.temperature;
  let order: number[] | null = null;
  if ((p.topK > 0 && p.topK < V) || p.topP < 1) {
    order = Array.from({ length: V }, (_, i) => i).sort((a, b) => scaled[b] - scaled[a] || a - b);
  }
  if (order && p.topK > 0 && p.topK < V) {
    const kth = scaled[order[p.topK - 1]];
    for (let i = 0; i < V; i++) if (scaled[i] < kth) scaled[i] = -Infinity; // ties with the k-th are kept
  }
  const probs = softmaxInPlace(scaled);
  if (order && p.topP < 1) {
    // keep the smallest prefix of the sorted tokens whose mass reaches top_p (at least one token)
    let cum = 0;
    let cut = V;
    for (let r = 0; r < V; r++) {
      cum += probs[order[r]];
      if (cum >= p.topP) {
        cut = r + 1;
        break;
      }
    }
    for (let r = cut; r < V; r++) probs[order[r]] = 0;
    let s = 0;
    for (let i = 0; i < V; i++) s += probs[i];
    for (let i = 0; i < V; i++) probs[i] /= s;
  }
  const u = rng.float();
  let cum = 0;
  let last = 0;
  for (let i = 0; i < V; i++) {
    if (probs[i] <= 0) continue;
    cum += probs[i];
    last = i;
    if (u < cum) return i;
  }
  return last;
}

function softmaxInPlace(x: Float64Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(x[i] - max);
    sum += x[i];
  }
  for (let i = 0; i < x.length; i++) x[i] /= sum;
  return x;
}
