/**
 * POST /v1/chat/completions: messages rendered with the model's chat template (or the plain fallback), n replies,
 * logprobs with top_logprobs, streamed as chat.completion.chunk deltas or not.
 */
import type { TokenInfo } from "./engine.ts";
import type { Service } from "./service.ts";
import { parseChat } from "./schema.ts";
import { SseStream, TextStream, tokenPieces } from "./sse.ts";

interface ChatLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

const bytes = (s: string): number[] => Array.from(Buffer.from(s, "utf8"));

function chatLogprobs(tokens: readonly TokenInfo[]): { content: ChatLogprob[] } {
  return {
    content: tokens.map((t) => ({
      token: t.text,
      logprob: t.logprob ?? 0,
      bytes: bytes(t.text),
      top_logprobs: (t.top ?? []).map((a) => ({ token: a.text, logprob: a.logprob, bytes: bytes(a.text) })),
    })),
  };
}

export async function chatCompletions(svc: Service, body: unknown, signal: AbortSignal): Promise<Response> {
  const params = parseChat(body);
  const model = svc.model(params.model);
  svc.checkCount(1, params.n);
  const prompt = await svc.encodeChat(params.messages);
  const rows = svc.rows(params, model, [prompt], { extraStop: svc.chat.stop, defaultMaxTokens: "context" });
  const id = svc.newId("chatcmpl");
  const created = Math.floor(Date.now() / 1000);

  if (!params.stream) {
    const results = await svc.run(rows, undefined, signal);
    return Response.json({
      id,
      object: "chat.completion",
      created,
      model: params.model,
      choices: results.map((r, k) => ({
        index: k,
        message: { role: "assistant", content: r.text },
        logprobs: params.logprobs === null ? null : chatLogprobs(r.tokens ?? []),
        finish_reason: r.finishReason,
      })),
      usage: svc.usage([prompt], results),
    });
  }

  const sse = new SseStream();
  const chunk = (index: number, delta: object, logprobs: object | null, finish: string | null) =>
    sse.send({
      id,
      object: "chat.completion.chunk",
      created,
      model: params.model,
      choices: [{ index, delta, logprobs, finish_reason: finish }],
    });
  const streams = rows.map(() => new TextStream(rows[0].stop));
  const running = svc.run(
    rows,
    (k, text) => {
      const delta = streams[k].update(text);
      if (delta) chunk(k, { content: delta }, null, null);
    },
    sse.signal,
  );
  rows.forEach((_, k) => chunk(k, { role: "assistant", content: "" }, null, null));
  running
    .then((results) => {
      results.forEach((r, k) => {
        if (params.logprobs !== null) {
          for (const [t, piece] of tokenPieces(r.tokens ?? [], r.text)) chunk(k, { content: piece }, chatLogprobs([t]), null);
        } else {
          const rest = streams[k].finish(r.text);
          if (rest) chunk(k, { content: rest }, null, null);
        }
        chunk(k, {}, null, r.finishReason);
      });
      if (params.includeUsage)
        sse.send({ id, object: "chat.completion.chunk", created, model: params.model, choices: [], usage: svc.usage([prompt], results) });
      sse.end();
    })
    .catch((e) => sse.fail(e));
  return sse.response;
}
