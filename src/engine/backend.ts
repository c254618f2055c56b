/**
 * The backend seam. Everything above the engine (environment, RL, evaluation, server) talks to this async,
 * batch-oriented interface and names adapters by string, so that a GPU backend for models a CPU cannot train can
 * take the place of the CPU one. Random draws come in as seeds chosen by the caller's RNG.
 */
import type { ModelConfig } from "./config.ts";
import { type GenerationRequest, type GenerationResult, generate } from "./generate.ts";
import type { Adapter } from "./lora.ts";
import { type ObjectiveResult, objective } from "./objective.ts";
import { type ScoreResult, scoreRows } from "./score.ts";
import type { Transformer } from "./transformer.ts";
import { Rng } from "../util/rng.ts";

export interface SampleRequest extends Omit<GenerationRequest, "adapter"> {
  adapter: string | null;
}

export interface ScoreRequest {
  tokens: ArrayLike<number>;
  adapter: string | null;
  from?: number; // first scored token (default 1)
}

export interface TrainRow {
  tokens: ArrayLike<number>;
  adapter: string | null;
  weights: ArrayLike<number>;
  entropyWeights?: ArrayLike<number>;
  from?: number;
}

export interface Backend {
  readonly config: ModelConfig;
  /** Generates for every request; request i draws from seed `seeds[i]`. */
  sample(requests: readonly SampleRequest[], seeds: readonly number[], decode?: (row: number, ids: number[]) => string): Promise<GenerationResult[]>;
  /** Log-probabilities of the tokens of each request. */
  score(requests: readonly ScoreRequest[]): Promise<ScoreResult[]>;
  /** The weighted objective of objective.ts: accumulates gradients into the named adapters. */
  backward(rows: readonly TrainRow[], normaliser: number): Promise<ObjectiveResult>;
}

/** Token budget of one forward pass when scoring (bounds activation memory). */
const SCORE_TOKENS_PER_PASS = 16384;

/** The in-process CPU backend: a Transformer and a table of named adapters. */
export class CpuBackend implements Backend {
  readonly model: Transformer;
  readonly adapters = new Map<string, Adapter>();

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
    // each row gets its own generator (generate() forks per row; here the caller's seed decides the stream)
    const out: GenerationResult[] = new Array(requests.length);
    const order = requests.map((_, i) => i).sort((a, b) => String(requests[a].adapter).localeCompare(String(requests[b].adapter)) || a - b);
    const rows = order.map((i) => ({ ...requests[i], adapter: this.adapter(requests[i].adapter) }));
    const results = generate(this.model, rows, {
      rng: new Rng(0),
      rowRngs: order.map((i) => new Rng(seeds[i])),
      decode: decode ? (ids, row) => decode(order[row!], ids) : undefined,
    });
    order.forEach((i, k) => (out[i] = results[k]));
    return out;
  }

  async score(requests: readonly ScoreRequest[]): Promise<ScoreResult[]> {
    const out: ScoreResult[] = [];
    let start = 0;
    while (start < requests.length) {
      let end = start, tokens = 0;
      while (end < requests.length && (end === start || tokens + requests[end].tokens.length <= SCORE_TOKENS_PER_PASS)) tokens += requests[end++].tokens.length;
      out.push(...scoreRows(this.model, requests.slice(start, end).map((r) => ({ tokens: r.tokens, adapter: this.adapter(r.adapter), from: r.from }))));
      start = end;
    }
    return out;
  }

  async backward(rows: readonly TrainRow[], normaliser: number): Promise<ObjectiveResult> {
    return objective(this.model, rows.map((r) => ({ ...r, adapter: this.adapter(r.adapter) })), normaliser);
  }
}
