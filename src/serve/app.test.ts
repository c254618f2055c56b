/**
 * The HTTP API in-process (`app.request()`, no port): the tiny random model with one adapter, served by the
 * LocalEngine. Shapes of OpenAI's responses, seeds, streaming = non-streaming, stop strings, logprobs, and every
 * kind of bad request answered with an OpenAI-shaped error while the server keeps working.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "../engine/backend.ts";
import { createAdapter } from "../engine/lora.ts";
import { Rng } from "../util/rng.ts";
import { tinyModel, tinyTokenizer } from "../../test/tiny.ts";
import { createApp } from "./app.ts";
import { type Engine, EngineCore, type EngineRow, LocalEngine } from "./engine.ts";
import type { ErrorBody } from "./errors.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { hostPolicy } from "../util/allowed-hosts.ts";
import { InlinePromptTokenizer, type PromptTokenizer } from "./prompt-tokenizer.ts";
import { MAX_SHRINK, Service, type ServeLimits } from "./service.ts";

function tinyService(limits: Partial<ServeLimits> = {}, engine?: Engine, tokenizer = tinyTokenizer(), prompts?: PromptTokenizer): Service {
  const backend = new CpuBackend(tinyModel());
  const adapter = createAdapter("kind", backend.config, { rank: 4, alpha: 8, rslora: false, targets: ["q", "v", "down"] });
  const rng = new Rng(5);
  for (let i = 0; i < adapter.weights.data.length; i++) adapter.weights.data[i] = 0.3 * rng.normal();
  backend.addAdapter(adapter);
  const setup = {
    backend,
    tokenizer: tinyTokenizer(),
    tokenizerPath: null,
    contextLength: 64,
    models: [
      { id: "base", adapter: null },
      { id: "kind", adapter: "kind" },
    ],
  };
  return new Service(engine ?? new LocalEngine(setup), tokenizer, limits, 0, prompts);
}

const svc = tinyService();
const app = createApp(svc);

// OpenAI's response bodies and stream chunks, as these tests read them
interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}
interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[]; // null for the first prompt token
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}
interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}
interface ChatLogprobs {
  content: (TokenLogprob & { top_logprobs: TokenLogprob[] })[];
}
type FinishReason = "stop" | "length";
interface CompletionChoice {
  index: number;
  text: string;
  logprobs: CompletionLogprobs | null;
  finish_reason: FinishReason;
}
interface ChatChoice {
  index: number;
  message: { role: string; content: string };
  logprobs: ChatLogprobs | null;
  finish_reason: FinishReason;
}
interface Completion {
  object: string;
  choices: CompletionChoice[];
  usage: Usage;
}
interface ChatCompletion {
  object: string;
  choices: ChatChoice[];
  usage: Usage;
}
interface CompletionChunk {
  object: string;
  choices: (Omit<CompletionChoice, "finish_reason"> & { finish_reason: FinishReason | null })[];
  usage?: Usage;
}
interface ChatChunk {
  object: string;
  choices: {
    index: number;
    delta: { role?: string; content?: string };
    logprobs: ChatLogprobs | null;
    finish_reason: FinishReason | null;
  }[];
  usage?: Usage;
}

/** A POST with a JSON body; `json` is the parsed answer (a T when the request succeeds), null for a stream. */
async function post<T = Completion>(path: string, body: unknown): Promise<{ status: number; json: T; text: string }> {
  const res = await app.request(path, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // a stream
  }
  return { status: res.status, json: json as T, text };
}

/** The chunks of an SSE body; checks that it ends with [DONE]. */
function events<T>(text: string): T[] {
  const datas = text
    .split("\n\n")
    .filter((s) => s.trim())
    .map((s) => s.replace(/^data: /, ""));
  assert.equal(datas.at(-1), "[DONE]");
  return datas.slice(0, -1).map((d) => JSON.parse(d));
}

function assertError(r: { status: number; json: unknown }, status: number, param?: string | null): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  const { error } = r.json as ErrorBody;
  assert.equal(typeof error.message, "string");
  assert.ok("type" in error && "param" in error && "code" in error);
  if (param !== undefined) assert.equal(error.param, param);
}

test("GET /v1/models lists the base model and each adapter", async () => {
  const res = await app.request("/v1/models");
  const body = (await res.json()) as { object: string; data: { id: string }[] };
  assert.equal(body.object, "list");
  assert.deepEqual(
    body.data.map((m) => m.id),
    ["base", "kind"],
  );
  assert.equal((await app.request("/v1/models/kind")).status, 200);
  assert.equal((await app.request("/v1/models/nope")).status, 404);
});

test("completions: OpenAI's shape, usage, n × prompts, and the same seed gives the same text", async () => {
  const req = { model: "base", prompt: ["Alice has", "The key"], max_tokens: 5, n: 2, seed: 7 };
  const a = await post("/v1/completions", req);
  assert.equal(a.status, 200, a.text);
  assert.equal(a.json.object, "text_completion");
  assert.deepEqual(
    a.json.choices.map((c) => c.index),
    [0, 1, 2, 3],
  );
  for (const c of a.json.choices) assert.ok(["stop", "length"].includes(c.finish_reason));
  assert.equal(a.json.usage.total_tokens, a.json.usage.prompt_tokens + a.json.usage.completion_tokens);
  const b = await post("/v1/completions", req);
  assert.deepEqual(b.json.choices, a.json.choices);
  const c = await post("/v1/completions", { ...req, seed: 8 });
  assert.notDeepEqual(
    c.json.choices.map((x) => x.text),
    a.json.choices.map((x) => x.text),
  );
  // token-id prompts work too, default max_tokens is 16
  const ids = await post("/v1/completions", { model: "base", prompt: [5, 6, 7], temperature: 0 });
  assert.equal(ids.status, 200);
  assert.ok(ids.json.usage.completion_tokens <= 16);
});

test("a seeded row gives the same tokens alone or batched with other rows", async () => {
  const core = new EngineCore({
    backend: new CpuBackend(tinyModel()),
    tokenizer: tinyTokenizer(),
    tokenizerPath: null,
    contextLength: 64,
    models: [],
  });
  const row = (p: string, seed: number): EngineRow => ({
    adapter: null,
    prompt: tinyTokenizer().encode(p),
    maxTokens: 12,
    temperature: 1,
    topP: 1,
    topK: 0,
    stop: [],
    seed,
    stream: false,
    logprobs: null,
    echo: false,
  });
  const [alone] = await core.run([row("Alice has the key", 7)], () => {});
  const batch = await core.run([row("Bob went to the market", 1), row("Alice has the key", 7), row("x", 3)], () => {});
  assert.deepEqual(batch[1].ids, alone.ids);
});

test("an adapter is a model: it changes the output", async () => {
  const req = { prompt: "Alice has", max_tokens: 6, temperature: 0 };
  const base = await post("/v1/completions", { ...req, model: "base" });
  const kind = await post("/v1/completions", { ...req, model: "kind" });
  assert.notEqual(base.json.choices[0].text, kind.json.choices[0].text);
});

test("streaming gives the same text as a plain request, in chunks, then [DONE]", async () => {
  const req = { model: "kind", prompt: "The key", max_tokens: 8, seed: 3 };
  const plain = await post("/v1/completions", req);
  const streamed = await post("/v1/completions", { ...req, stream: true, stream_options: { include_usage: true } });
  assert.equal(streamed.status, 200);
  const chunks = events<CompletionChunk>(streamed.text);
  const text = chunks
    .filter((c) => c.choices.length)
    .map((c) => c.choices[0].text)
    .join("");
  assert.equal(text, plain.json.choices[0].text);
  assert.equal(chunks.at(-2)!.choices[0].finish_reason, plain.json.choices[0].finish_reason);
  assert.deepEqual(chunks.at(-1)!.usage, plain.json.usage);

  const chatReq = {
    model: "base",
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Who has the key?" },
    ],
    max_tokens: 6,
    seed: 1,
  };
  const chat = await post<ChatCompletion>("/v1/chat/completions", chatReq);
  assert.equal(chat.json.object, "chat.completion");
  assert.equal(chat.json.choices[0].message.role, "assistant");
  const chatStream = events<ChatChunk>((await post("/v1/chat/completions", { ...chatReq, stream: true })).text);
  assert.equal(chatStream[0].object, "chat.completion.chunk");
  assert.equal(chatStream[0].choices[0].delta.role, "assistant");
  assert.equal(chatStream.map((c) => c.choices[0].delta.content ?? "").join(""), chat.json.choices[0].message.content);
});

test("stop strings cut the text, streamed or not", async () => {
  const req = { model: "base", prompt: "Alice has", max_tokens: 12, seed: 11 };
  const full = (await post("/v1/completions", req)).json.choices[0].text;
  const stop = full.slice(3, 5);
  assert.ok(stop.length === 2, `text too short: ${JSON.stringify(full)}`);
  const cut = full.slice(0, full.indexOf(stop));
  const r = await post("/v1/completions", { ...req, stop });
  assert.equal(r.json.choices[0].text, cut);
  assert.equal(r.json.choices[0].finish_reason, "stop");
  const s = events<CompletionChunk>((await post("/v1/completions", { ...req, stop: [stop], stream: true })).text);
  assert.equal(s.map((c) => c.choices[0].text).join(""), cut);
});

test("logprobs: completions (top-k, echo, offsets) and chat (top_logprobs)", async () => {
  const r = await post("/v1/completions", { model: "base", prompt: "Alice has", max_tokens: 4, logprobs: 3, echo: true, temperature: 0 });
  const c = r.json.choices[0];
  const lp = c.logprobs!;
  const n = r.json.usage.prompt_tokens + r.json.usage.completion_tokens;
  assert.equal(lp.tokens.length, n);
  assert.equal(lp.token_logprobs[0], null);
  assert.ok(c.text.startsWith("Alice has"));
  for (let i = 1; i < n; i++) {
    assert.ok(lp.token_logprobs[i]! <= 0);
    assert.ok(Object.keys(lp.top_logprobs[i]!).length <= 3 && Object.keys(lp.top_logprobs[i]!).length >= 1);
    assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  }
  // greedy: the chosen token is the most likely one
  const last = n - 1;
  assert.ok(Math.abs(Math.max(...Object.values(lp.top_logprobs[last]!)) - lp.token_logprobs[last]!) < 1e-6);

  const chat = await post<ChatCompletion>("/v1/chat/completions", {
    model: "kind",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 3,
    logprobs: true,
    top_logprobs: 2,
  });
  const content = chat.json.choices[0].logprobs!.content;
  assert.equal(content.length, chat.json.usage.completion_tokens);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 2);
    assert.ok(Array.isArray(t.bytes));
  }
});

test("logprobs on characters split over tokens: offsets land on the text, streaming adds up to the same text", async () => {
  // the tiny tokenizer writes é and ï as two byte tokens each
  const req = { model: "base", prompt: "café naïve", max_tokens: 6, logprobs: 1, echo: true, seed: 2 };
  const plain = (await post("/v1/completions", req)).json.choices[0];
  const lp = plain.logprobs!;
  assert.ok(lp.tokens.includes(""), "a byte token that does not finish its character adds no text");
  for (let i = 0; i < lp.tokens.length; i++) {
    assert.ok(plain.text.startsWith(lp.tokens[i], lp.text_offset[i]), `token ${i} ${JSON.stringify(lp.tokens[i])} at ${lp.text_offset[i]}`);
    if (i > 0) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  }
  const streamed = events<CompletionChunk>((await post("/v1/completions", { ...req, stream: true })).text);
  assert.equal(streamed.map((c) => c.choices[0].text).join(""), plain.text);
  assert.deepEqual(
    streamed.flatMap((c) => c.choices[0].logprobs?.text_offset ?? []),
    lp.text_offset,
  );
});

test("logprobs with a stop string: the stream stops where the text does (the token that crosses the cut is cut too)", async () => {
  /** A stop string that starts inside a generated token of `text` (the token's offsets from logprobs), seen nowhere before. */
  const stopInsideToken = (text: string, tokens: string[], start: number): string => {
    let at = start;
    for (const t of tokens) {
      const stop = text.slice(at + 1, at + 3);
      if (t.length >= 2 && stop.length === 2 && text.indexOf(stop) === at + 1) return stop;
      at += t.length;
    }
    throw new Error(`no token of ${JSON.stringify(text)} to cut inside`);
  };
  const req = { model: "base", prompt: "Alice has", max_tokens: 16, seed: 11, logprobs: 1 };
  const full = (await post("/v1/completions", req)).json.choices[0];
  const stop = stopInsideToken(full.text, full.logprobs!.tokens, 0);
  const plain = (await post("/v1/completions", { ...req, stop })).json.choices[0];
  assert.equal(plain.finish_reason, "stop");
  const streamed = events<CompletionChunk>((await post("/v1/completions", { ...req, stop, stream: true })).text);
  assert.equal(streamed.map((c) => c.choices[0].text).join(""), plain.text);

  const chatReq = { model: "base", messages: [{ role: "user", content: "Alice has" }], max_tokens: 16, seed: 4, logprobs: true };
  const chatFull = (await post<ChatCompletion>("/v1/chat/completions", chatReq)).json.choices[0];
  const chatStop = stopInsideToken(
    chatFull.message.content,
    chatFull.logprobs!.content.map((t) => t.token),
    0,
  );
  const chatPlain = (await post<ChatCompletion>("/v1/chat/completions", { ...chatReq, stop: chatStop })).json.choices[0];
  const chatStream = events<ChatChunk>((await post("/v1/chat/completions", { ...chatReq, stop: chatStop, stream: true })).text);
  assert.equal(chatStream.map((c) => c.choices[0].delta.content ?? "").join(""), chatPlain.message.content);
});

test("seeds: each integer draws its own stream (-1 is not 0)", async () => {
  const text = async (seed: number) =>
    (await post("/v1/completions", { model: "base", prompt: "Alice has", max_tokens: 8, seed })).json.choices[0].text;
  const [minus, zero, big] = [await text(-1), await text(0), await text(2 ** 32)];
  assert.notEqual(minus, zero);
  assert.notEqual(big, zero);
  assert.equal(await text(-1), minus);
});

test("max_tokens is capped by the context; a prompt longer than it is a 400", async () => {
  const r = await post("/v1/completions", { model: "base", prompt: "a", max_tokens: 100000, temperature: 0, stop: [] });
  assert.equal(r.status, 200);
  assert.ok(r.json.usage.prompt_tokens + r.json.usage.completion_tokens <= 64);
  assertError(await post("/v1/completions", { model: "base", prompt: "Alice has the key. ".repeat(30) }), 400, "prompt");
});

test("bad requests get OpenAI-shaped 4xx errors and the server keeps working", async () => {
  assertError(await post("/v1/completions", "{not json"), 400);
  assertError(await post("/v1/completions", "[1, 2]"), 400);
  assertError(await post("/v1/completions", { prompt: "x" }), 400, "model");
  assertError(await post("/v1/completions", { model: "nope", prompt: "x" }), 404, "model");
  assertError(await post("/v1/completions", { model: "base", prompt: "x", temperature: "hot" }), 400, "temperature");
  assertError(await post("/v1/completions", { model: "base", prompt: "x", n: 0 }), 400, "n");
  assertError(await post("/v1/completions", { model: "base", prompt: "x", n: 100 }), 400, "n");
  assertError(await post("/v1/completions", { model: "base", prompt: [1, 99999] }), 400, "prompt");
  assertError(await post("/v1/completions", { model: "base", prompt: "x", suffix: "y" }), 400, "suffix");
  assertError(await post("/v1/completions", { model: "base", prompt: "x", presence_penalty: 1 }), 400, "presence_penalty");
  assertError(await post("/v1/chat/completions", { model: "base", messages: [] }), 400, "messages");
  assertError(await post("/v1/chat/completions", { model: "base", messages: [{ role: "robot", content: "x" }] }), 400, "messages[0].role");
  assertError(await post("/v1/chat/completions", { model: "base", messages: [{ role: "user", content: [{ type: "image_url" }] }] }), 400);
  assertError(
    await post("/v1/chat/completions", { model: "base", messages: [{ role: "user", content: "x" }], top_logprobs: 2 }),
    400,
    "top_logprobs",
  );
  assertError(await post("/v1/nothing", {}), 404);
  const big = await app.request("/v1/completions", {
    method: "POST",
    body: JSON.stringify({ model: "base", prompt: "x".repeat(2 << 20) }),
  });
  assertError({ status: big.status, json: await big.json() }, 413);
  const ok = await post("/v1/completions", { model: "base", prompt: "x", max_tokens: 2 });
  assert.equal(ok.status, 200);
});

test("a bug in the engine is a 500 with a message, and the next request is served", async () => {
  let calls = 0;
  const inner = tinyService();
  const flaky: Engine = {
    info: inner.engine.info,
    run(rows, onText) {
      if (calls++ === 0) throw new Error("boom");
      return inner.engine.run(rows, onText);
    },
    close: async () => {},
  };
  const bugs: unknown[] = [];
  const a = createApp(tinyService({}, flaky), { onBug: (e) => bugs.push(e) });
  const req = { method: "POST", body: JSON.stringify({ model: "base", prompt: "x", max_tokens: 2 }) };
  const r1 = await a.request("/v1/completions", req);
  assert.equal(r1.status, 500);
  const body = (await r1.json()) as ErrorBody;
  assert.match(body.error.message, /boom/);
  assert.equal(body.error.type, "server_error");
  assert.equal(bugs.length, 1);
  assert.equal((await a.request("/v1/completions", req)).status, 200);
});

test("a wrong type is named as such; a missing field as missing", async () => {
  const wrong = await post("/v1/completions", { model: "base", prompt: "x", max_tokens: "16" });
  assertError(wrong, 400, "max_tokens");
  const e = (wrong.json as unknown as ErrorBody).error;
  assert.equal(e.code, "invalid_type");
  assert.match(e.message, /^invalid type for 'max_tokens': expected number, got a string$/);
  const nul = (await post("/v1/completions", { model: null, prompt: "x" })).json as unknown as ErrorBody;
  assert.deepEqual([nul.error.param, nul.error.code], ["model", "invalid_type"]);
  const missing = (await post("/v1/completions", { prompt: "x" })).json as unknown as ErrorBody;
  assert.deepEqual(
    [missing.error.param, missing.error.code, missing.error.message],
    ["model", "missing_required_parameter", "you must provide 'model'"],
  );
  const noPrompt = (await post("/v1/completions", { model: "base" })).json as unknown as ErrorBody;
  assert.deepEqual([noPrompt.error.param, noPrompt.error.code], ["prompt", "missing_required_parameter"]);
  const numberPrompt = (await post("/v1/completions", { model: "base", prompt: 5 })).json as unknown as ErrorBody;
  assert.deepEqual([numberPrompt.error.param, numberPrompt.error.code], ["prompt", "invalid_type"]);
  assert.match(numberPrompt.error.message, /^invalid type for 'prompt': expected string or array, got an integer$/);
  const nested = (await post<ChatCompletion>("/v1/chat/completions", { model: "base", messages: [{ role: "user", content: 5 }] }))
    .json as unknown as ErrorBody;
  assert.equal(nested.error.param, "messages[0].content");
  assert.notEqual(nested.error.code, "missing_required_parameter");
});

/** The tiny tokenizer, recording the length of every text it is asked to encode. */
function spyTokenizer(): { tok: Tokenizer; seen: number[] } {
  const inner = tinyTokenizer();
  const seen: number[] = [];
  const tok: Tokenizer = {
    kind: inner.kind,
    vocabSize: inner.vocabSize,
    bosId: inner.bosId,
    eosId: inner.eosId,
    chatTemplate: inner.chatTemplate,
    encode: (text, opts) => {
      seen.push(text.length);
      return inner.encode(text, opts);
    },
    decode: (ids, opts) => inner.decode(ids, opts),
  };
  return { tok, seen };
}

test("the work a prompt costs is bounded before it is done: length in characters, token ids, prompt count", async () => {
  const { tok, seen } = spyTokenizer();
  const svc = tinyService({}, undefined, tok);
  const a = createApp(svc);
  const send = async (path: string, body: unknown) => {
    const res = await a.request(path, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as ErrorBody };
  };
  // the bound: 63 tokens (context 64) × the longest token's bytes × MAX_SHRINK
  assert.equal(svc.maxPromptChars, MAX_SHRINK * 63 * svc.longestToken);
  assert.ok(svc.longestToken > 1 && svc.longestToken < 40, `longest token ${svc.longestToken} bytes`);
  const huge = "Alice has the key. ".repeat(50_000); // 950,000 characters
  const t0 = performance.now();
  const r = await send("/v1/completions", { model: "base", prompt: huge });
  const ms = performance.now() - t0;
  assertError(r, 400, "prompt");
  assert.equal(r.json.error.code, "context_length_exceeded");
  assert.match(r.json.error.message, /950000 characters/);
  assert.ok(
    seen.every((n) => n <= svc.maxPromptChars),
    `tokenized texts of ${Math.max(...seen)} characters`,
  );
  console.log(`a 950,000-character prompt refused in ${ms.toFixed(1)} ms without tokenizing it`);
  // just over the bound in tokens but not in characters: tokenized, then refused by its count
  const r2 = await send("/v1/completions", { model: "base", prompt: "Alice has the key. ".repeat(20) });
  assert.equal(r2.json.error.code, "context_length_exceeded");
  assert.match(r2.json.error.message, /has \d+ tokens/);
  // chat: rendered, then bounded before tokenizing
  const seenBefore = seen.length;
  const c = await send("/v1/chat/completions", { model: "base", messages: [{ role: "user", content: huge }] });
  assertError(c, 400, "messages");
  assert.equal(c.json.error.code, "context_length_exceeded");
  assert.equal(seen.length, seenBefore, "the rendered chat was not tokenized");
  // token ids: refused before the schema walks them; too many prompts: before any is read
  const ids = await send("/v1/completions", { model: "base", prompt: Array.from({ length: 300_000 }, () => 5) });
  assertError(ids, 400, "prompt");
  assert.equal(ids.json.error.code, "context_length_exceeded");
  const nested = await send("/v1/completions", { model: "base", prompt: [[5, 6], Array.from({ length: 1000 }, () => 5)] });
  assertError(nested, 400, "prompt[1]");
  const many = await send("/v1/completions", { model: "base", prompt: Array.from({ length: 5000 }, () => "Alice") });
  assertError(many, 400, "prompt");
  assert.match(many.json.error.message, /5000 prompts/);
  const bias = await send("/v1/completions", {
    model: "base",
    prompt: "x",
    logit_bias: Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [i, 1])),
  });
  assertError(bias, 400, "logit_bias");
  assert.equal((await send("/v1/completions", { model: "base", prompt: "Alice", max_tokens: 2 })).status, 200);
});

test("prompts waiting for the tokenizer are bounded: past --max-queue, 429", async () => {
  const tok = tinyTokenizer();
  const inline = new InlinePromptTokenizer(tok);
  const stuck: PromptTokenizer = { pending: 3, run: (job) => inline.run(job), close: async () => {} };
  const a = createApp(tinyService({ maxQueue: 3 }, undefined, tok, stuck));
  const res = await a.request("/v1/completions", { method: "POST", body: JSON.stringify({ model: "base", prompt: "Alice" }) });
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "1");
  assert.equal(((await res.json()) as ErrorBody).error.code, "rate_limit_exceeded");
});

test("an API key: /v1 needs 'Authorization: Bearer <key>', /health does not", async () => {
  const a = createApp(svc, { apiKey: "s3cret-key" });
  const models = (headers: Record<string, string>) => a.request("/v1/models", { headers });
  const none = await models({});
  assert.equal(none.status, 401);
  assert.match(none.headers.get("www-authenticate")!, /^Bearer/);
  assert.equal(((await none.json()) as ErrorBody).error.code, "invalid_api_key");
  assert.equal((await models({ authorization: "Bearer s3cret-kez" })).status, 401);
  assert.equal((await models({ authorization: "Bearer s3cret-key-and-more" })).status, 401);
  assert.equal((await models({ authorization: "Basic s3cret-key" })).status, 401);
  assert.equal((await models({ authorization: "Bearer s3cret-key" })).status, 200);
  assert.equal((await models({ authorization: "bearer  s3cret-key" })).status, 200);
  const gen = await a.request("/v1/completions", { method: "POST", body: JSON.stringify({ model: "base", prompt: "x", max_tokens: 1 }) });
  assert.equal(gen.status, 401, "checked before the body is read");
  assert.equal((await a.request("/health")).status, 200);
});

test("Host header: 421 for a name the server does not answer to, before the API key", async () => {
  const a = createApp(svc, { apiKey: "k" });
  const res = await a.request("http://localhost/v1/models", { headers: { host: "evil.example:8000", authorization: "Bearer k" } });
  assert.equal(res.status, 421);
  const e = ((await res.json()) as ErrorBody).error;
  assert.equal(e.code, "host_not_allowed");
  assert.match(e.message, /--allowed-hosts/);
  assert.equal((await a.request("http://localhost/health", { headers: { host: "evil.example" } })).status, 421);
  for (const host of ["localhost:8000", "127.0.0.1:8000", "[::1]:8000"])
    assert.equal((await a.request("http://localhost/health", { headers: { host } })).status, 200, host);
  const named = createApp(svc, { hosts: hostPolicy("127.0.0.1", ["api.lab.example"]) });
  assert.equal((await named.request("http://localhost/health", { headers: { host: "api.lab.example" } })).status, 200);
});

test("a body is limited while it streams in; a client that goes away mid-upload is no bug", async () => {
  const bugs: unknown[] = [];
  const a = createApp(tinyService({ maxBodyBytes: 4096 }), { onBug: (e) => bugs.push(e) });
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += 1024;
      controller.enqueue(new Uint8Array(1024).fill(0x20));
    },
  });
  const big = await a.request("/v1/completions", { method: "POST", body: endless, duplex: "half" } as RequestInit);
  assert.equal(big.status, 413);
  assert.equal(((await big.json()) as ErrorBody).error.code, "request_too_large");
  assert.ok(pulled <= 4096 + 2048, `read ${pulled} bytes of an endless body`);
  let n = 0;
  const broken = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (n++ === 2) controller.error(new Error("aborted"));
      else controller.enqueue(new TextEncoder().encode('{"model": "base", '));
    },
  });
  const gone = await a.request("/v1/completions", { method: "POST", body: broken, duplex: "half" } as RequestInit);
  assert.equal(gone.status, 499);
  assert.equal(((await gone.json()) as ErrorBody).error.code, "client_closed_request");
  assert.deepEqual(bugs, [], "not logged as a bug");
});
