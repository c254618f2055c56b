/**
 * The value head of A2C and PPO: V(prompt) = w·h + b on the final hidden state h of the prompt's last token.
 * It is detached from the adapter: its loss trains w and b only (Adam), so the policy's gradients are the
 * policy-gradient ones alone. PPO's clipped value loss keeps V near its old value.
 */
export class ValueHead {
  readonly w: Float32Array; // (C)
  b = 0;
  private mw: Float32Array;
  private vw: Float32Array;
  private mb = 0;
  private vb = 0;
  private t = 0;

  constructor(dim: number) {
    this.w = new Float32Array(dim);
    this.mw = new Float32Array(dim);
    this.vw = new Float32Array(dim);
  }

  predict(h: Float32Array): number {
    let s = this.b;
    for (let i = 0; i < h.length; i++) s += this.w[i] * h[i];
    return s;
  }

  /**
   * One Adam step on the mean of ½(V − target)² (or PPO's clipped form when `oldValues` and clip > 0 are given:
   * ½ max((V − target)², (clip(V) − target)²)). Returns that loss, the one optimised, before the step.
   */
  fit(hs: readonly Float32Array[], targets: readonly number[], lr: number, oldValues?: readonly number[], clip = 0): number {
    const n = hs.length;
    if (n === 0) return 0;
    const gw = new Float64Array(this.w.length);
    let gb = 0,
      loss = 0;
    hs.forEach((h, k) => {
      const v = this.predict(h);
      let err = v - targets[k]; // d loss / d V
      let lossErr = err;
      if (oldValues && clip > 0) {
        const clipped = oldValues[k] + Math.max(-clip, Math.min(clip, v - oldValues[k]));
        const errClipped = clipped - targets[k];
        if (errClipped * errClipped > err * err) {
          // max(unclipped, clipped) is the clipped term: its gradient is zero where V was clipped
          lossErr = errClipped;
          err = v === clipped ? errClipped : 0;
        }
      }
      loss += (0.5 * lossErr * lossErr) / n;
      for (let i = 0; i < h.length; i++) gw[i] += (err * h[i]) / n;
      gb += err / n;
    });
    this.t++;
    const b1 = 0.9,
      b2 = 0.999,
      eps = 1e-8;
    const c1 = 1 - b1 ** this.t,
      c2 = 1 - b2 ** this.t;
    for (let i = 0; i < this.w.length; i++) {
      this.mw[i] = b1 * this.mw[i] + (1 - b1) * gw[i];
      this.vw[i] = b2 * this.vw[i] + (1 - b2) * gw[i] * gw[i];
      this.w[i] -= (lr * this.mw[i]) / c1 / (Math.sqrt(this.vw[i] / c2) + eps);
    }
    this.mb = b1 * this.mb + (1 - b1) * gb;
    this.vb = b2 * this.vb + (1 - b2) * gb * gb;
    this.b -= (lr * this.mb) / c1 / (Math.sqrt(this.vb / c2) + eps);
    return loss;
  }

  exportState(): { w: number[]; b: number; mw: number[]; vw: number[]; mb: number; vb: number; t: number } {
    return { w: Array.from(this.w), b: this.b, mw: Array.from(this.mw), vw: Array.from(this.vw), mb: this.mb, vb: this.vb, t: this.t };
  }

  importState(s: ReturnType<ValueHead["exportState"]>): void {
    this.w.set(s.w);
    this.mw.set(s.mw);
    this.vw.set(s.vw);
    Object.assign(this, { b: s.b, mb: s.mb, vb: s.vb, t: s.t });
  }
}
