/**
 * The LM head's per-position arithmetic on a chunk of logits: log-softmax, the log-probability of a target,
 * the entropy, and (for training) the gradient of  L = −Σ w_i log p(target_i) − Σ e_i H_i  w.r.t. the logits.
 */

/**
 * logits (n, V); logprob, entropy (n) out; targets (n) (−1: none → logprob NaN); w, e (n) or null.
 * With `grad`, each logits row is overwritten by dL/dz = w (p − onehot(target)) + e p (log p + H), or zeros
 * where w and e are both 0.
 */
export function headXent(
  logits: Float32Array,
  logprob: Float64Array,
  entropy: Float64Array,
  targets: Int32Array,
  w: Float64Array | null,
  e: Float64Array | null,
  n: number,
  V: number,
  grad: boolean,
): void {
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * V, (i + 1) * V);
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
    const lse = max + Math.log(sum);
    let ent = 0;
    for (let v = 0; v < V; v++) {
      const lp = row[v] - lse;
      ent -= Math.exp(lp) * lp;
    }
    const target = targets[i];
    logprob[i] = target >= 0 ? row[target] - lse : NaN;
    entropy[i] = ent;
    if (!grad) continue;
    const wi = target >= 0 && w ? w[i] : 0;
    const ei = e ? e[i] : 0;
    if (wi === 0 && ei === 0) {
      row.fill(0);
      continue;
    }
    for (let v = 0; v < V; v++) {
      const lp = row[v] - lse;
      const pv = Math.exp(lp);
      row[v] = wi * pv + ei * pv * (lp + ent);
    }
    if (target >= 0) row[target] -= wi;
  }
}
