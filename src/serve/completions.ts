/**
 * POST /v1/completions: one or more prompts (text, or token ids), n completions each, optional echo and
 * top-k logprobs (tokens, token_logprobs, top_logprobs, text_offset), streamed or not.
 */
import type { RowResult, TokenInfo } from "./engine.ts";
import type { Prompt, Service } from "./service.ts";
import { parseCompletion } from "./schema.ts";
import { SseStream, TextStream, tokenPieces } from "./sse.ts";

interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/** {text: logprob}, most likely first; tokens that decode to the same text keep the larger log-prob. */
function topDict(top: readonly { text: string; logprob: number }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of top) if (!(a.text in out)) out[a.text] = a.logprob;
  return out;
}

/** OpenAI's legacy logprobs object for tokens laid out from `offset` in the choice's text. */
function legacyLogprobs(tokens: readonly TokenInfo[], offset: number): LegacyLogprobs {
  const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for (const t of tokens) {
    out.tokens.push(t.text);
    out.token_logprobs.push(t.logprob);
    out.top_logprobs.push(t.top ? topDict(t.top) : null);
    out.text_offset.push(offset);
    offset += t.width;
  }
  return out;
}

export async function completions(svc: Service, body: unknown, signal: AbortSignal): Promise<Response> {
  const params = parseCompletion(body, { maxPrompts: svc.limits.maxBatch, maxPromptTokens: svc.limits.maxPromptTokens });
  const model = svc.model(params.model);
  svc.checkCount(params.prompts.length, params.n);
  const many = params.prompts.length > 1;
  const prompts: Prompt[] = [];
  for (const [i, p] of params.prompts.entries())
    prompts.push(await svc.encode(p, many ? `prompt[${i}]` : "prompt", many ? `prompt ${i}` : "the prompt"));
  const rows = svc.rows(params, model, prompts, { echo: params.echo, defaultMaxTokens: 16 });
  const id = svc.newId("cmpl");
  const created = Math.floor(Date.now() / 1000);
  const promptOf = (k: number) => prompts[Math.floor(k / params.n)];
  const echoText = (k: number) => (params.echo ? promptOf(k).text : "");
  const logprobsOf = (k: number, r: RowResult): LegacyLogprobs | null => {
    if (params.logprobs === null) return null;
    const echoed = params.echo ? legacyLogprobs(r.promptTokens ?? [], 0) : null;
    const gen = legacyLogprobs(r.tokens ?? [], echoText(k).length);
    if (!echoed) return gen;
    return {
      tokens: [...echoed.tokens, ...gen.tokens],
      token_logprobs: [...echoed.token_logprobs, ...gen.token_logprobs],
      top_logprobs: [...echoed.top_logprobs, ...gen.top_logprobs],
      text_offset: [...echoed.text_offset, ...gen.text_offset],
    };
  };

  if (!params.stream) {
    const results = await svc.run(rows, undefined, signal);
    return Response.json({
      id,
      object: "text_completion",
      created,
      model: params.model,
      choices: results.map((r, k) => ({ index: k, text: echoText(k) + r.text, logprobs: logprobsOf(k, r), finish_reason: r.finishReason })),
      usage: svc.usage(prompts, results),
    });
  }

  const sse = new SseStream();
  const chunk = (index: number, text: string, logprobs: LegacyLogprobs | null, finish: string | null) =>
    sse.send({ id, object: "text_completion", created, model: params.model, choices: [{ index, text, logprobs, finish_reason: finish }] });
  const streams = rows.map(() => new TextStream(params.stop));
  const running = svc.run(
    rows,
    (k, text) => {
      const delta = streams[k].update(text);
      if (delta) chunk(k, delta, null, null);
    },
    sse.signal,
  );
  if (params.echo && params.logprobs === null) rows.forEach((_, k) => chunk(k, echoText(k), null, null));
  running
    .then((results) => {
      results.forEach((r, k) => {
        if (params.logprobs !== null) {
          // not streamed as it was generated (the top-k pass runs after generation): one chunk per token now, each
          // carrying its piece of the choice's text (what the stream adds up to is the text the reply would have)
          if (params.echo)
            for (const [t, piece] of tokenPieces(r.promptTokens ?? [], echoText(k))) chunk(k, piece, legacyLogprobs([t], t.offset), null);
          for (const [t, piece] of tokenPieces(r.tokens ?? [], r.text))
            chunk(k, piece, legacyLogprobs([t], echoText(k).length + t.offset), null);
        } else {
          const rest = streams[k].finish(r.text);
          if (rest) chunk(k, rest, null, null);
        }
        chunk(k, "", null, r.finishReason);
      });
      if (params.includeUsage)
        sse.send({ id, object: "text_completion", created, model: params.model, choices: [], usage: svc.usage(prompts, results) });
      sse.end();
    })
    .catch((e) => sse.fail(e));
  return sse.response;
}
