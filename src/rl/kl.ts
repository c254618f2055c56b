/**
 * KL to the base policy (the adapter switched off), per token, from the log-probs of the sampled tokens a ~ π:
 *   k1 = log π − log π_base            (unbiased, can be negative)
 *   k2 = ½ (log π − log π_base)²       (biased, never negative; low variance near π_base)
 *   k3 = exp(log π_base − log π) − (log π_base − log π) − 1   (unbiased, never negative; Schulman 2020)
 * `klEstimator` chooses the one that is measured (the `kl` metric, the adaptive controller) and, with klMode=reward,
 * subtracted from the reward: that keeps the default run's numbers as they were.
 *
 * With klMode=loss the term is differentiated, and there only k2 is right. The loss term is β k(a) on sampled
 * tokens, differentiated through log π(a) alone (the sample is held fixed), so its expected gradient is
 * E_π[k'(log π) ∇log π]:
 *   k1: k' = 1, and E_π[∇log π] = 0 — no gradient at all in expectation;
 *   k3: k' = 1 − π_base/π, giving Σ (π − π_base) ∇log π = ∇ KL(π_base ‖ π) — the other direction;
 *   k2: k' = log π − log π_base, giving E_π[log(π/π_base) ∇log π] = ∇ KL(π ‖ π_base), since Σ π ∇log π = 0.
 * So klMode=loss always takes k2's gradient (klLossWeight), whatever klEstimator measures: in expectation the
 * gradient of each token's exact KL(π(·|s) ‖ π_base(·|s)) over the vocabulary, the state s held fixed (GRPO's
 * per-token KL does the same). kl.test.ts checks the three against the exact KL on a small vocabulary.
 *
 * And the adaptive coefficient of Ziegler et al. (2019): β ← β (1 + K_β e), e = clip(KL/target − 1, ±0.2),
 * K_β = samples / horizon.
 */
export type KlEstimator = "k1" | "k2" | "k3";

export function klPerToken(logp: number, refLogp: number, estimator: KlEstimator): number {
  const d = refLogp - logp;
  return estimator === "k1" ? -d : estimator === "k2" ? 0.5 * d * d : Math.exp(d) - d - 1;
}

/** d k / d log π of each estimator. */
export function klGradient(logp: number, refLogp: number, estimator: KlEstimator): number {
  return estimator === "k1" ? 1 : estimator === "k2" ? logp - refLogp : 1 - Math.exp(refLogp - logp);
}

/**
 * klMode=loss: what the KL term adds to a sampled token's policy-gradient weight w (the loss is −Σ w log π), for
 * β·KL(π ‖ π_base): −β ρ (log π − log π_base), k2's gradient. ρ = π/π_behaviour is 1 on-policy; PPO's later
 * epochs score tokens sampled from the old policy and pass the ratio, so the expectation stays the one under π.
 */
export function klLossWeight(beta: number, logp: number, refLogp: number, ratio = 1): number {
  return -beta * ratio * klGradient(logp, refLogp, "k2");
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
