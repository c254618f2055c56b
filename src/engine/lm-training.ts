/**
 * Language-model training loops on top of the objective: next-token cross-entropy (w = 1 on every target,
 * normalised by the number of targets, exactly transformers' `labels=input_ids` loss), an optimizer step with
 * clipping and a schedule. Used by `finetune` (an adapter) and `pretrain` (every base parameter).
 */
import type { Rng } from "../util/rng.ts";
import type { Backend } from "./backend.ts";
import type { Adapter } from "./lora.ts";
import { objective } from "./objective.ts";
import { type Optimizer, type Schedule, clipGradNorm, learningRate } from "./optim.ts";
import { scoreRows } from "./score.ts";
import type { Transformer } from "./transformer.ts";

/** The objective's rows for next-token cross-entropy: weight 1 on every target (positions ≥ 1). */
function nextTokenRows<A>(rows: readonly ArrayLike<number>[], adapter: A): { tokens: ArrayLike<number>; adapter: A; weights: number[] }[] {
  return rows.map((tokens) => ({ tokens, adapter, weights: Array.from(tokens, (_, i) => (i > 0 ? 1 : 0)) }));
}

/** Predicted tokens over all rows (each row's first token has no prefix). */
function targetCount(rows: readonly ArrayLike<number>[]): number {
  return rows.reduce((s, r) => s + Math.max(0, r.length - 1), 0);
}

/** Mean next-token cross-entropy over all rows and positions; accumulates gradients. */
export function crossEntropy(m: Transformer, rows: readonly ArrayLike<number>[], adapter: Adapter | null, withGrad = true): number {
  if (!withGrad) return -evalLogprobSum(m, rows, adapter) / targetCount(rows);
  return objective(m, nextTokenRows(rows, adapter), targetCount(rows)).loss;
}

/** Σ log p over every target of every row, without gradients (for validation). */
export function evalLogprobSum(m: Transformer, rows: readonly ArrayLike<number>[], adapter: Adapter | null): number {
  let s = 0;
  for (const r of scoreRows(
    m,
    rows.map((tokens) => ({ tokens, adapter })),
  ))
    for (let t = 1; t < r.logprobs.length; t++) s += r.logprobs[t];
  return s;
}

/** Random windows of `seqLen` tokens from a token stream, `batchSize` per batch. */
export function windowSampler(stream: Int32Array, seqLen: number, batchSize: number, rng: Rng): () => Int32Array[] {
  if (stream.length < seqLen) throw new Error(`the data has ${stream.length} tokens, fewer than one window of ${seqLen}`);
  return () =>
    Array.from({ length: batchSize }, () => {
      const start = rng.int(stream.length - seqLen + 1);
      return stream.subarray(start, start + seqLen);
    });
}

/**
 * Whole documents as rows (each cut to `maxLen` tokens), drawn at random until a batch holds `tokensPerBatch`
 * tokens. A row never mixes documents, so attention only ever sees the text it belongs to.
 */
export function documentSampler(docs: readonly Int32Array[], maxLen: number, tokensPerBatch: number, rng: Rng): () => Int32Array[] {
  const usable = docs.filter((d) => d.length >= 2);
  if (usable.length === 0) throw new Error("no document has two tokens to train on");
  return () => {
    const rows: Int32Array[] = [];
    let tokens = 0;
    while (tokens < tokensPerBatch) {
      const d = usable[rng.int(usable.length)];
      const row = d.length > maxLen ? d.subarray(0, maxLen) : d;
      rows.push(row);
      tokens += row.length;
    }
    return rows;
  };
}

export interface TrainLoop {
  model: Transformer;
  adapter: Adapter | null; // null: train the base model's parameters
  optimizer: Optimizer;
  lr: number;
  schedule: Schedule;
  maxGradNorm: number; // 0 = off
  steps: number;
  nextBatch: (step: number) => readonly ArrayLike<number>[];
  onStep?: (step: number, info: { loss: number; lr: number; gradNorm: number; tokens: number }) => void;
}

/** Runs `steps` optimizer updates; returns the loss of each (before its update). */
export function trainLoop(t: TrainLoop): number[] {
  const losses: number[] = [];
  for (let step = 0; step < t.steps; step++) {
    const rows = t.nextBatch(step);
    t.optimizer.zeroGrad();
    const loss = crossEntropy(t.model, rows, t.adapter);
    const gradNorm = clipGradNorm(t.optimizer.groups, t.maxGradNorm);
    const lr = learningRate(t.lr, t.schedule, step);
    t.optimizer.update(lr);
    losses.push(loss);
    t.onStep?.(step, { loss, lr, gradNorm, tokens: rows.reduce((s, r) => s + r.length, 0) });
  }
  return losses;
}

export interface AdapterTrainLoop {
  backend: Backend;
  adapter: string; // a trainable adapter on the backend (createAdapter)
  lr: number;
  schedule: Schedule;
  maxGradNorm: number; // 0 = off
  steps: number;
  nextBatch: (step: number) => readonly ArrayLike<number>[];
  onStep?: (step: number, info: { loss: number; lr: number; gradNorm: number; tokens: number }) => void;
}

/** trainLoop through the Backend seam, for an adapter on any backend: the same loss, clipping, schedule and steps. */
export async function trainAdapter(t: AdapterTrainLoop): Promise<number[]> {
  const losses: number[] = [];
  const names = [t.adapter];
  for (let step = 0; step < t.steps; step++) {
    const rows = t.nextBatch(step);
    await t.backend.zeroGrad(names);
    const { loss } = await t.backend.backward(nextTokenRows(rows, t.adapter), targetCount(rows));
    const gradNorm = await t.backend.clipGradNorm(names, t.maxGradNorm);
    const lr = learningRate(t.lr, t.schedule, step);
    await t.backend.step(names, lr);
    losses.push(loss);
    t.onStep?.(step, { loss, lr, gradNorm, tokens: rows.reduce((s, r) => s + r.length, 0) });
  }
  return losses;
}
