/** One AdamW step (torch.optim.AdamW: decoupled weight decay) over a flat buffer, in float64 arithmetic. */

/**
 * p, g, m, v (n). stepSize = lr / (1 − β1^t), sqrtBc2 = sqrt(1 − β2^t):
 *   p ← p (1 − lr·wd);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  p ← p − stepSize · m / (sqrt(v)/sqrtBc2 + eps)
 */
export function adamwUpdate(
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
): void {
  for (let i = 0; i < n; i++) {
    if (wd) p[i] *= 1 - lr * wd;
    const gi = g[i];
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    p[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / sqrtBc2 + eps);
  }
}
