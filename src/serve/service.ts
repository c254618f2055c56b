/**
 * The server's state and the steps both generation endpoints share: model names, prompt → ids with the size
 * limits, the rows of a request (prompts × n, each with its seed), and the queue that runs them.
 *
 * The work a prompt costs is bounded before it is done: a request's prompt count, a token-id prompt's length and a
 * text prompt's length in characters are checked first (a text longer than MAX_SHRINK × the longest prompt × the
 * longest token's bytes cannot fit, so it is refused without tokenizing), and text is tokenized by the
 * PromptTokenizer, off the event loop in `colloquy serve`.
 */
import type { Tokenizer } from "../formats/tokenizer.ts";
import { Rng } from "../util/rng.ts";
import { type ChatFormat, type ChatMessage, chatFormat } from "../formats/chat-template.ts";
import type { Engine, EngineRow, RowResult, ServedModel } from "./engine.ts";
import { ApiError, badRequest } from "./errors.ts";
import { InlinePromptTokenizer, type PromptJob, type PromptResult, type PromptTokenizer, longestTokenBytes } from "./prompt-tokenizer.ts";
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

/**
 * How much a tokenizer's normalizer may shrink a text before it is tokenized, at most: Unicode composition (NFC,
 * NFKC) joins at most three code points into one (Hangul jamo); LLaMA-family tokenizers otherwise only grow text
 * (SentencePiece's "▁" prefix and replacement). A normalizer that deletes characters (BERT's accent stripping)
 * could shrink more; colloquy serves decoder models, which do not use one.
 */
export const MAX_SHRINK = 4;

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
  readonly prompts: PromptTokenizer; // text → ids (off the event loop in `colloquy serve`)
  readonly longestToken: number; // bytes; see longestTokenBytes
  readonly maxPromptChars: number; // a longer text prompt cannot fit in maxPromptTokens and is refused unread
  readonly created = Math.floor(Date.now() / 1000);
  draining = false; // set at shutdown: new generation requests get 503
  private readonly models: Map<string, ServedModel>;
  private readonly rng: Rng; // seeds for requests that give none
  private nextId = 0;

  constructor(engine: Engine, tokenizer: Tokenizer, limits: Partial<ServeLimits> = {}, seed = 0, prompts?: PromptTokenizer) {
    this.engine = engine;
    this.tokenizer = tokenizer;
    this.chat = chatFormat(tokenizer);
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.limits.maxPromptTokens = Math.min(this.limits.maxPromptTokens, engine.info.contextLength - 1);
    this.prompts = prompts ?? new InlinePromptTokenizer(tokenizer);
    this.longestToken = longestTokenBytes(tokenizer);
    this.maxPromptChars = MAX_SHRINK * this.limits.maxPromptTokens * this.longestToken;
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

  /** Refuses a request for more completions (prompts × n) than one batch runs, before any prompt is read. */
  checkCount(prompts: number, n: number): void {
    if (prompts * n > this.limits.maxBatch) {
      throw badRequest(
        `this request asks for ${prompts * n} completions (prompts × n); the server runs at most ${this.limits.maxBatch} in one batch (--max-batch)`,
        prompts > 1 ? "prompt" : "n",
        "invalid_value",
      );
    }
  }

  private tooLong(what: string, tokens: number | null, chars: number | null, param: string): ApiError {
    const limit = this.limits.maxPromptTokens;
    const context = this.engine.info.contextLength;
    const size =
      tokens !== null
        ? `${tokens} tokens`
        : `${chars} characters, more than the ${this.maxPromptChars} that ${limit} tokens of this model's tokenizer can hold (no token covers more than ${this.longestToken} bytes)`;
    return badRequest(
      `${what} has ${size}; this server takes at most ${limit} tokens (the model's context is ${context} tokens)`,
      param,
      "context_length_exceeded",
    );
  }

  /** Runs a tokenizer job unless too many wait already (429). */
  private tokenize(job: PromptJob): Promise<PromptResult> {
    if (this.prompts.pending >= this.limits.maxQueue) {
      this.queue.stats.refused++;
      throw new ApiError(429, `the server is busy: ${this.prompts.pending} prompts are waiting to be tokenized; retry later`, {
        type: "requests",
        code: "rate_limit_exceeded",
      });
    }
    return this.prompts.run(job);
  }

  /**
   * A completion prompt (text or token ids) as ids; text gets the tokenizer's special tokens (BOS). Too long a
   * prompt is refused with 400 (context_length_exceeded), a text one by its length before it is tokenized.
   */
  async encode(p: string | number[], param: string, what = "the prompt"): Promise<Prompt> {
    const tok = this.tokenizer;
    const limit = this.limits.maxPromptTokens;
    if (typeof p !== "string") {
      if (p.length > limit) throw this.tooLong(what, p.length, null, param);
      const V = this.engine.info.vocabSize;
      const bad = p.find((id) => id >= V);
      if (bad !== undefined) throw badRequest(`token id ${bad} is outside the vocabulary (0..${V - 1})`, param, "invalid_value");
      return { ids: p, text: tok.decode(p, { skipSpecial: true }) };
    }
    if (p.length > this.maxPromptChars) throw this.tooLong(what, null, p.length, param);
    const r = await this.tokenize({ kind: "text", text: p, addSpecial: true, maxChars: this.maxPromptChars });
    if (!r.ok) throw this.tooLong(what, null, r.chars, param);
    if (r.ids.length === 0) throw badRequest("the prompt is empty and the model has no BOS token to start from", param, "invalid_value");
    if (r.ids.length > limit) throw this.tooLong(what, r.ids.length, null, param);
    return { ids: r.ids, text: p };
  }

  /** Chat messages as a prompt, with the model's chat template or the fallback; too long is refused as above. */
  async encodeChat(messages: ChatMessage[]): Promise<Prompt> {
    const r = await this.tokenize({ kind: "chat", messages, maxChars: this.maxPromptChars });
    if (!r.ok) throw this.tooLong("the prompt (the messages in the chat template)", null, r.chars, "messages");
    if (r.ids.length > this.limits.maxPromptTokens)
      throw this.tooLong("the prompt (the messages in the chat template)", r.ids.length, null, "messages");
    return { ids: r.ids, text: r.text ?? "" };
  }

  /** The engine rows of a request: each prompt n times, each row with its own seed; max tokens capped by the context. */
  rows(
    params: CommonParams,
    model: ServedModel,
    prompts: readonly Prompt[],
    opts: { extraStop?: string[]; echo?: boolean; defaultMaxTokens: "context" | number },
  ): EngineRow[] {
    const context = this.engine.info.contextLength;
    for (const [i, p] of prompts.entries())
      if (p.ids.length > this.limits.maxPromptTokens) throw this.tooLong(`prompt ${i}`, p.ids.length, null, "prompt");
    this.checkCount(prompts.length, params.n);
    const seedRng = params.seed === null ? null : new Rng(`seed/${params.seed}`); // every integer its own stream (a number seed folds 64 bits into 32)
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
