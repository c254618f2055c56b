/**
 * What the HTTP layer asks of a model: run a batch of rows (each a prompt on the base model or an adapter, with its
 * own sampling parameters and seed) in one engine call, reporting each streaming row's text as it grows. The
 * core works through the Backend seam only (`sample`, rows of different adapters in one batch, then `topLogprobs`
 * for the rows that ask for alternatives or echo the prompt's log-probs); `LocalEngine` runs it
 * in this thread (tests, `app.request()`), worker-engine.ts in a worker thread so that the server stays responsive.
 */
import type { Backend, SampleRequest, TopLogprobsRequest } from "../engine/backend.ts";
import { type Tokenizer, decodeContinuation } from "../formats/tokenizer.ts";

/** A model name the API serves: the base model (adapter null) or one adapter. */
export interface ServedModel {
  id: string;
  adapter: string | null;
}

/** What the server needs to serve: built by the CLI (`colloquy serve`) or by a test. */
export interface ServeSetup {
  backend: Backend;
  tokenizer: Tokenizer;
  tokenizerPath: string | null; // where the tokenizer came from (a worker's client loads it again there)
  models: ServedModel[];
  contextLength: number;
}

/** Everything about the model the HTTP layer needs, without the weights. */
export interface EngineInfo {
  models: ServedModel[];
  contextLength: number;
  vocabSize: number;
}

export interface EngineRow {
  adapter: string | null;
  prompt: number[];
  maxTokens: number;
  temperature: number; // 0 = greedy
  topP: number;
  topK: number; // 0 = off
  stop: string[];
  seed: number; // this row's random stream
  stream: boolean; // report the text as it grows
  logprobs: number | null; // null: none; k ≥ 0: the chosen tokens' log-probs and the k most likely at each step
  echo: boolean; // with logprobs: the prompt's tokens too
}

export interface TokenInfo {
  id: number;
  text: string; // this token's text in context, special tokens written out
  width: number; // how many characters it adds to the row's text (0 for a special token, which the text leaves out)
  logprob: number | null; // null for the first prompt token
  top: { id: number; text: string; logprob: number }[] | null;
}

export interface RowResult {
  ids: number[]; // generated ids (an EOS that ended the row included)
  text: string; // the completion, cut before a stop string
  finishReason: "stop" | "length"; // OpenAI's: EOS or stop string → stop
  tokens: TokenInfo[] | null; // with logprobs: the generated tokens that make up `text`
  promptTokens: TokenInfo[] | null; // with logprobs and echo
}

export type OnText = (row: number, text: string) => void;

export interface Engine {
  readonly info: EngineInfo;
  run(rows: readonly EngineRow[], onText: OnText): Promise<RowResult[]>;
  close(): Promise<void>;
}

/** Runs rows on a setup's backend. */
export class EngineCore {
  readonly setup: ServeSetup;

  constructor(setup: ServeSetup) {
    this.setup = setup;
  }

  get info(): EngineInfo {
    return { models: this.setup.models, contextLength: this.setup.contextLength, vocabSize: this.setup.backend.config.vocabSize };
  }

  async run(rows: readonly EngineRow[], onText: OnText): Promise<RowResult[]> {
    const { backend, tokenizer: tok } = this.setup;
    const requests: SampleRequest[] = rows.map((r) => ({
      prompt: r.prompt,
      adapter: r.adapter,
      maxTokens: r.maxTokens,
      stopStrings: r.stop,
      sampling: { temperature: r.temperature, topP: r.topP, topK: r.topK },
    }));
    const decode = (ids: number[], row: number): string => {
      const text = decodeContinuation(tok, rows[row].prompt, ids, { skipSpecial: true });
      if (rows[row].stream) onText(row, text);
      return text;
    };
    const results = await backend.sample(
      requests,
      rows.map((r) => r.seed),
      decode,
    );
    // the rows that ask for top-k alternatives or the prompt's log-probs: a second pass, all of them in one call
    const sequences = results.map((g, i) => [...rows[i].prompt, ...(g.finishReason === "eos" ? g.ids.slice(0, -1) : g.ids)]);
    const passRows: TopLogprobsRequest[] = [],
      passOf: number[] = rows.map(() => -1);
    rows.forEach((r, i) => {
      if (r.logprobs === null || !(r.logprobs > 0 || r.echo)) return;
      passOf[i] = passRows.length;
      passRows.push({ tokens: sequences[i], adapter: r.adapter, from: r.echo ? 1 : r.prompt.length, k: r.logprobs });
    });
    const passes = passRows.length ? await backend.topLogprobs(passRows) : [];
    return results.map((g, i) => {
      const r = rows[i];
      const out: RowResult = {
        ids: g.ids,
        text: g.text ?? "",
        finishReason: g.finishReason === "length" ? "length" : "stop",
        tokens: null,
        promptTokens: null,
      };
      if (r.logprobs === null) return out;
      const all = sequences[i];
      const from = r.echo ? 1 : r.prompt.length;
      const pass = passOf[i] >= 0 ? passes[passOf[i]] : null;
      const info = (t: number): TokenInfo => {
        const p = pass?.[t - from];
        return {
          id: all[t],
          ...tokenText(tok, all, t),
          logprob: p ? p.logprob : g.logprobs[t - r.prompt.length],
          top: r.logprobs! > 0 && p ? p.top.map((a) => ({ id: a.id, logprob: a.logprob, text: tokenText(tok, all, t, a.id).text })) : null,
        };
      };
      if (r.echo) {
        out.promptTokens = r.prompt.map((id, t) => (t === 0 ? { id, ...tokenText(tok, all, 0), logprob: null, top: null } : info(t)));
      }
      // the generated tokens whose text starts inside the completion (a stop string's tokens are left out)
      out.tokens = [];
      let offset = 0;
      for (let t = r.prompt.length; t < all.length; t++) {
        if (g.finishReason === "stop" && offset >= out.text.length) break;
        const ti = info(t);
        out.tokens.push(ti);
        offset += ti.width;
      }
      return out;
    });
  }
}

/**
 * The text of token `id` (default: all[t]) at position t, decoded after the tokens before it, and its width: what
 * it adds to the decoded text. A character whose UTF-8 bytes are split over tokens belongs whole to the token that
 * completes it; the tokens before that one add "" (width 0), so the widths lay the tokens end to end on the text.
 */
function tokenText(tok: Tokenizer, all: readonly number[], t: number, id = all[t]): { text: string; width: number } {
  const before = all.slice(Math.max(0, t - 8), t);
  const added = (skipSpecial: boolean) => {
    const head = complete(tok.decode(before, { skipSpecial }));
    const whole = complete(tok.decode([...before, id], { skipSpecial }));
    return whole.startsWith(head) ? whole.slice(head.length) : complete(tok.decode([id], { skipSpecial }));
  };
  return { text: added(false), width: added(true).length };
}

/** `text` without the U+FFFD that stand for a character whose bytes have not all been decoded yet. */
const complete = (text: string): string => text.replace(/\uFFFD+$/, "");

/** The core in this thread: the event loop waits while a batch runs (fine for tests and for one user). */
export class LocalEngine implements Engine {
  private readonly core: EngineCore;

  constructor(setup: ServeSetup) {
    this.core = new EngineCore(setup);
  }

  get info(): EngineInfo {
    return this.core.info;
  }

  run(rows: readonly EngineRow[], onText: OnText): Promise<RowResult[]> {
    return this.core.run(rows, onText);
  }

  async close(): Promise<void> {}
}
