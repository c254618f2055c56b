/**
 * The LLaMA-family decoder: token embedding → L decoder layers → final RMSNorm → (head.ts) LM head.
 * `forward` returns the final normalised hidden states of a packed batch; with a tape it keeps every activation
 * that `backward` needs. `backward` accumulates into the adapters' gradient buffers and, when the base model is
 * trainable (`enableGrad`), into `grad`. One `zeroGrad` clears them. Activations live in the model's workspace:
 * a tape's buffers go back to it as `backward` finishes with them, so a tape serves exactly one backward.
 */
import { type BlockActs, type RowPlan, allocBlockActs, blockBackward, blockForward, planRows, releaseBlockActs } from "./block.ts";
import type { Packed } from "./batch.ts";
import type { ModelConfig } from "./config.ts";
import type { Kernels } from "./kernels/index.ts";
import { type RopeTables, buildRopeTables, ropeInvFreq } from "./kernels/rope.ts";
import { defaultKernels } from "./kernels/select.ts";
import { type BaseWeights, LINEAR_KINDS, type LinearKind, allocBase, linearShape } from "./params.ts";
import { f32 } from "./tensor.ts";
import { Workspace } from "./workspace.ts";

export interface ModelTape {
  packed: Packed;
  plan: RowPlan;
  blocks: BlockActs[]; // (L)
  xFinal: Float32Array; // (N, C) residual stream before the final norm
  rstdF: Float32Array; // (N)
  used: boolean; // set by backward, which hands the buffers back
}

export interface ForwardResult {
  hidden: Float32Array; // (N, C) after the final norm: the LM head's input (the engine's own callers give it back to the workspace)
  tape: ModelTape | null;
}

/** Positions the rotary tables cover when a model is built; `ensurePositions` grows them when a batch reaches further. */
export const ROPE_POSITIONS_UP_FRONT = 4096;

export class Transformer {
  readonly config: ModelConfig;
  readonly weights: BaseWeights;
  grad: BaseWeights | null = null;
  kernels: Kernels;
  readonly workspace = new Workspace(); // activation buffers, reused across calls
  rope: RopeTables;
  readonly linearShapes: Record<LinearKind, [out: number, inp: number]>;
  private readonly invFreq: Float64Array;

  constructor(config: ModelConfig, weights?: BaseWeights, kernels: Kernels = defaultKernels()) {
    if (config.headDim % 2 !== 0) throw new Error(`head size ${config.headDim} must be even for rotary embedding`);
    if (config.nHeads % config.nKvHeads !== 0) throw new Error(`${config.nHeads} heads are not a multiple of ${config.nKvHeads} kv heads`);
    this.config = config;
    this.weights = weights ?? allocBase(config);
    this.kernels = kernels;
    this.invFreq = ropeInvFreq(config.headDim, config.ropeTheta, config.ropeScaling);
    this.rope = buildRopeTables(this.invFreq, Math.min(config.maxSeqLen, ROPE_POSITIONS_UP_FRONT)); // a context of 1e7 costs nothing until used
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
    const plan = planRows(packed, c.nHeads, c.nLayers);

    const x = this.workspace.take(N * C); // (N, C) residual stream
    this.kernels.gatherRows(x, this.weights.embed, tokens, N, C);

    const blocks: BlockActs[] = [];
    const scratch = keepTape ? null : allocBlockActs(this, packed, plan, false);
    for (let l = 0; l < c.nLayers; l++) {
      const acts = scratch ?? allocBlockActs(this, packed, plan, true);
      blockForward(this, l, x, packed, plan, acts);
      if (keepTape) blocks.push(acts);
    }
    for (const r of packed.rows) if (r.cache) r.cache.length = r.pos0 + r.len;

    const hidden = this.workspace.take(N * C); // the caller's (it may hand it back to the workspace when done)
    const rstdF = f32(N);
    this.kernels.rmsnormForward(hidden, rstdF, x, this.weights.finalNorm, N, C, c.normEps);
    if (!keepTape) {
      releaseBlockActs(this, scratch!);
      this.workspace.give(x);
      return { hidden, tape: null };
    }
    return { hidden, tape: { packed, plan, blocks, xFinal: x, rstdF, used: false } };
  }

  /** dHidden (N, C): gradient of the loss w.r.t. `hidden` of the forward that made `tape` (once per tape). */
  backward(tape: ModelTape, dHidden: Float32Array): void {
    if (tape.used) throw new Error("this tape has already been through backward (a tape serves one backward)");
    tape.used = true;
    const c = this.config;
    const { packed, plan } = tape;
    const { N, tokens } = packed;
    const C = c.dim;
    const G = this.grad;
    const dx = this.workspace.takeZeroed(N * C); // (N, C)
    this.kernels.rmsnormBackward(dx, G?.finalNorm ?? null, dHidden, tape.xFinal, tape.rstdF, this.weights.finalNorm, N, C);
    this.workspace.give(tape.xFinal);
    for (let l = c.nLayers - 1; l >= 0; l--) {
      blockBackward(this, l, dx, packed, plan, tape.blocks[l]);
      releaseBlockActs(this, tape.blocks[l]);
    }
    if (G) this.kernels.scatterAddRows(G.embed, dx, tokens, N, C);
    this.workspace.give(dx);
  }

  zeroGrad(): void {
    this.grad?.data.fill(0);
  }
}
