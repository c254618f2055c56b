/**
 * The colloquy side of each benchmark case, built to compute what bench/torch_ref.py computes: a training step
 * (forward + backward + AdamW) with LoRA rank 8 on all seven linears and the base frozen, or with every parameter
 * trainable; batched sampling with a KV cache per row; scoring. Weights are random (speed depends on shapes only)
 * unless a loaded model is given.
 */
import { adapterState } from "../src/engine/adapter-state.ts";
import type { Backend } from "../src/engine/backend.ts";
import type { ModelConfig } from "../src/engine/config.ts";
import type { Kernels } from "../src/engine/kernels/index.ts";
import { defaultKernels } from "../src/engine/kernels/select.ts";
import { generate } from "../src/engine/generate.ts";
import { initBaseWeights } from "../src/engine/init.ts";
import { type Adapter, createAdapter, enableAdapterGrad, initAdapterWeights } from "../src/engine/lora.ts";
import { type ObjectiveRow, objective } from "../src/engine/objective.ts";
import { DEFAULT_OPTIMIZER, Optimizer } from "../src/engine/optim.ts";
import { adapterGroup, baseGroups } from "../src/engine/param-groups.ts";
import type { BaseWeights } from "../src/engine/params.ts";
import { scoreRows } from "../src/engine/score.ts";
import { Transformer } from "../src/engine/transformer.ts";
import { LINEAR_KINDS } from "../src/engine/params.ts";
import { Rng } from "../src/util/rng.ts";

export type CaseKind = "train_lora" | "train_full" | "sample" | "score";

export interface BenchCase {
  id: string; // JSON key stem, e.g. "train_lora" (shape a) or "train_lora_b"
  kind: CaseKind;
  shape: "a" | "b";
  label: string;
  config: ModelConfig;
  weights?: BaseWeights; // a loaded model; random weights otherwise
  batch: number; // rows
  seq: number; // tokens per row (training, scoring)
  prompt: number; // prompt tokens per row (sampling)
  newTokens: number; // generated tokens per row (sampling)
  rank: number; // LoRA rank (0 for full-parameter training)
  alpha: number;
  seed: number;
}

export interface Timing {
  tokens: number; // per run
  median_s: number;
  tokens_per_s: number;
  times_s: number[];
}

export function timing(tokens: number, seconds: number[]): Timing {
  const times = [...seconds].sort((a, b) => a - b);
  const median = times[times.length >> 1];
  return { tokens, median_s: median, tokens_per_s: tokens / median, times_s: times };
}

/** Seconds of one run. */
export function timeOnce(run: () => void): number {
  const t = performance.now();
  run();
  return (performance.now() - t) / 1000;
}

function model(c: BenchCase, rng: Rng, kernels: Kernels): Transformer {
  const m = new Transformer(c.config, c.weights, kernels);
  if (!c.weights) initBaseWeights(m.weights, c.config, rng);
  return m;
}

function adapter(c: BenchCase, rng: Rng): Adapter {
  const a = createAdapter("bench", c.config, { rank: c.rank, alpha: c.alpha, rslora: false, targets: [...LINEAR_KINDS] });
  initAdapterWeights(a, rng);
  for (const layer of a.weights.layers)
    for (const lin of Object.values(layer)) for (let i = 0; i < lin!.B.length; i++) lin!.B[i] = 0.01 * rng.normal();
  return a;
}

function randomRows(rng: Rng, rows: number, len: number, vocab: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: len }, () => rng.int(vocab)));
}

/** The case's unit of work (one training step, one sampling batch, one scoring batch) and its token count. */
export function colloquyRun(c: BenchCase, kernels: Kernels = defaultKernels()): { run: () => void; tokens: number } {
  const rng = new Rng(c.seed);
  const m = model(c, rng, kernels);
  const V = c.config.vocabSize;
  if (c.kind === "train_lora" || c.kind === "train_full") {
    const full = c.kind === "train_full";
    const a = full ? null : adapter(c, rng);
    if (a) enableAdapterGrad(a, c.config);
    else m.enableGrad();
    const opt = new Optimizer({ ...DEFAULT_OPTIMIZER }, a ? [adapterGroup(a)] : baseGroups(m), kernels);
    const rows: ObjectiveRow[] = randomRows(rng, c.batch, c.seq, V).map((tokens) => ({
      tokens,
      adapter: a,
      weights: tokens.map((_, i) => (i > 0 ? 1 : 0)),
    }));
    const targets = c.batch * (c.seq - 1);
    return {
      tokens: c.batch * c.seq,
      run: () => {
        opt.zeroGrad();
        objective(m, rows, targets); // mean cross-entropy over every target, as transformers' labels=input_ids
        opt.update(1e-4);
      },
    };
  }
  const a = adapter(c, rng);
  if (c.kind === "sample") {
    const prompts = randomRows(rng, c.batch, c.prompt, V);
    let seed = c.seed;
    return {
      tokens: c.batch * c.newTokens,
      run: () => {
        generate(
          m,
          prompts.map((prompt) => ({ prompt, adapter: a, maxTokens: c.newTokens, ignoreEos: true })),
          { rng: new Rng(seed++) },
        );
      },
    };
  }
  const rows = randomRows(rng, c.batch, c.seq, V);
  return {
    tokens: c.batch * c.seq,
    run: () =>
      void scoreRows(
        m,
        rows.map((tokens) => ({ tokens, adapter: a })),
      ),
  };
}

/**
 * The same unit of work through the Backend seam (e.g. the torch backend's worker), on the same weights, adapter and
 * rows as colloquyRun's. Full-parameter training is not a seam call: null for that case.
 */
export async function backendRun(
  c: BenchCase,
  open: (config: ModelConfig, weights: BaseWeights) => Promise<Backend>,
): Promise<{ run: () => Promise<void>; tokens: number; backend: Backend } | null> {
  if (c.kind === "train_full") return null;
  const rng = new Rng(c.seed);
  const m = model(c, rng, defaultKernels());
  const a = adapter(c, rng);
  const backend = await open(c.config, m.weights);
  const state = adapterState(a, null);
  const V = c.config.vocabSize;
  if (c.kind === "train_lora") {
    await backend.createAdapter("bench", state.lora, c.seed, { ...DEFAULT_OPTIMIZER });
    await backend.importAdapter("bench", state);
    const rows = randomRows(rng, c.batch, c.seq, V).map((tokens) => ({
      tokens,
      adapter: "bench",
      weights: tokens.map((_, i) => (i > 0 ? 1 : 0)),
    }));
    const targets = c.batch * (c.seq - 1);
    return {
      backend,
      tokens: c.batch * c.seq,
      run: async () => {
        await backend.zeroGrad(["bench"]);
        await backend.backward(rows, targets);
        await backend.step(["bench"], 1e-4);
      },
    };
  }
  await backend.importAdapter("bench", state);
  if (c.kind === "sample") {
    const prompts = randomRows(rng, c.batch, c.prompt, V);
    let seed = c.seed;
    return {
      backend,
      tokens: c.batch * c.newTokens,
      run: async () => {
        const requests = prompts.map((prompt) => ({ prompt, adapter: "bench", maxTokens: c.newTokens, ignoreEos: true }));
        await backend.sample(
          requests,
          requests.map(() => seed++),
        );
      },
    };
  }
  const rows = randomRows(rng, c.batch, c.seq, V).map((tokens) => ({ tokens, adapter: "bench" }));
  return { backend, tokens: c.batch * c.seq, run: async () => void (await backend.score(rows)) };
}

/** Seconds of one asynchronous run. */
export async function timeOnceAsync(run: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await run();
  return (performance.now() - t) / 1000;
}
