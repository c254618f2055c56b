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
import { Service, type ServeLimits } from "./service.ts";

function tinyService(limits: Partial<ServeLimits> = {}, engine?: Engine): Service {
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
  return new Service(engine ?? new LocalEngine(setup), tinyTokenizer(), limits);
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
