/**
 * TorchBackend: the Backend seam (engine/backend.ts) over a PyTorch worker process (worker/PROTOCOL.md). Each seam
 * method is one protocol request. What needs no tensors stays here: the rows are checked with the CPU backend's
 * errors before they are sent, adapter names are tracked, stop strings and `text` are found after the worker
 * returns (stops.ts), and a llama2.c model is converted to a temporary Hugging Face folder (convert.ts) whose q/k
 * rows, and the adapters' q/k lora_B rows, are permuted for rotate-half rope.
 *
 * Calls take effect in the order they are made: each one is a task on one chain, checked when its turn comes (so a
 * score queued right after a createAdapter sees the adapter), and the worker answers one request at a time.
 */
import fs from "node:fs";
import path from "node:path";
import type {
  AdapterState,
  Backend,
  Decode,
  GenerationResult,
  LoraConfig,
  ObjectiveResult,
  OptimizerConfig,
  Placement,
  PositionLogprobs,
  SampleRequest,
  ScoreRequest,
  ScoreResult,
  TopLogprobsRequest,
  TrainRow,
} from "../engine/backend.ts";
import type { ModelConfig } from "../engine/config.ts";
import type { BaseWeights } from "../engine/params.ts";
import { loadModel } from "../formats/load-model.ts";
import { AdapterTable, adapterFields, adapterFromReply, loraFields, optimizerFields } from "./adapters.ts";
import { permuteAdapter, writeTempHfModel } from "./convert.ts";
import { remoteError } from "./errors.ts";
import { Tensor } from "./frames.ts";
import { type Hello, type Reply, type WorkerLink, type WorkerOptions, WorkerProcess } from "./process.ts";
import { BASE_ONLY, DEFAULT_TOKENS_PER_PASS, type RunPlan, type TorchDtype, describeMemory, needFields, workerNeed } from "./memory.ts";
import { type RemoteOptions, RemoteWorker } from "./remote.ts";
import { hiddenRows, sampleRows, scoreRows, stopTokensOf, subset, topLogprobsRows, trainRows } from "./rows.ts";
import { type WorkerSample, finishSamples } from "./stops.ts";

export interface TorchBackendOptions {
  modelPath: string; // a Hugging Face folder, or a llama2.c .bin (converted to a temporary folder)
  config: ModelConfig; // the model's config as colloquy read it (the seam's `config`)
  weights?: BaseWeights; // a llama2.c model's weights when the caller has them loaded already (else read again)
  device?: string | null; // cpu, cuda, cuda:N (default: cuda when the worker's PyTorch sees one, else cpu)
  dtype?: TorchDtype | null; // of the base weights (default: bfloat16 on CUDA, float32 on CPU); LoRA weights, gradients and moments are float32
  python?: string; // the interpreter (default $COLLOQUY_PYTHON, else python3)
  maxTokensPerPass?: number; // token budget of one forward pass (default 16384, the CPU backend's)
  plan?: RunPlan; // the adapters the caller will hold and whether they train, for the memory check (default: none)
  quiet?: boolean; // no start-up lines on stderr (colloquy's, the worker's "opened")
  nproc?: number; // worker processes in one torch.distributed group on this machine (default 1)
  remote?: RemoteOptions; // connect to a worker group the user started instead (the model path is read there)
  worker?: Omit<WorkerOptions, "python">; // where the worker is, its environment, its log
}

/** The worker started and the model open. */
export async function openTorchBackend(o: TorchBackendOptions): Promise<TorchBackend> {
  let dir = path.resolve(o.modelPath),
    temp: string | null = null;
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    if (o.remote) throw remoteError(`--worker needs a Hugging Face model folder (the worker group reads it); ${o.modelPath} is not one`);
    const m = o.weights ? { config: o.config, weights: o.weights } : loadModel(o.modelPath);
    temp = dir = writeTempHfModel(m.config, m.weights);
  }
  let worker: WorkerLink | null = null;
  try {
    const nproc = o.nproc ?? 1;
    worker = o.remote
      ? await RemoteWorker.connect(o.remote)
      : await WorkerProcess.start({
          ...o.worker,
          python: o.python,
          args: nproc > 1 ? ["-m", "colloquy_worker", "--nproc", String(nproc)] : undefined,
        });
    const device = o.device ?? (worker.info.cuda ? "cuda" : "cpu");
    const dtype = o.dtype ?? (device.startsWith("cuda") ? "bfloat16" : "float32");
    const maxTokensPerPass = o.maxTokensPerPass ?? DEFAULT_TOKENS_PER_PASS;
    const need = workerNeed(o.config, o.plan ?? BASE_ONLY, { dtype, device, torch: worker.info.torch, maxTokensPerPass });
    const group = (worker.info.world_size ?? 1) > 1 ? ` × ${worker.info.world_size} processes` : "";
    if (!o.quiet)
      process.stderr.write(`colloquy: torch worker on ${device}${group} in ${dtype}: needs ${describeMemory(need)} per device\n`);
    const reply = await worker.call("open", {
      model: dir,
      device,
      dtype,
      max_tokens_per_pass: maxTokensPerPass,
      quiet: o.quiet ?? false,
      ...needFields(need),
    });
    checkConfig(reply.config as Record<string, unknown>, o.config, dir);
    return new TorchBackend(worker, o.config, String(reply.device ?? device), String(reply.dtype ?? dtype));
  } catch (e) {
    await worker?.close();
    throw e;
  } finally {
    // the worker has read (or memory-mapped) the weights by now: the temporary folder can go
    if (temp) fs.rmSync(temp, { recursive: true, force: true });
  }
}

/** The worker's reading of config.json must be colloquy's. */
function checkConfig(got: Record<string, unknown> | undefined, c: ModelConfig, dir: string): void {
  const want: Record<string, unknown> = {
    dim: c.dim,
    n_layers: c.nLayers,
    n_heads: c.nHeads,
    n_kv_heads: c.nKvHeads,
    head_dim: c.headDim,
    hidden_dim: c.hiddenDim,
    vocab_size: c.vocabSize,
    max_seq_len: c.maxSeqLen,
    tied_embeddings: c.tiedEmbeddings,
  };
  const diff = Object.keys(want).filter((k) => got?.[k] !== want[k]);
  if (diff.length) {
    throw new Error(
      `the torch worker read ${dir} as ${diff.map((k) => `${k} ${JSON.stringify(got?.[k])}`).join(", ")}; colloquy has ${diff.map((k) => `${k} ${JSON.stringify(want[k])}`).join(", ")}`,
    );
  }
}

export class TorchBackend implements Backend {
  readonly config: ModelConfig;
  readonly device: string; // as the worker opened it
  readonly dtype: string;
  private readonly worker: WorkerLink;
  private readonly adapters: AdapterTable;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(worker: WorkerLink, config: ModelConfig, device: string, dtype: string) {
    this.worker = worker;
    this.config = config;
    this.device = device;
    this.dtype = dtype;
    this.adapters = new AdapterTable(config);
  }

  get placement(): Placement {
    return { backend: "torch", device: this.device, dtype: this.dtype };
  }

  /** The worker's hello: its version, torch's, Python's, CUDA. */
  get info(): Hello {
    return this.worker.info;
  }

  /** The worker's process id. */
  get pid(): number {
    return this.worker.pid;
  }

  /** After the calls made so far: shuts the worker down and waits for it to exit. */
  async close(): Promise<void> {
    await this.chain;
    await this.worker.close();
  }

  /** Runs `task` after every call made before it. */
  private run<T>(task: () => Promise<T>): Promise<T> {
    const p = this.chain.then(task);
    this.chain = p.catch(() => {});
    return p;
  }

  private call(op: string, fields: Record<string, unknown>): Promise<Reply> {
    return this.worker.call(op, fields);
  }

  sample(requests: readonly SampleRequest[], seeds: readonly number[], decode?: Decode): Promise<GenerationResult[]> {
    return this.run(async () => {
      const rows = sampleRows(requests, seeds, this.config, decode !== undefined);
      for (const r of requests) this.adapters.need(r.adapter);
      const part = subset<WorkerSample>(requests.length, (i) => requests[i].maxTokens > 0);
      const reply = part.sent.length ? await this.call("sample", { rows: part.sent.map((i) => rows[i]) }) : { rows: [] };
      const got = (reply.rows as Record<string, unknown>[]).map((r) => ({
        ids: data(r.ids),
        logprobs: data(r.logprobs),
        finish: String(r.finish),
      }));
      const all = part.merge(got, () => ({ ids: [], logprobs: [], finish: "length" }));
      return finishSamples(
        all,
        requests,
        requests.map((r) => stopTokensOf(r, this.config)),
        decode,
      );
    });
  }

  score(requests: readonly ScoreRequest[]): Promise<ScoreResult[]> {
    return this.run(async () => {
      const rows = scoreRows(requests, this.config);
      for (const r of requests) this.adapters.need(r.adapter);
      const reply = await this.call("score", { rows });
      return (reply.rows as Record<string, unknown>[]).map((r, i) => ({
        logprobs: f64(r.logprobs, requests[i].tokens.length, "score logprobs"),
        entropies: f64(r.entropies, requests[i].tokens.length, "score entropies"),
      }));
    });
  }

  topLogprobs(requests: readonly TopLogprobsRequest[]): Promise<PositionLogprobs[][]> {
    return this.run(async () => {
      const rows = topLogprobsRows(requests, this.config);
      for (const r of requests) this.adapters.need(r.adapter);
      const part = subset<PositionLogprobs[]>(requests.length, (i) => requests[i].tokens.length > requests[i].from);
      const reply = part.sent.length ? await this.call("top_logprobs", { rows: part.sent.map((i) => rows[i]) }) : { rows: [] };
      const got = (reply.rows as Record<string, unknown>[]).map((r, k) => {
        const req = requests[part.sent[k]],
          P = req.tokens.length - req.from;
        const lp = f64(r.logprobs, P, "top_logprobs logprobs");
        const ids = r.top_ids as Tensor,
          top = r.top_logprobs as Tensor;
        const K = ids.shape[1] ?? 0;
        if (ids.shape[0] !== P || top.data.length !== P * K)
          throw new Error(`torch worker: top_logprobs row of shape [${ids.shape}] for ${P} positions`);
        return Array.from({ length: P }, (_, p) => ({
          logprob: lp[p],
          top: Array.from({ length: K }, (_, j) => ({ id: Number(ids.data[p * K + j]), logprob: Number(top.data[p * K + j]) })),
        }));
      });
      return part.merge(got, () => []);
    });
  }

  lastHidden(requests: readonly { tokens: ArrayLike<number>; adapter: string | null }[]): Promise<Float32Array[]> {
    return this.run(async () => {
      const rows = hiddenRows(requests, this.config);
      for (const r of requests) this.adapters.need(r.adapter);
      if (rows.length === 0) return [];
      const reply = await this.call("last_hidden", { rows });
      const h = reply.hidden as Tensor,
        C = this.config.dim;
      if (!(h instanceof Tensor) || !(h.data instanceof Float32Array) || h.data.length !== rows.length * C)
        throw new Error(`torch worker: last_hidden gave ${h?.shape} for (${rows.length}, ${C})`);
      return requests.map((_, i) => h.data.slice(i * C, (i + 1) * C) as Float32Array);
    });
  }

  backward(rows: readonly TrainRow[], normaliser: number): Promise<ObjectiveResult> {
    return this.run(async () => {
      const wire = trainRows(rows, normaliser, this.config);
      for (const r of rows) this.adapters.need(r.adapter);
      const reply = await this.call("backward", { rows: wire, normaliser });
      const out = reply.rows as Record<string, unknown>[];
      return {
        loss: Number(reply.loss),
        logprobs: out.map((r, i) => f64(r.logprobs, rows[i].tokens.length, "backward logprobs")),
        entropies: out.map((r, i) => f64(r.entropies, rows[i].tokens.length, "backward entropies")),
      };
    });
  }

  createAdapter(name: string, lora: LoraConfig, seed: number, optimizer: OptimizerConfig): Promise<void> {
    return this.run(async () => {
      this.adapters.checkCreate(name);
      if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`createAdapter: seed ${seed} is not an integer in [0, 2^53)`);
      await this.call("create_adapter", { name, lora: loraFields(lora), seed, optimizer: optimizerFields(optimizer) });
      this.adapters.added(name, lora, { ...optimizer });
    });
  }

  importAdapter(name: string, state: AdapterState): Promise<void> {
    return this.run(async () => {
      const isNew = this.adapters.checkImport(name, state);
      await this.call("import_adapter", { name, ...adapterFields(permuteAdapter(state, this.config, "to")) });
      if (isNew) this.adapters.added(name, state.lora, null);
    });
  }

  exportAdapter(name: string): Promise<AdapterState> {
    return this.run(async () => {
      const held = this.adapters.get(name);
      const reply = await this.call("export_adapter", { name });
      return permuteAdapter(adapterFromReply(reply, held.lora, this.config, name), this.config, "from");
    });
  }

  zeroGrad(names: readonly string[]): Promise<void> {
    return this.run(async () => {
      this.adapters.needOptimizers(names);
      await this.call("zero_grad", { names: [...names] });
    });
  }

  clipGradNorm(names: readonly string[], maxNorm: number): Promise<number> {
    return this.run(async () => {
      this.adapters.needOptimizers(names);
      const reply = await this.call("clip_grad_norm", { names: [...names], max_norm: maxNorm });
      return Number(reply.norm);
    });
  }

  step(names: readonly string[], lr: number): Promise<void> {
    return this.run(async () => {
      this.adapters.needOptimizers(names);
      await this.call("step", { names: [...names], lr });
    });
  }
}

/** A reply tensor's values (already a fresh copy). */
function data(v: unknown): ArrayLike<number> {
  if (!(v instanceof Tensor) || v.data instanceof BigInt64Array)
    throw new Error(`torch worker: expected a numeric tensor, got ${JSON.stringify(v)?.slice(0, 80)}`);
  return v.data;
}

/** A reply tensor of T float64 values. */
function f64(v: unknown, T: number, what: string): Float64Array {
  if (!(v instanceof Tensor) || !(v.data instanceof Float64Array) || v.data.length !== T) {
    throw new Error(
      `torch worker: ${what} should be f64 (${T}), got ${v instanceof Tensor ? `${v.dtype} [${v.shape}]` : JSON.stringify(v)?.slice(0, 80)}`,
    );
  }
  return v.data;
}
