/**
 * The server's state and the steps both generation endpoints share: model names, prompt → ids with the size
 * limits, the rows of a request (prompts × n, each with its seed), and the queue that runs them.
 */
import type { Tokenizer } from "../formats/tokenizer.ts";
import { Rng } from "../util/rng.ts";
import { type ChatFormat, chatFormat } from "./chat-template.ts";
import type { Engine, EngineRow, RowResult, ServedModel } from "./engine.ts";
import { ApiError, badRequest } from "./errors.ts";
import { BatchQueue } from "./queue.ts";
import type { CommonParams } from "./schema.ts";

export interface ServeLimits {
  maxBodyBytes: number; // a larger body is refused with 413
  maxPromptTokens: number; // a longer prompt is refused with 400 (context_length_exceeded)
  maxBatch: number; // rows per engine call, and per request (prompts × n)
  maxQueue: number; // requests waiting before 429
  gatherMs: number; // an idle engine waits this long to batch requests that arrive together
}

export const DEFAULT_LIMITS: ServeLimits = { maxBodyBytes: 1 << 20, maxPromptTokens: Infinity, maxBatch: 16, maxQueue: 64, gatherMs: 2 };

export interface Prompt {
  ids: number[];
  text: string; // as given, or decoded from ids
}

export class Service {
  readonly engine: Engine;
  readonly tokenizer: Tokenizer;
  readonly chat: ChatFormat;
  readonly limits: ServeLimits;
  readonly queue: BatchQueue;
  readonly created = Math.floor(Date.now() / 1000);
  draining = false; // set at shutdown: new generation requests get 503
  private readonly models: Map<string, ServedModel>;
  private readonly rng: Rng; // seeds for requests that give none
  private nextId = 0;

  constructor(engine: Engine, tokenizer: Tokenizer, limits: Partial<ServeLimits> = {}, seed = 0) {
    this.engine = engine;
    this.tokenizer = tokenizer;
    this.chat = chatFormat(tokenizer);
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.limits.maxPromptTokens = Math.min(this.limits.maxPromptTokens, engine.info.contextLength);
    this.queue = new BatchQueue(engine, this.limits);
    this.models = new Map(engine.info.models.map((m) => [m.id, m]));
    this.rng = new Rng(seed);
  }

  get modelList(): ServedModel[] {
    return this.engine.info.models;
  }

  /** A model by its API name, or 404. */
  model(name: string): ServedModel {
    const m = this.models.get(name);
    if (!m) {
      throw new ApiError(404, `The model '${name}' does not exist (served: ${[...this.models.keys()].join(", ")})`, {
        param: "model",
        code: "model_not_found",
      });
    }
    return m;
  }

  /** A response id: prefix and a counter in this server's life. */
  newId(prefix: string): string {
    return `${prefix}-${this.created.toString(36)}${(this.nextId++).toString(36).padStart(4, "0")}`;
  }

  /** A completion prompt (text or token ids) as ids; text gets the tokenizer's special tokens (BOS). */
  encode(p: string | number[], param: string): Prompt {
    const tok = this.tokenizer;
    if (typeof p !== "string") {
      const V = this.engine.info.vocabSize;
      const bad = p.find((id) => id >= V);
      if (bad !== undefined) throw badRequest(`token id ${bad} is outside the vocabulary (0..${V - 1})`, param, "invalid_value");
      return { ids: p, text: tok.decode(p, { skipSpecial: true }) };
    }
    let ids = tok.encode(p, { addSpecial: true });
    if (ids.length === 0 && tok.bosId !== null) ids = [tok.bosId];
    if (ids.length === 0) throw badRequest("the prompt is empty and the model has no BOS token to start from", param, "invalid_value");
    return { ids, text: p };
  }

  /** Chat messages as a prompt, with the model's chat template or the fallback. */
  encodeChat(messages: Parameters<ChatFormat["render"]>[0]): Prompt {
    const text = this.chat.render(messages);
    let ids = this.tokenizer.encode(text, { addSpecial: this.chat.addSpecial });
    if (ids.length === 0 && this.tokenizer.bosId !== null) ids = [this.tokenizer.bosId];
    return { ids, text };
  }

  /** The engine rows of a request: each prompt n times, each row with its own seed; max tokens capped by the context. */
  rows(
    params: CommonParams,
    model: ServedModel,
    prompts: readonly Prompt[],
    opts: { extraStop?: string[]; echo?: boolean; defaultMaxTokens: "context" | number },
  ): EngineRow[] {
    const context = this.engine.info.contextLength;
    for (const [i, p] of prompts.entries()) {
      if (p.ids.length > this.limits.maxPromptTokens || p.ids.length >= context) {
        const limit = Math.min(this.limits.maxPromptTokens, context - 1);
        throw badRequest(
          `prompt ${i} has ${p.ids.length} tokens; this server takes at most ${limit} (the model's context is ${context} tokens)`,
          "prompt",
          "context_length_exceeded",
        );
      }
    }
    if (prompts.length * params.n > this.limits.maxBatch) {
      throw badRequest(
        `this request asks for ${prompts.length * params.n} completions (prompts × n); the server runs at most ${this.limits.maxBatch} in one batch (--max-batch)`,
        "n",
        "invalid_value",
      );
    }
    const seedRng = params.seed === null ? null : new Rng(params.seed);
    const stop = [...params.stop, ...(opts.extraStop ?? [])];
    const rows: EngineRow[] = [];
    for (const p of prompts) {
      const room = context - p.ids.length;
      const asked = params.maxTokens ?? (opts.defaultMaxTokens === "context" ? room : opts.defaultMaxTokens);
      for (let c = 0; c < params.n; c++) {
        rows.push({
          adapter: model.adapter,
          prompt: p.ids,
          maxTokens: Math.min(asked, room),
          temperature: params.temperature,
          topP: params.topP,
          topK: params.topK,
          stop,
          seed: seedRng ? seedRng.fork(rows.length).u32() : this.rng.u32(),
          stream: params.stream && params.logprobs === null,
          logprobs: params.logprobs,
          echo: opts.echo ?? false,
        });
      }
    }
    return rows;
  }

  run(rows: readonly EngineRow[], onText?: (row: number, text: string) => void, signal?: AbortSignal): Promise<RowResult[]> {
    return this.queue.submit(rows, onText, signal);
  }

  /** OpenAI's usage block: each prompt counted once, every generated token (a final EOS included). */
  usage(
    prompts: readonly Prompt[],
    results: readonly RowResult[],
  ): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
    const p = prompts.reduce((s, x) => s + x.ids.length, 0);
    const c = results.reduce((s, r) => s + r.ids.length, 0);
    return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c };
  }
}
