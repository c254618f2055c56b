/**
 * KL to the base policy (the adapter switched off), per token, from the log-probs of the sampled tokens:
 *   k1 = log π − log π_base            (unbiased, can be negative)
 *   k3 = exp(log π_base − log π) − (log π_base − log π) − 1   (unbiased, never negative; Schulman 2020)
 * and the adaptive coefficient of Ziegler et al. (2019): β ← β (1 + K_β e), e = clip(KL/target − 1, ±0.2),
 * K_β = samples / horizon.
 */
export type KlEstimator = "k1" | "k3";

export function klPerToken(logp: number, refLogp: number, estimator: KlEstimator): number {
  const d = refLogp - logp;
  return estimator === "k1" ? -d : Math.exp(d) - d - 1;
}

/** d k / d log π, for putting the KL term into the loss. */
export function klGradient(logp: number, refLogp: number, estimator: KlEstimator): number {
  return estimator === "k1" ? 1 : 1 - Math.exp(refLogp - logp);
}

export class KlController {
  beta: number;
  private readonly target: number | null;
  private readonly horizon: number;

  constructor(beta: number, target: number | null, horizon: number) {
    this.beta = beta;
    this.target = target;
    this.horizon = horizon;
  }

  /** After a batch of `n` samples whose mean KL per token was `kl`. */
  update(kl: number, n: number): void {
    if (this.target === null || !Number.isFinite(kl)) return;
    const e = Math.max(-0.2, Math.min(0.2, kl / this.target - 1));
    this.beta *= 1 + (e * n) / this.horizon;
  }
}
