/**
 * Optimizers over flat parameter buffers: AdamW (decoupled weight decay, as torch.optim.AdamW) and SGD (with
 * optional momentum; weight decay added to the gradient, as torch.optim.SGD). Gradient clipping by global norm and
 * learning-rate schedules. Moments share each group's layout, so a step is a loop over a few flat arrays.
 */
import type { Kernels } from "./kernels/index.ts";
import { defaultKernels } from "./kernels/select.ts";
import { f32 } from "./tensor.ts";

export interface ParamGroup {
  name: string;
  params: Float32Array;
  grad: Float32Array; // same length as params
  decay: boolean; // whether weight decay applies (not to norms, by convention)
}

export interface OptimizerConfig {
  kind: "adamw" | "sgd";
  beta1: number; // AdamW β1, or SGD momentum (0 = plain SGD)
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_OPTIMIZER: OptimizerConfig = { kind: "adamw", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

export interface OptimizerState {
  step: number;
  moments: { name: string; data: Float32Array }[];
}

export class Optimizer {
  readonly config: OptimizerConfig;
  readonly groups: ParamGroup[];
  readonly kernels: Kernels; // AdamW's update loop
  step = 0;
  private m: Float32Array[];
  private v: Float32Array[];

  constructor(config: OptimizerConfig, groups: ParamGroup[], kernels: Kernels = defaultKernels()) {
    this.config = config;
    this.groups = groups;
    this.kernels = kernels;
    const needM = config.kind === "adamw" || config.beta1 > 0;
    this.m = groups.map((g) => (needM ? f32(g.params.length) : new Float32Array(0)));
    this.v = groups.map((g) => (config.kind === "adamw" ? f32(g.params.length) : new Float32Array(0)));
  }

  /** Applies one update with learning rate `lr` from the gradients in the groups (which it does not clear). */
  update(lr: number): void {
    this.step++;
    const { kind, beta1, beta2, eps, weightDecay } = this.config;
    this.groups.forEach((g, gi) => {
      const p = g.params,
        grad = g.grad,
        m = this.m[gi],
        v = this.v[gi];
      const wd = g.decay ? weightDecay : 0;
      if (kind === "adamw") {
        const bc1 = 1 - beta1 ** this.step;
        const bc2 = 1 - beta2 ** this.step;
        this.kernels.adamwUpdate(p, grad, m, v, p.length, lr, beta1, beta2, eps, wd, lr / bc1, Math.sqrt(bc2));
      } else {
        for (let i = 0; i < p.length; i++) {
          let d = grad[i] + wd * p[i];
          if (beta1 > 0) {
            m[i] = this.step === 1 ? d : beta1 * m[i] + d;
            d = m[i];
          }
          p[i] -= lr * d;
        }
      }
    });
  }

  zeroGrad(): void {
    for (const g of this.groups) g.grad.fill(0);
  }

  exportState(): OptimizerState {
    const moments: { name: string; data: Float32Array }[] = [];
    this.groups.forEach((g, i) => {
      if (this.m[i].length) moments.push({ name: `${g.name}.m`, data: this.m[i] });
      if (this.v[i].length) moments.push({ name: `${g.name}.v`, data: this.v[i] });
    });
    return { step: this.step, moments };
  }

  importState(state: OptimizerState): void {
    const byName = new Map(state.moments.map((x) => [x.name, x.data]));
    this.groups.forEach((g, i) => {
      for (const [suffix, dst] of [
        ["m", this.m[i]],
        ["v", this.v[i]],
      ] as const) {
        if (!dst.length) continue;
        const src = byName.get(`${g.name}.${suffix}`);
        if (!src || src.length !== dst.length) throw new Error(`optimizer state for ${g.name}.${suffix} is missing or has the wrong size`);
        dst.set(src);
      }
    });
    this.step = state.step;
  }
}

/** Global L2 norm of all gradients; scales them down to `maxNorm` when above (maxNorm 0 = off). Returns the norm before. */
export function clipGradNorm(groups: readonly ParamGroup[], maxNorm: number): number {
  let ss = 0;
  for (const g of groups) for (let i = 0; i < g.grad.length; i++) ss += g.grad[i] * g.grad[i];
  const norm = Math.sqrt(ss);
  if (maxNorm > 0 && norm > maxNorm) {
    const k = maxNorm / (norm + 1e-6);
    for (const g of groups) for (let i = 0; i < g.grad.length; i++) g.grad[i] *= k;
  }
  return norm;
}

export type Schedule = { kind: "constant"; warmup?: number } | { kind: "cosine"; warmup: number; total: number; minRatio?: number };

/**
 * Learning rate at update `step` (0-based): linear warm-up lr·(step+1)/warmup, then constant, or cosine decay from
 * lr to lr·minRatio at `total`.
 */
export function learningRate(base: number, s: Schedule, step: number): number {
  const warmup = s.warmup ?? 0;
  if (step < warmup) return (base * (step + 1)) / warmup;
  if (s.kind === "constant") return base;
  const span = Math.max(1, s.total - warmup);
  const progress = Math.min(1, (step - warmup) / span);
  const minRatio = s.minRatio ?? 0;
  return base * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
