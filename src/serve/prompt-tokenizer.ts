/**
 * Prompt text → token ids with the work bounded: a text longer than `maxChars` is refused before it is tokenized
 * (the caller derives the bound from the longest token, so that such a text cannot fit in the context anyway),
 * and chat messages are rendered with the chat template, then bounded the same way. `InlinePromptTokenizer` does
 * it in this thread (tests, `app.request()`); tokenizer-thread.ts does it in a worker thread, so that a long
 * prompt never holds up the event loop (`colloquy serve`).
 */
import type { Tokenizer } from "../formats/tokenizer.ts";
import { type ChatFormat, type ChatMessage, chatFormat } from "../formats/chat-template.ts";

export type PromptJob =
  | { kind: "text"; text: string; addSpecial: boolean; maxChars: number }
  | { kind: "chat"; messages: ChatMessage[]; maxChars: number };

/** The ids (and, for chat, the rendered text), or how long the text was when it was refused unread. */
export type PromptResult = { ok: true; ids: number[]; text: string | null } | { ok: false; chars: number };

export interface PromptTokenizer {
  run(job: PromptJob): Promise<PromptResult>;
  /** Jobs accepted and not finished (the server refuses new requests with 429 past its queue limit). */
  readonly pending: number;
  close(): Promise<void>;
}

/** One job, synchronously: render (chat), bound, tokenize; an empty prompt starts from BOS when there is one. */
export function encodePrompt(tok: Tokenizer, chat: ChatFormat, job: PromptJob): PromptResult {
  const text = job.kind === "chat" ? chat.render(job.messages) : job.text;
  if (text.length > job.maxChars) return { ok: false, chars: text.length };
  let ids = tok.encode(text, { addSpecial: job.kind === "chat" ? chat.addSpecial : job.addSpecial });
  if (ids.length === 0 && tok.bosId !== null) ids = [tok.bosId];
  return { ok: true, ids, text: job.kind === "chat" ? text : null };
}

/**
 * The most UTF-8 bytes any single token decodes to, plus one (a decoder may drop a leading space): no token covers
 * more characters of a prompt than this, so a prompt of c characters has at least c / this many tokens (before a
 * normalizer that shrinks text; see MAX_SHRINK in service.ts).
 */
export function longestTokenBytes(tok: Tokenizer): number {
  let longest = 1;
  for (let id = 0; id < tok.vocabSize; id++) {
    let n = 0;
    try {
      n = Buffer.byteLength(tok.decode([id], { skipSpecial: false }));
    } catch {
      // an id without a token
    }
    if (n > longest) longest = n;
  }
  return longest + 1;
}

export class InlinePromptTokenizer implements PromptTokenizer {
  private readonly tok: Tokenizer;
  private readonly chat: ChatFormat;
  readonly pending = 0;

  constructor(tok: Tokenizer) {
    this.tok = tok;
    this.chat = chatFormat(tok);
  }

  async run(job: PromptJob): Promise<PromptResult> {
    return encodePrompt(this.tok, this.chat, job);
  }

  async close(): Promise<void> {}
}
