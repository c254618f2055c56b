/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk, `data: [DONE]\n\n` at the end; an
 * error after the stream has started is sent as a `data: {"error": …}` chunk before [DONE]. TextStream decides
 * how much of a growing completion is safe to send: never a character that a stop string may still cut off, nor
 * a trailing U+FFFD of a character whose bytes are not all generated yet.
 */
import type { TokenInfo } from "./engine.ts";
import { toApiError } from "./errors.ts";

export class TextStream {
  private readonly stops: readonly string[];
  sent = "";

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** The text to send now, given everything decoded so far (which may still end in the start of a stop string). */
  update(text: string): string {
    const end = safeEnd(text, this.stops);
    if (end <= this.sent.length || !text.startsWith(this.sent)) return "";
    const delta = text.slice(this.sent.length, end);
    this.sent += delta;
    return delta;
  }

  /** The rest of the final text (already cut at its stop string). */
  finish(final: string): string {
    if (!final.startsWith(this.sent)) return ""; // decoding changed what was sent: nothing can be taken back
    const delta = final.slice(this.sent.length);
    this.sent = final;
    return delta;
  }
}

/**
 * Each token with the piece of `text` it stands for, the tokens laid end to end by width from `offset` 0: the pieces
 * add up to `text` (the last token takes whatever is left), and tokens past a stop string's cut get "".
 */
export function tokenPieces(tokens: readonly TokenInfo[], text: string): [TokenInfo & { offset: number }, string][] {
  let offset = 0;
  return tokens.map((t, i) => {
    const end = i === tokens.length - 1 ? text.length : Math.min(text.length, offset + t.width);
    const out: [TokenInfo & { offset: number }, string] = [{ ...t, offset }, text.slice(offset, end)];
    offset += t.width;
    return out;
  });
}

/** Length of the prefix of `text` that no stop string can still cut and that ends on a whole character. */
export function safeEnd(text: string, stops: readonly string[]): number {
  let end = text.length;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0) end = Math.min(end, i);
    for (let k = Math.min(s.length - 1, text.length); k > 0; k--) {
      if (text.endsWith(s.slice(0, k))) {
        end = Math.min(end, text.length - k);
        break;
      }
    }
  }
  while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
  return end;
}

/**
 * A streaming response: `send` chunks, then `end()` ([DONE] is written and the stream closes). `fail(e)` sends an
 * error chunk and ends. `signal` aborts when the client goes away; what is sent after that is dropped.
 */
export class SseStream {
  readonly response: Response;
  private readonly abort = new AbortController();
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly encoder = new TextEncoder();
  private open = true;

  constructor() {
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => {
        this.open = false;
        this.abort.abort();
      },
    });
    this.response = new Response(stream, {
      status: 200,
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no" },
    });
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  send(chunk: unknown): void {
    this.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }

  fail(e: unknown): void {
    this.send(toApiError(e).body());
    this.end();
  }

  end(): void {
    this.write("data: [DONE]\n\n");
    if (!this.open) return;
    this.open = false;
    try {
      this.controller.close();
    } catch {
      // cancelled meanwhile
    }
  }

  private write(s: string): void {
    if (!this.open) return;
    try {
      this.controller.enqueue(this.encoder.encode(s));
    } catch {
      this.open = false;
    }
  }
}
