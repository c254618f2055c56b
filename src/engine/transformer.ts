/**
 * The LLaMA-family decoder: token embedding → L decoder layers → final RMSNorm → (head.ts) LM head.
 * `forward` returns the final normalised hidden states of a packed batch; with a tape it keeps every activation
 * that `backward` needs. `backward` accumulates into the adapters' gradient buffers and, when the base model is
 * trainable (`enableGrad`), into `grad`. One `zeroGrad` clears them.
 */
import { type BlockActs, allocBlockActs, blockBackward, blockForward } from "./block.ts";
import type { Packed } from "./batch.ts";
import type { ModelConfig } from "./config.ts";
import { type Kernels, referenceKernels } from "./kernels/index.ts";
import { type RopeTables, buildRopeTables, ropeInvFreq } from "./kernels/rope.ts";
import { type BaseWeights, LINEAR_KINDS, type LinearKind, allocBase, linearShape } from "./params.ts";
import { f32 } from "./tensor.ts";

export interface ModelTape {
  packed: Packed;
  blocks: BlockActs[]; // (L)
  xFinal: Float32Array; // (N, C) residual stream before the final norm
  rstdF: Float32Array; // (N)
}

export interface ForwardResult {
  hidden: Float32Array; // (N, C) after the final norm: the LM head's input
  tape: ModelTape | null;
}

export class Transformer {
  readonly config: ModelConfig;
  readonly weights: BaseWeights;
  grad: BaseWeights | null = null;
  kernels: Kernels;
  rope: RopeTables;
  readonly linearShapes: Record<LinearKind, [out: number, inp: number]>;
  private readonly invFreq: Float64Array;

  constructor(config: ModelConfig, weights?: BaseWeights, kernels: Kernels = referenceKernels) {
    if (config.headDim % 2 !== 0) throw new Error(`head size ${config.headDim} must be even for rotary embedding`);
    if (config.nHeads % config.nKvHeads !== 0) throw new Error(`${config.nHeads} heads are not a multiple of ${config.nKvHeads} kv heads`);
    this.config = config;
    this.weights = weights ?? allocBase(config);
    this.kernels = kernels;
    this.invFreq = ropeInvFreq(config.headDim, config.ropeTheta, config.ropeScaling);
    this.rope = buildRopeTables(this.invFreq, config.maxSeqLen);
    this.linearShapes = Object.fromEntries(LINEAR_KINDS.map((k) => [k, linearShape(config, k)])) as Record<LinearKind, [number, number]>;
  }

  /** Makes every base parameter trainable (pretraining): allocates `grad`, zeroed. */
  enableGrad(): void {
    if (!this.grad) this.grad = allocBase(this.config);
  }

  /** Makes sure rotary tables cover positions 0 .. n−1 (generation may run past the trained context). */
  ensurePositions(n: number): void {
    if (n > this.rope.positions) this.rope = buildRopeTables(this.invFreq, Math.max(n, 2 * this.rope.positions));
  }

  forward(packed: Packed, keepTape: boolean): ForwardResult {
    const c = this.config;
    const { N, tokens } = packed;
    const C = c.dim;
    const caches = new Set();
    let maxPos = 0;
    for (const r of packed.rows) {
      maxPos = Math.max(maxPos, r.pos0 + r.len);
      if (r.cache) {
        if (caches.has(r.cache)) throw new Error("two rows of one batch share a KV cache");
        caches.add(r.cache);
        if (keepTape) throw new Error("a training forward cannot continue a KV cache");
      }
    }
    this.ensurePositions(maxPos);

    const x = f32(N * C); // (N, C) residual stream
    for (let i = 0; i < N; i++) x.set(this.weights.embed.subarray(tokens[i] * C, (tokens[i] + 1) * C), i * C);

    const blocks: BlockActs[] = [];
    const scratch = keepTape ? null : allocBlockActs(this, packed, false);
    for (let l = 0; l < c.nLayers; l++) {
      const acts = scratch ?? allocBlockActs(this, packed, true);
      blockForward(this, l, x, packed, acts);
      if (keepTape) blocks.push(acts);
    }
    for (const r of packed.rows) if (r.cache) r.cache.length = r.pos0 + r.len;

    const hidden = f32(N * C);
    const rstdF = f32(N);
    this.kernels.rmsnormForward(hidden, rstdF, x, this.weights.finalNorm, N, C, c.normEps);
    return { hidden, tape: keepTape ? { packed, blocks, xFinal: x, rstdF } : null };
  }

  /** dHidden (N, C): gradient of the loss w.r.t. `hidden` of the forward that made `tape`. */
  backward(tape: ModelTape, dHidden: Float32Array): void {
    const c = this.config;
    const { packed } = tape;
    const { N, tokens } = packed;
    const C = c.dim;
    const G = this.grad;
    const dx = f32(N * C); // (N, C)
    this.kernels.rmsnormBackward(dx, G?.finalNorm ?? null, dHidden, tape.xFinal, tape.rstdF, this.weights.finalNorm, N, C);
    for (let l = c.nLayers - 1; l >= 0; l--) blockBackward(this, l, dx, packed, tape.blocks[l]);
    if (G) {
      for (let i = 0; i < N; i++) {
        const o = tokens[i] * C;
        for (let j = 0; j < C; j++) G.embed[o + j] += dx[i * C + j];
      }
    }
  }

  zeroGrad(): void {
    this.grad?.data.fill(0);
  }
}
