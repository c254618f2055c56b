/**
 * Plain temperature sampling for a batch of rows, the arithmetic of sample.ts's sampleToken (top-k and top-p off)
 * with the uniform draws made by the caller: row i takes the first token whose cumulative probability under
 * softmax(logits_i / temperature_i) exceeds u_i (float64, index order), and reports that token's log-probability
 * under softmax(logits_i) (temperature 1), as generation records it.
 */

/** logits (n, V); temperature, u (n) in; ids (n), logprobs (n) out. Temperatures must be > 0. */
export function sampleRows(
  logits: Float32Array,
  n: number,
  V: number,
  temperature: Float64Array,
  u: Float64Array,
  ids: Int32Array,
  logprobs: Float64Array,
): void {
  const scaled = new Float64Array(V);
  for (let r = 0; r < n; r++) {
    const o = r * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) {
      scaled[i] = logits[o + i] / temperature[r];
      if (scaled[i] > max) max = scaled[i];
    }
    let sum = 0;
    for (let i = 0; i < V; i++) {
      scaled[i] = Math.exp(scaled[i] - max);
      sum += scaled[i];
    }
    let cum = 0,
      last = 0,
      id = -1;
    for (let i = 0; i < V; i++) {
      const p = scaled[i] / sum;
      if (p <= 0) continue;
      cum += p;
      last = i;
      if (u[r] < cum) {
        id = i;
        break;
      }
    }
    if (id < 0) id = last;
    let lmax = -Infinity;
    for (let i = 0; i < V; i++) if (logits[o + i] > lmax) lmax = logits[o + i];
    let lsum = 0;
    for (let i = 0; i < V; i++) lsum += Math.exp(logits[o + i] - lmax);
    ids[r] = id;
    logprobs[r] = logits[o + id] - (lmax + Math.log(lsum));
  }
}
