/**
 * The backend seam. Everything above the engine (environment, RL, evaluation, server) talks to this async,
 * batch-oriented interface and names adapters by string, so that another backend (a GPU worker, e.g. PyTorch in
 * another process) can take the place of the in-process CPU one. This file is the whole contract: a new backend
 * implements `Backend` from what is written here. CpuBackend, below, is the reference implementation.
 *
 * Conventions, for every method:
 * - Shapes: T is a row's length in tokens, V the vocabulary, C the model's hidden size (`config.dim`), R a LoRA rank.
 *   Token ids are integers in 0..V−1. Position t of a row is its t-th token (0-based).
 * - Log-probabilities and entropies are in nats (natural log), computed in float64 from float32 logits.
 *   `log p(tokens[t])` means log softmax(logits / temperature)[tokens[t]] of the logits computed from tokens[<t].
 * - `from` is the index of the first scored (or predicted) token, 1 ≤ from ≤ T: token 0 has no prefix. Per-position
 *   arrays have length T and hold NaN before `from`.
 * - Adapters are named by string; `null` is the base model without adapter. One call may mix rows of different
 *   adapters and of the base model in any order (the CPU backend runs them as one batch, one segment per adapter).
 *   A name the backend does not hold rejects the whole call with an Error (nothing is computed); so does a
 *   malformed row (UserError, e.g. E_BAD_FROM, E_BAD_TEMPERATURE, E_BAD_WEIGHTS, E_EMPTY_PROMPT).
 * - Results come back in the order of the requests: result i belongs to request i, whatever order the backend
 *   runs them in.
 * - Randomness: the caller draws one seed (a u32) per sampled row from its own seeded RNG; a row's draws come only
 *   from its seed. The same request with the same seed gives the same ids on the same backend; on the CPU backend
 *   a row's ids do not depend on the other rows of the batch either. Backends need not agree with each other
 *   bit for bit. Everything but `sample` (and `createAdapter`'s initialisation, from its seed) is deterministic.
 * - Buffers: the backend reads the arrays it is given (tokens, weights, tensors) during the call only; it keeps
 *   no reference to them once the promise settles (importAdapter copies), and the caller must not change them
 *   before it settles. Every array the backend returns is the caller's: a fresh copy, never a view of the
 *   backend's own state, so the caller may keep or mutate it.
 * - Calls take effect in the order they are made: a backend that gets a call while another one runs queues it.
 *   (The CPU backend runs each call to its end before its promise resolves.) Callers await what they depend on.
 */
import { Rng } from "../util/rng.ts";
import { UserError } from "../util/errors.ts";
import { adapterState, checkAdapterTensors, describeLora, flatOptimizerState, sameLora, writeAdapterTensors } from "./adapter-state.ts";
import { packRows } from "./batch.ts";
import type { ModelConfig } from "./config.ts";
import { type GenerationRequest, type GenerationResult, generate } from "./generate.ts";
import { type Adapter, type LoraConfig, createAdapter, enableAdapterGrad, initAdapterWeights } from "./lora.ts";
import { type ObjectiveResult, objective } from "./objective.ts";
import { type OptimizerConfig, Optimizer, clipGradNorm } from "./optim.ts";
import { adapterGroup } from "./param-groups.ts";
import { type ScoreResult, scoreRows } from "./score.ts";
import { type PositionLogprobs, topLogprobs } from "./top-logprobs.ts";
import type { Transformer } from "./transformer.ts";

export type { FinishReason, GenerationResult } from "./generate.ts";
export type { LoraConfig } from "./lora.ts";
export type { ObjectiveResult } from "./objective.ts";
export type { OptimizerConfig } from "./optim.ts";
export type { SamplingParams } from "./sample.ts";
export type { ScoreResult } from "./score.ts";
export type { PositionLogprobs } from "./top-logprobs.ts";

/**
 * One row to generate. GenerationRequest's fields: `prompt` (≥ 1 token ids, the row starts after them), `maxTokens`
 * (≥ 0 new tokens at most), `sampling` {temperature (0 = greedy: the first id of the largest logit; else
 * softmax(logits / temperature)), topK (0 = off), topP (1 = off)}, applied temperature → top-k → top-p,
 * `stopTokens` (default: the model's EOS ids, `config.eosIds`), `ignoreEos` (then only `stopTokens` stop),
 * `stopStrings` (the row stops once its decoded text contains one; needs `decode`).
 */
export interface SampleRequest extends Omit<GenerationRequest, "adapter"> {
  adapter: string | null;
}

/**
 * Decodes row `row`'s generated ids so far (prompt excluded; an EOS or stop token that ended the row left out) to
 * text. When it is given, the backend calls it in the caller's process after each new token of each row (the
 * server streams from these calls; stop strings are looked for in what it returns), rows in any order within a step;
 * it must be cheap and must not throw. Without it, `text` is null and stop strings are an error.
 */
export type Decode = (ids: number[], row: number) => string;

export interface ScoreRequest {
  tokens: ArrayLike<number>; // (T) prefix and scored tokens together
  adapter: string | null;
  from?: number; // first scored token (default 1)
  temperature?: number; // log-probs under softmax(logits / temperature), > 0 (default 1)
}

export interface TopLogprobsRequest {
  tokens: ArrayLike<number>; // (T) the whole sequence
  adapter: string | null;
  from: number; // first predicted token, ≥ 1
  k: number; // alternatives per position, ≥ 0 (0: only the tokens' own log-probs)
}

export interface TrainRow {
  tokens: ArrayLike<number>; // (T)
  adapter: string | null;
  weights: ArrayLike<number>; // (T) w_t of token t; w_t = 0 for t < from (w_0 is unused)
  entropyWeights?: ArrayLike<number>; // (T) e_t, the bonus on the entropy of the distribution that predicts token t
  from?: number; // first weighted token (default 1); earlier tokens are the prefix
  temperature?: number; // the policy is softmax(logits / temperature), > 0 (default 1)
}

/** One LoRA tensor by its PEFT name. */
export interface AdapterTensor {
  name: string; // base_model.model.model.layers.{l}.{self_attn|mlp}.{q|k|v|o|gate|up|down}_proj.lora_{A|B}.weight
  shape: number[]; // A: [R, in], B: [out, R] (PyTorch's nn.Linear layout: out × in)
  data: Float32Array; // row-major, the shape's product long
}

/** An optimizer's state for one adapter, as PyTorch keeps it: a step count and moment buffers per tensor. */
export interface AdapterOptimizerState {
  step: number; // updates applied so far (AdamW's bias corrections use it)
  /**
   * moment name → tensor name → values (the tensor's size). AdamW: exp_avg and exp_avg_sq; SGD with momentum:
   * momentum_buffer; plain SGD: none.
   */
  moments: Record<string, Record<string, Float32Array>>;
}

/**
 * A LoRA adapter as plain data: y = x Wᵀ + scale · (x Aᵀ) Bᵀ with scale = alpha / R (alpha / √R with rsLoRA). The
 * tensors are those `lora` asks for, in canonical order: layer by layer, in each layer q, k, v, o, gate, up, down
 * (the targets among them), A before B. This is what PEFT's adapter_model.safetensors holds (formats/peft.ts).
 */
export interface AdapterState {
  lora: LoraConfig; // {rank R, alpha, rslora, targets: subset of q k v o gate up down}
  tensors: AdapterTensor[];
  optimizer: AdapterOptimizerState | null; // null: no optimizer (an adapter loaded for inference), or none given
}

/** Where a backend runs the model: colloquy's engine ("cpu", float32) or a PyTorch worker with its device and base dtype. */
export interface Placement {
  backend: "cpu" | "torch";
  device: string; // cpu, or the worker's device as it opened it (cuda:0, ...)
  dtype: string; // the base weights' dtype
}

export interface Backend {
  /** The base model's configuration (dim, vocabSize, maxSeqLen, eosIds, ...); fixed for the backend's life. */
  readonly config: ModelConfig;

  /** Where the model runs, as opened (a run's summary records it). */
  readonly placement: Placement;

  /**
   * Generates a continuation of each request's prompt; request i draws from `seeds[i]` only (seeds.length ===
   * requests.length). Result i: `ids` (the generated ids, including the stop token or the token that completed a stop
   * string), `logprobs` (log p of each generated id under the model at temperature 1 without top-k/top-p, in nats:
   * what the model says, not what the sampler drew from), `text` (decode of the ids, cut before a stop string; null
   * without `decode`), `finishReason` ("eos": a stop token, "stop": a stop string, "length": maxTokens).
   */
  sample(requests: readonly SampleRequest[], seeds: readonly number[], decode?: Decode): Promise<GenerationResult[]>;

  /**
   * Log-probabilities of each request's tokens from `from` on (one forward pass, no sampling). Result i:
   * `logprobs` (T) log p(tokens[t] | tokens[<t]) under softmax(logits / temperature), `entropies` (T) the entropy
   * of that distribution; both float64, NaN for t < from.
   */
  score(requests: readonly ScoreRequest[]): Promise<ScoreResult[]>;

  /**
   * For each request, one entry per position t = from..T−1: `logprob` = log p(tokens[t] | tokens[<t]) at temperature 1,
   * and `top` = the k most likely ids at that position with their log-probs, most likely first, ties by lower id
   * (the server's `logprobs` / `top_logprobs`). A request with T ≤ from gives [].
   */
  topLogprobs(requests: readonly TopLogprobsRequest[]): Promise<PositionLogprobs[][]>;

  /** The final hidden state (after the last norm, before the LM head), (C), of each request's last token. */
  lastHidden(requests: readonly { tokens: ArrayLike<number>; adapter: string | null }[]): Promise<Float32Array[]>;

  /**
   * One forward and backward pass of L = −( Σ_rows Σ_t w_t · log p_t + Σ_rows Σ_t e_t · H_t ) / normaliser, where
   * p_t and H_t are as in `score` (at the row's temperature) and `normaliser` > 0 divides every weight and entropy
   * weight. The gradient of L is added to the gradient buffers of the rows' adapters: gradients accumulate over
   * calls until `zeroGrad`. Rows on the base model (null) or on an adapter without optimizer count in L but get no
   * gradient; the base model is frozen. Returns `loss` (L) and the pass's `logprobs` and `entropies` per row, as
   * `score` gives them (from the weights before any update).
   */
  backward(rows: readonly TrainRow[], normaliser: number): Promise<ObjectiveResult>;

  /**
   * A new trainable adapter named `name` (an Error if the name is taken): A ~ U(−1/√in, 1/√in) drawn from `seed`
   * (PEFT's kaiming_uniform(a=√5)), B = 0, so that it starts as the base model, with a zeroed gradient and an
   * optimizer of `optimizer` {kind adamw | sgd, beta1 (SGD: momentum), beta2, eps, weightDecay (decoupled for AdamW,
   * added to the gradient for SGD, as torch.optim does)}.
   */
  createAdapter(name: string, lora: LoraConfig, seed: number, optimizer: OptimizerConfig): Promise<void>;

  /**
   * Loads plain adapter data. Unknown name: a new adapter for inference (no gradient, no optimizer; an optimizer state
   * is then an error). Known name: its LoRA config must equal `state.lora`; its weights are replaced, and its
   * optimizer state too when `state.optimizer` is given (else the optimizer's state is kept). Tensors that do not
   * fit the model and LoRA config (a missing, extra or misshapen tensor or moment) are a UserError (E_SHAPE,
   * E_MISSING_TENSOR, E_BAD_ADAPTER) and change nothing. The data is copied.
   */
  importAdapter(name: string, state: AdapterState): Promise<void>;

  /** A copy of an adapter's config, weights and (when it has an optimizer) optimizer state; unknown name: Error. */
  exportAdapter(name: string): Promise<AdapterState>;

  /** Sets the named adapters' gradients to zero. Every name must have an optimizer (createAdapter). */
  zeroGrad(names: readonly string[]): Promise<void>;

  /**
   * The L2 norm of the named adapters' gradients taken together; when `maxNorm` > 0 and the norm is above it, scales
   * them by maxNorm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_). 0 = no clipping. Returns the norm before.
   */
  clipGradNorm(names: readonly string[], maxNorm: number): Promise<number>;

  /** One optimizer update of each named adapter from its gradients (which it leaves as they are), rate `lr`. */
  step(names: readonly string[], lr: number): Promise<void>;

  /** After the calls made so far: releases what the backend holds outside this process (a worker); absent when nothing. */
  close?(): Promise<void>;
}

/** Token budget of one forward pass when scoring (bounds activation memory). */
const SCORE_TOKENS_PER_PASS = 16384;

/**
 * The in-process CPU backend: a Transformer, a table of named adapters and their optimizers. Besides the seam it
 * offers engine-level conveniences (`model`, `adapters`, `adapter()`, `addAdapter()`) for the engine and tests;
 * code above the engine uses only `Backend`.
 */
export class CpuBackend implements Backend {
  readonly model: Transformer;
  readonly placement: Placement = { backend: "cpu", device: "cpu", dtype: "float32" };
  readonly adapters = new Map<string, Adapter>();
  private readonly optimizers = new Map<string, Optimizer>();

  constructor(model: Transformer) {
    this.model = model;
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  /** Adds an engine adapter as it is (shared, not copied), replacing one of the same name. */
  addAdapter(adapter: Adapter): void {
    this.adapters.set(adapter.name, adapter);
    this.optimizers.delete(adapter.name);
  }

  adapter(name: string | null): Adapter | null {
    if (name === null) return null;
    const a = this.adapters.get(name);
    if (!a) throw new Error(`no adapter named ${name} (have: ${[...this.adapters.keys()].join(", ") || "none"})`);
    return a;
  }

  async sample(requests: readonly SampleRequest[], seeds: readonly number[], decode?: Decode): Promise<GenerationResult[]> {
    if (seeds.length !== requests.length) throw new Error(`sample: ${seeds.length} seeds for ${requests.length} requests`);
    // rows sorted by adapter, so that each adapter's rows form one segment of the batch
    const order = requests.map((_, i) => i).sort((a, b) => String(requests[a].adapter).localeCompare(String(requests[b].adapter)) || a - b);
    const results = generate(
      this.model,
      order.map((i) => ({ ...requests[i], adapter: this.adapter(requests[i].adapter) })),
      {
        rowRngs: order.map((i) => new Rng(seeds[i])),
        decode: decode ? (ids, row) => decode(ids, order[row]) : undefined,
      },
    );
    const out: GenerationResult[] = new Array(requests.length);
    order.forEach((i, k) => (out[i] = results[k]));
    return out;
  }

  async score(requests: readonly ScoreRequest[]): Promise<ScoreResult[]> {
    const adapters = requests.map((r) => this.adapter(r.adapter));
    const out: ScoreResult[] = [];
    for (const [start, end] of chunks(requests)) {
      out.push(
        ...scoreRows(
          this.model,
          requests
            .slice(start, end)
            .map((r, k) => ({ tokens: r.tokens, adapter: adapters[start + k], from: r.from, temperature: r.temperature })),
        ),
      );
    }
    return out;
  }

  async topLogprobs(requests: readonly TopLogprobsRequest[]): Promise<PositionLogprobs[][]> {
    const rows = requests.map((r) => ({ tokens: r.tokens, adapter: this.adapter(r.adapter), from: r.from, k: r.k }));
    return topLogprobs(this.model, rows);
  }

  async lastHidden(requests: readonly { tokens: ArrayLike<number>; adapter: string | null }[]): Promise<Float32Array[]> {
    const C = this.model.config.dim;
    const adapters = requests.map((r) => this.adapter(r.adapter));
    const out: Float32Array[] = [];
    for (const [start, end] of chunks(requests)) {
      const packed = packRows(
        requests.slice(start, end).map((r, k) => ({ tokens: r.tokens, adapter: adapters[start + k] })),
        this.model.config.vocabSize,
      );
      const { hidden } = this.model.forward(packed, false);
      for (const r of packed.rows) out.push(hidden.slice((r.start + r.len - 1) * C, (r.start + r.len) * C));
    }
    return out;
  }

  async backward(rows: readonly TrainRow[], normaliser: number): Promise<ObjectiveResult> {
    return objective(
      this.model,
      rows.map((r) => ({ ...r, adapter: this.adapter(r.adapter) })),
      normaliser,
    );
  }

  async createAdapter(name: string, lora: LoraConfig, seed: number, optimizer: OptimizerConfig): Promise<void> {
    if (this.adapters.has(name)) throw new Error(`an adapter named ${name} exists already`);
    const a = createAdapter(name, this.model.config, lora);
    initAdapterWeights(a, new Rng(seed));
    enableAdapterGrad(a, this.model.config);
    this.adapters.set(name, a);
    this.optimizers.set(name, new Optimizer(optimizer, [adapterGroup(a)]));
  }

  async importAdapter(name: string, state: AdapterState): Promise<void> {
    const what = `adapter ${name}`;
    checkAdapterTensors(what, this.model.config, state.lora, state.tensors);
    const existing = this.adapters.get(name);
    if (existing && !sameLora(existing.lora, state.lora)) {
      throw new UserError(
        "E_BAD_ADAPTER",
        `${what} has ${describeLora(existing.lora)}; the imported one has ${describeLora(state.lora)}`,
        "import it under another name, or with the same LoRA config",
      );
    }
    const a = existing ?? createAdapter(name, this.model.config, state.lora);
    const opt = this.optimizers.get(name) ?? null;
    if (state.optimizer && !opt) {
      throw new UserError(
        "E_BAD_ADAPTER",
        `${what} has no optimizer, so its optimizer state cannot be imported`,
        "create it with createAdapter first, or import the weights alone (optimizer: null)",
      );
    }
    const flat = state.optimizer ? flatOptimizerState(what, a, opt!, state.optimizer) : null;
    writeAdapterTensors(a, state.tensors);
    if (flat) opt!.importState(flat);
    if (!existing) this.adapters.set(name, a);
  }

  async exportAdapter(name: string): Promise<AdapterState> {
    return adapterState(this.adapter(name)!, this.optimizers.get(name) ?? null);
  }

  private optimizerList(names: readonly string[]): Optimizer[] {
    return names.map((n) => {
      const o = this.optimizers.get(n);
      if (!o)
        throw new Error(
          this.adapters.has(n) ? `adapter ${n} has no optimizer (it was not made by createAdapter)` : `no adapter named ${n}`,
        );
      return o;
    });
  }

  async zeroGrad(names: readonly string[]): Promise<void> {
    for (const o of this.optimizerList(names)) o.zeroGrad();
  }

  async clipGradNorm(names: readonly string[], maxNorm: number): Promise<number> {
    return clipGradNorm(
      this.optimizerList(names).flatMap((o) => o.groups),
      maxNorm,
    );
  }

  async step(names: readonly string[], lr: number): Promise<void> {
    for (const o of this.optimizerList(names)) o.update(lr);
  }
}

/** [start, end) ranges of requests that fit one forward pass. */
function chunks(requests: readonly { tokens: ArrayLike<number> }[]): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  while (start < requests.length) {
    let end = start,
      tokens = 0;
    while (end < requests.length && (end === start || tokens + requests[end].tokens.length <= SCORE_TOKENS_PER_PASS))
      tokens += requests[end++].tokens.length;
    out.push([start, end]);
    start = end;
  }
  return out;
}
