/**
 * The backend seam. Everything above the engine (environment, RL, evaluation, server) talks to this async,
 * batch-oriented interface and names adapters by string, so that a GPU backend for models a CPU cannot train can
 * take the place of the CPU one. Random draws come in as seeds chosen by the caller's RNG.
 */
import { Rng } from "../util/rng.ts";
import { packRows } from "./batch.ts";
import type { ModelConfig } from "./config.ts";
import { type GenerationRequest, type GenerationResult, generate } from "./generate.ts";
import { type Adapter, type LoraConfig, createAdapter, enableAdapterGrad, initAdapterWeights } from "./lora.ts";
import { type ObjectiveResult, objective } from "./objective.ts";
import { type OptimizerConfig, type OptimizerState, Optimizer, clipGradNorm } from "./optim.ts";
import { adapterGroup } from "./param-groups.ts";
import { type ScoreResult, scoreRows } from "./score.ts";
import type { Transformer } from "./transformer.ts";

export interface SampleRequest extends Omit<GenerationRequest, "adapter"> {
  adapter: string | null;
}

export interface ScoreRequest {
  tokens: ArrayLike<number>;
  adapter: string | null;
  from?: number; // first scored token (default 1)
  temperature?: number; // log-probs under softmax(logits / temperature) (default 1)
}

export interface TrainRow {
  tokens: ArrayLike<number>;
  adapter: string | null;
  weights: ArrayLike<number>;
  entropyWeights?: ArrayLike<number>;
  from?: number;
  temperature?: number; // the policy is softmax(logits / temperature) (default 1)
}

export interface Backend {
  readonly config: ModelConfig;
  /** Generates for every request; request i draws from seed `seeds[i]`. */
  sample(requests: readonly SampleRequest[], seeds: readonly number[], decode?: (row: number, ids: number[]) => string): Promise<GenerationResult[]>;
  /** Log-probabilities of the tokens of each request. */
  score(requests: readonly ScoreRequest[]): Promise<ScoreResult[]>;
  /** Final hidden state (after the last norm) of each sequence's last token. */
  lastHidden(requests: readonly { tokens: ArrayLike<number>; adapter: string | null }[]): Promise<Float32Array[]>;
  /** The weighted objective of objective.ts: accumulates gradients into the named adapters. */
  backward(rows: readonly TrainRow[], normaliser: number): Promise<ObjectiveResult>;

  /** A new trainable adapter, initialised as PEFT does from `seed`, with its optimizer. */
  createAdapter(name: string, lora: LoraConfig, seed: number, optimizer: OptimizerConfig): void;
  /** Clears the gradients of the named adapters. */
  zeroGrad(names: readonly string[]): void;
  /** Clips the named adapters' gradients to a global norm (0 = off) and returns the norm before clipping. */
  clipGradNorm(names: readonly string[], maxNorm: number): number;
  /** One optimizer update of each named adapter. */
  step(names: readonly string[], lr: number): void;
  /** An adapter's weights by PEFT tensor name, and its optimizer state (for checkpoints and saving). */
  exportAdapter(name: string): { adapter: Adapter; optimizer: OptimizerState | null };
  importAdapter(name: string, weights: Float32Array, optimizer: OptimizerState | null): void;
}

/** Token budget of one forward pass when scoring (bounds activation memory). */
const SCORE_TOKENS_PER_PASS = 16384;

/** The in-process CPU backend: a Transformer, a table of named adapters and their optimizers. */
export class CpuBackend implements Backend {
  readonly model: Transformer;
  readonly adapters = new Map<string, Adapter>();
  private readonly optimizers = new Map<string, Optimizer>();

  constructor(model: Transformer) {
    this.model = model;
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  addAdapter(adapter: Adapter): void {
    this.adapters.set(adapter.name, adapter);
  }

  adapter(name: string | null): Adapter | null {
    if (name === null) return null;
    const a = this.adapters.get(name);
    if (!a) throw new Error(`no adapter named ${name} (have: ${[...this.adapters.keys()].join(", ") || "none"})`);
    return a;
  }

  async sample(requests: readonly SampleRequest[], seeds: readonly number[], decode?: (row: number, ids: number[]) => string): Promise<GenerationResult[]> {
    // rows sorted by adapter, so that each adapter's rows form one segment of the batch
    const order = requests.map((_, i) => i).sort((a, b) => String(requests[a].adapter).localeCompare(String(requests[b].adapter)) || a - b);
    const results = generate(this.model, order.map((i) => ({ ...requests[i], adapter: this.adapter(requests[i].adapter) })), {
      rng: new Rng(0),
      rowRngs: order.map((i) => new Rng(seeds[i])),
      decode: decode ? (ids, row) => decode(order[row], ids) : undefined,
    });
    const out: GenerationResult[] = new Array(requests.length);
    order.forEach((i, k) => (out[i] = results[k]));
    return out;
  }

  async score(requests: readonly ScoreRequest[]): Promise<ScoreResult[]> {
    const out: ScoreResult[] = [];
    for (const [start, end] of chunks(requests)) {
      out.push(...scoreRows(this.model, requests.slice(start, end).map((r) => ({ tokens: r.tokens, adapter: this.adapter(r.adapter), from: r.from, temperature: r.temperature }))));
    }
    return out;
  }

  async lastHidden(requests: readonly { tokens: ArrayLike<number>; adapter: string | null }[]): Promise<Float32Array[]> {
    const C = this.model.config.dim;
    const out: Float32Array[] = [];
    for (const [start, end] of chunks(requests)) {
      const packed = packRows(requests.slice(start, end).map((r) => ({ tokens: r.tokens, adapter: this.adapter(r.adapter) })), this.model.config.vocabSize);
      const { hidden } = this.model.forward(packed, false);
      for (const r of packed.rows) out.push(hidden.slice((r.start + r.len - 1) * C, (r.start + r.len) * C));
    }
    return out;
  }

  async backward(rows: readonly TrainRow[], normaliser: number): Promise<ObjectiveResult> {
    return objective(this.model, rows.map((r) => ({ ...r, adapter: this.adapter(r.adapter) })), normaliser);
  }

  createAdapter(name: string, lora: LoraConfig, seed: number, optimizer: OptimizerConfig): void {
    const a = createAdapter(name, this.model.config, lora);
    initAdapterWeights(a, new Rng(seed));
    enableAdapterGrad(a, this.model.config);
    this.adapters.set(name, a);
    this.optimizers.set(name, new Optimizer(optimizer, [adapterGroup(a)]));
  }

  private optimizer(name: string): Optimizer {
    const o = this.optimizers.get(name);
    if (!o) throw new Error(`adapter ${name} has no optimizer`);
    return o;
  }

  zeroGrad(names: readonly string[]): void {
    for (const n of names) this.optimizer(n).zeroGrad();
  }

  clipGradNorm(names: readonly string[], maxNorm: number): number {
    return clipGradNorm(names.flatMap((n) => this.optimizer(n).groups), maxNorm);
  }

  step(names: readonly string[], lr: number): void {
    for (const n of names) this.optimizer(n).update(lr);
  }

  exportAdapter(name: string): { adapter: Adapter; optimizer: OptimizerState | null } {
    return { adapter: this.adapter(name)!, optimizer: this.optimizers.get(name)?.exportState() ?? null };
  }

  importAdapter(name: string, weights: Float32Array, optimizer: OptimizerState | null): void {
    const a = this.adapter(name)!;
    if (weights.length !== a.weights.data.length) throw new Error(`adapter ${name}: ${weights.length} weights for a layout of ${a.weights.data.length}`);
    a.weights.data.set(weights);
    if (optimizer) this.optimizer(name).importState(optimizer);
  }
}

/** [start, end) ranges of requests that fit one forward pass. */
function chunks(requests: readonly { tokens: ArrayLike<number> }[]): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  while (start < requests.length) {
    let end = start, tokens = 0;
    while (end < requests.length && (end === start || tokens + requests[end].tokens.length <= SCORE_TOKENS_PER_PASS)) tokens += requests[end++].tokens.length;
    out.push([start, end]);
    start = end;
  }
  return out;
}
