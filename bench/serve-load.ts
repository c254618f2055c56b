/**
 * A load test of `colloquy serve`, as a hostile crowd of clients would run it: the server is started as a child
 * process (the default model unless --model), then `requests` requests of a seeded mix of kinds — valid
 * completions and chats, streamed or not, with logprobs or token ids; malformed JSON, wrong types, missing fields,
 * unknown models and URLs, too many token ids, too long a text, bodies over the limit (declared and chunked),
 * no or a wrong API key, a Host header it does not answer to, clients that go away mid-upload or mid-stream — are
 * sent `concurrency` at a time, while `big` prompts of `bigBytes` characters each are sent alongside and /health
 * is asked every `healthEveryMs` on its own connection. Every answer is checked: the status one of those its kind
 * allows, the body OpenAI-shaped (an error object, a completion, or an SSE stream ending in [DONE]).
 *
 *   npm run bench:serve -- [--model M] [--requests 1000] [--concurrency 50] [--big 10] [--big-bytes 1000000] [--seed 0]
 *
 * Prints one JSON object: requests by kind and status, malformed answers, crashes (the server process exiting),
 * bugs the server logged, /health latency (max, p99, p50), the server's peak RSS (VmHWM) and whether SIGTERM then
 * stopped it cleanly. test/serve-load.test.ts runs a smaller one.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

export interface LoadOptions {
  model: string | null; // null: colloquy's default model
  requests: number;
  concurrency: number;
  big: number; // prompts of bigBytes characters, sent alongside
  bigBytes: number;
  seed: number;
  healthEveryMs: number;
  serveArgs: string[]; // more flags for `colloquy serve`
  log?: (line: string) => void;
}

export const DEFAULT_LOAD: LoadOptions = {
  model: null,
  requests: 1000,
  concurrency: 50,
  big: 10,
  bigBytes: 1_000_000,
  seed: 0,
  healthEveryMs: 20,
  serveArgs: [],
};

export interface LoadReport {
  model: string;
  requests: number;
  concurrency: number;
  big_prompts: number;
  duration_s: number;
  by_status: Record<string, number>;
  by_kind: Record<string, Record<string, number>>;
  malformed: number; // answers whose status or body was not what their kind allows
  malformed_examples: string[];
  crashes: number; // the server process exited while under load
  bugs_logged: number; // "internal error" lines on the server's stderr
  health: { samples: number; failed: number; max_ms: number; p99_ms: number; p50_ms: number }; // as a client saw /health
  server_event_loop_delay_ms: { max: number; p99: number; mean: number } | null; // the server's own, over the run (its /health)
  big_prompt_ms: number[]; // how long each big prompt took to be answered
  server_peak_rss_mb: number | null; // VmHWM of the server process (Linux)
  clean_exit: boolean; // SIGTERM afterwards: exit status 0
  machine: { cpus: number; load_average_before: number; load_average_after: number }; // other work on it slows every figure
}

const API_KEY = "load-test-key-0123456789";
const HOSTILE_HOST = "rebind.attacker.example";

/** A small seeded generator (xorshift32) for the mix: the bench needs no library code. */
function rng(seed: number): () => number {
  let s = (seed ^ 0x9e3779b9) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

interface Served {
  child: ChildProcess;
  host: string;
  port: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startServe(o: LoadOptions): Promise<Served> {
  const args = [path.join(ROOT, "bin/colloquy.mjs"), "serve", "--port", "0", ...(o.model ? ["--model", o.model] : []), ...o.serveArgs];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, COLLOQUY_API_KEY: API_KEY },
  });
  let err = "";
  // the server never outlives this process, however it ends
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  const onSignal = (sig: NodeJS.Signals) => {
    kill();
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.on("exit", kill);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const exited = new Promise<number | null>((r) =>
    child.on("exit", (code) => {
      process.off("exit", kill);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      r(code);
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`serve did not start in 15 minutes:\n${err}`));
    }, 15 * 60_000);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      err += d;
      if (err.length > 1 << 20) err = err.slice(-(1 << 19));
      const m = /listening on http:\/\/([^\s/]+):(\d+)\/v1/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]), stderr: () => err, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}) before listening:\n${err}`));
    });
  });
}

interface Outcome {
  status: number; // 0: no answer (the client went away on purpose)
  body: string;
}

interface Req {
  method?: string;
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  chunked?: number; // send the body in chunks of this many bytes (no Content-Length)
  abortUploadAfter?: number; // send this many bytes of the body, then close the connection
  abortStreamAfterFirstChunk?: boolean;
  fresh?: boolean; // a connection of its own (the server may cut it: an oversize upload is drained, then closed)
}

function send(s: Served, agent: http.Agent, r: Req): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const body = typeof r.body === "string" ? Buffer.from(r.body) : r.body;
    const headers: Record<string, string> = { host: `127.0.0.1:${s.port}`, authorization: `Bearer ${API_KEY}`, ...r.headers };
    if (body) headers["content-type"] ??= "application/json";
    if (body && r.chunked === undefined)
      headers["content-length"] = String(r.abortUploadAfter === undefined ? body.length : body.length * 4);
    if (r.fresh) headers.connection = "close";
    const req = http.request({
      host: s.host,
      port: s.port,
      method: r.method ?? (body ? "POST" : "GET"),
      path: r.path,
      headers,
      agent: r.fresh ? false : agent,
    });
    let done = false;
    const finish = (o: Outcome) => {
      if (!done) {
        done = true;
        resolve(o);
      }
    };
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => {
        chunks.push(c);
        if (r.abortStreamAfterFirstChunk) {
          req.destroy();
          finish({ status: 0, body: "" });
        }
      });
      res.on("end", () => finish({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", () => finish({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", (e) => {
      if (r.abortUploadAfter !== undefined || r.abortStreamAfterFirstChunk || r.chunked !== undefined) finish({ status: 0, body: "" });
      else if (!done) reject(e);
    });
    if (!body) return void req.end();
    if (r.abortUploadAfter !== undefined) {
      req.write(body.subarray(0, r.abortUploadAfter));
      setTimeout(() => {
        req.destroy();
        finish({ status: 0, body: "" });
      }, 20);
      return;
    }
    if (r.chunked !== undefined) {
      const size = r.chunked;
      let at = 0;
      const pump = () => {
        while (at < body.length && !done && !req.destroyed) {
          const ok = req.write(body.subarray(at, at + size));
          at += size;
          if (!ok) return void req.once("drain", pump);
        }
        if (!done && !req.destroyed) req.end();
      };
      pump();
      return;
    }
    req.end(body);
  });
}

type Check = (o: Outcome) => string | null; // null when well-formed

const isErrorBody = (o: Outcome): string | null => {
  try {
    const e = JSON.parse(o.body).error;
    return e && typeof e.message === "string" && "type" in e && "param" in e && "code" in e
      ? null
      : `not an error object: ${o.body.slice(0, 120)}`;
  } catch {
    return `not JSON: ${o.body.slice(0, 120)}`;
  }
};

function okOrBusy(object: string, stream: boolean): Check {
  return (o) => {
    if (o.status === 429 || o.status === 503) return isErrorBody(o);
    if (o.status !== 200) return `status ${o.status}: ${o.body.slice(0, 200)}`;
    if (stream) {
      const datas = o.body
        .split("\n\n")
        .filter((x) => x.trim())
        .map((x) => x.replace(/^data: /, ""));
      if (datas.at(-1) !== "[DONE]") return `stream without [DONE]: ${o.body.slice(-120)}`;
      for (const d of datas.slice(0, -1)) {
        const j = JSON.parse(d);
        if (j.error) return `error in stream: ${d.slice(0, 120)}`;
        if (j.object !== `${object}${object === "chat.completion" ? ".chunk" : ""}`) return `chunk of object ${j.object}`;
      }
      return null;
    }
    try {
      const j = JSON.parse(o.body);
      return j.object === object && Array.isArray(j.choices) && j.choices.length > 0 ? null : `not a ${object}: ${o.body.slice(0, 120)}`;
    } catch {
      return `not JSON: ${o.body.slice(0, 120)}`;
    }
  };
}

function error(status: number, code?: string): Check {
  return (o) => {
    if (o.status !== status) return `status ${o.status} (want ${status}): ${o.body.slice(0, 200)}`;
    const bad = isErrorBody(o);
    if (bad) return bad;
    if (code !== undefined && JSON.parse(o.body).error.code !== code) return `code ${JSON.parse(o.body).error.code} (want ${code})`;
    return null;
  };
}

const gone: Check = (o) => (o.status === 0 || o.status === 200 || o.status === 429 || o.status >= 400 ? null : `status ${o.status}`);

interface Kind {
  name: string;
  weight: number;
  make: (i: number, model: string) => Req;
  check: Check;
  fixed?: boolean; // the same request every time: built once (its body can be megabytes)
}

const json = (x: unknown) => JSON.stringify(x);

function kinds(maxBody: number): Kind[] {
  const words = "Ana has the red key. Ben keeps a cat. Next: Ana's pet. ";
  return [
    {
      name: "completion",
      weight: 6,
      make: (i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: words, max_tokens: 6, seed: i }) }),
      check: okOrBusy("text_completion", false),
    },
    {
      name: "completion-stream",
      weight: 3,
      make: (i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: words, max_tokens: 6, seed: i, stream: true }) }),
      check: okOrBusy("text_completion", true),
    },
    {
      name: "chat",
      weight: 3,
      make: (i, m) => ({
        path: "/v1/chat/completions",
        body: json({ model: m, messages: [{ role: "user", content: `Who has the key? ${i}` }], max_tokens: 6, seed: i }),
      }),
      check: okOrBusy("chat.completion", false),
    },
    {
      name: "chat-stream",
      weight: 2,
      make: (i, m) => ({
        path: "/v1/chat/completions",
        body: json({ model: m, messages: [{ role: "user", content: "Hi" }], max_tokens: 6, seed: i, stream: true }),
      }),
      check: okOrBusy("chat.completion", true),
    },
    {
      name: "logprobs-echo",
      weight: 1,
      make: (i, m) => ({
        path: "/v1/completions",
        body: json({ model: m, prompt: "Ana has", max_tokens: 3, logprobs: 2, echo: true, seed: i }),
      }),
      check: okOrBusy("text_completion", false),
    },
    {
      name: "token-ids",
      weight: 1,
      make: (i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: [5, 6, 7, 8], max_tokens: 4, seed: i }) }),
      check: okOrBusy("text_completion", false),
    },
    {
      name: "models",
      weight: 1,
      make: () => ({ path: "/v1/models" }),
      check: (o) => (o.status === 200 && JSON.parse(o.body).object === "list" ? null : `status ${o.status}`),
    },
    {
      name: "malformed-json",
      weight: 2,
      make: (_i, m) => ({ path: "/v1/completions", body: `{"model": "${m}", "prompt": ` }),
      check: error(400, "invalid_json"),
    },
    {
      name: "wrong-type",
      weight: 2,
      make: (_i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: "x", max_tokens: "16" }) }),
      check: error(400, "invalid_type"),
    },
    {
      name: "missing-field",
      weight: 1,
      make: () => ({ path: "/v1/chat/completions", body: json({ messages: [{ role: "user", content: "x" }] }) }),
      check: error(400, "missing_required_parameter"),
    },
    { name: "not-an-object", weight: 1, make: () => ({ path: "/v1/completions", body: "[1, 2, 3]" }), check: error(400) },
    {
      name: "unknown-model",
      weight: 1,
      make: () => ({ path: "/v1/completions", body: json({ model: "gpt-17", prompt: "x" }) }),
      check: error(404, "model_not_found"),
    },
    { name: "unknown-url", weight: 1, make: () => ({ path: "/v1/engines", body: "{}" }), check: error(404) },
    {
      name: "too-many-ids",
      weight: 1,
      make: (_i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: Array.from({ length: 100_000 }, () => 5) }) }),
      fixed: true,
      check: error(400, "context_length_exceeded"),
    },
    {
      name: "too-long-text",
      weight: 1,
      make: (_i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: words.repeat(400) }) }),
      fixed: true,
      check: error(400, "context_length_exceeded"),
    },
    {
      name: "bad-param",
      weight: 1,
      make: (_i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: "x", n: 1000 }) }),
      check: error(400),
    },
    {
      name: "oversize-declared",
      weight: 1,
      make: (_i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: "x".repeat(maxBody + 10) }), fresh: true }),
      fixed: true,
      check: (o) => (o.status === 0 ? null : error(413, "request_too_large")(o)),
    },
    {
      name: "oversize-chunked",
      weight: 1,
      make: (_i, m) => ({
        path: "/v1/completions",
        body: json({ model: m, prompt: "y".repeat(2 * maxBody) }),
        chunked: 64 * 1024,
        fresh: true,
      }),
      fixed: true,
      check: (o) => (o.status === 0 ? null : error(413, "request_too_large")(o)),
    },
    {
      name: "no-api-key",
      weight: 1,
      make: () => ({ path: "/v1/models", headers: { authorization: "" } }),
      check: error(401, "invalid_api_key"),
    },
    {
      name: "wrong-api-key",
      weight: 1,
      make: (_i, m) => ({ path: "/v1/completions", body: json({ model: m, prompt: "x" }), headers: { authorization: "Bearer guess" } }),
      check: error(401, "invalid_api_key"),
    },
    {
      name: "hostile-host",
      weight: 1,
      make: () => ({ path: "/v1/models", headers: { host: HOSTILE_HOST } }),
      check: error(421, "host_not_allowed"),
    },
    {
      name: "abandoned-upload",
      weight: 1,
      make: (_i, m) => ({
        path: "/v1/completions",
        body: json({ model: m, prompt: words.repeat(20) }),
        abortUploadAfter: 100,
        fresh: true,
      }),
      check: gone,
    },
    {
      name: "abandoned-stream",
      weight: 1,
      make: (i, m) => ({
        path: "/v1/completions",
        body: json({ model: m, prompt: words, max_tokens: 40, seed: i, stream: true }),
        abortStreamAfterFirstChunk: true,
        fresh: true,
      }),
      check: gone,
    },
  ];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** The peak resident set of a process (VmHWM, Linux), in MB; null elsewhere. */
function peakRssMb(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

export async function serveLoad(opts: Partial<LoadOptions> = {}): Promise<LoadReport> {
  const o = { ...DEFAULT_LOAD, ...opts };
  const log = o.log ?? (() => {});
  const served = await startServe(o);
  let crashes = 0;
  let running = true;
  void served.exited.then(() => {
    if (running) crashes++;
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency + o.big });
  const healthAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const models = JSON.parse((await send(served, agent, { path: "/v1/models" })).body).data.map((d: { id: string }) => d.id) as string[];
  const model = models[0];
  log(`serve-load: ${served.host}:${served.port}, models ${models.join(", ")}`);
  const maxBody = 1 << 20;
  const table = kinds(maxBody);
  const total = table.reduce((s, k) => s + k.weight, 0);
  const random = rng(o.seed);
  const built = new Map<string, Req>();
  const make = (kind: Kind, i: number): Req => {
    if (!kind.fixed) return kind.make(i, model);
    let r = built.get(kind.name);
    if (!r) {
      r = kind.make(i, model);
      if (typeof r.body === "string") r.body = Buffer.from(r.body);
      built.set(kind.name, r);
    }
    return r;
  };
  const plan = Array.from({ length: o.requests }, () => {
    let x = random() * total;
    return table.find((k) => (x -= k.weight) < 0) ?? table[0];
  });

  const byStatus: Record<string, number> = {};
  const byKind: Record<string, Record<string, number>> = {};
  const malformed: string[] = [];
  const record = (kind: string, o2: Outcome, problem: string | null) => {
    byStatus[o2.status] = (byStatus[o2.status] ?? 0) + 1;
    byKind[kind] ??= {};
    byKind[kind][o2.status] = (byKind[kind][o2.status] ?? 0) + 1;
    if (problem) malformed.push(`${kind}: ${problem}`);
  };

  // /health, on its own connection, all along
  const health: number[] = [];
  let healthFailed = 0;
  const poll = (async () => {
    while (running && crashes === 0) {
      const t = performance.now();
      try {
        const r = await send(served, healthAgent, { path: "/health" });
        if (r.status !== 200) healthFailed++;
      } catch {
        healthFailed++;
      }
      health.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, o.healthEveryMs));
    }
  })();

  const loadBefore = os.loadavg()[0];
  const started = performance.now();
  const bigText = "Ana has the red key and Ben keeps a cat. ".repeat(Math.ceil(o.bigBytes / 41)).slice(0, o.bigBytes);
  const bigMs: number[] = [];
  const bigPrompt = Buffer.from(json({ model, prompt: bigText }));
  const bigChat = Buffer.from(json({ model, messages: [{ role: "user", content: bigText }] }));
  const bigs = Array.from({ length: o.big }, async (_, i) => {
    await new Promise((r) => setTimeout(r, 50 + i * 20));
    const t = performance.now();
    const body = i % 2 ? bigChat : bigPrompt;
    const res = await send(served, agent, { path: i % 2 ? "/v1/chat/completions" : "/v1/completions", body });
    bigMs.push(Math.round(performance.now() - t));
    // too long for the context (or, with a smaller --max-body-bytes, for the body limit)
    record(i % 2 ? "big-chat" : "big-prompt", res, res.status === 413 ? error(413)(res) : error(400, "context_length_exceeded")(res));
  });
  let next = 0;
  const workers = Array.from({ length: o.concurrency }, async () => {
    while (next < plan.length && crashes === 0) {
      const i = next++;
      const kind = plan[i];
      let out: Outcome;
      try {
        out = await send(served, agent, make(kind, i));
      } catch (e) {
        out = { status: -1, body: String(e) };
      }
      record(kind.name, out, out.status === -1 ? `connection failed: ${out.body}` : kind.check(out));
      if ((i + 1) % 200 === 0) log(`serve-load: ${i + 1} / ${plan.length}`);
    }
  });
  await Promise.all([...workers, ...bigs]);
  const duration = (performance.now() - started) / 1000;
  running = false;
  await poll;
  let loopDelay: LoadReport["server_event_loop_delay_ms"] = null;
  if (crashes === 0) loopDelay = JSON.parse((await send(served, healthAgent, { path: "/health" })).body).event_loop_delay_ms ?? null;
  const peak = served.child.pid ? peakRssMb(served.child.pid) : null;
  agent.destroy();
  healthAgent.destroy();
  let cleanExit = false;
  if (crashes === 0) {
    served.child.kill("SIGTERM");
    cleanExit = (await served.exited) === 0;
  }
  const sorted = [...health].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    model: o.model ?? "colloquy's default model",
    requests: o.requests,
    concurrency: o.concurrency,
    big_prompts: o.big,
    duration_s: round(duration),
    by_status: byStatus,
    by_kind: byKind,
    malformed: malformed.length,
    malformed_examples: malformed.slice(0, 10),
    crashes,
    bugs_logged: (served.stderr().match(/internal error/g) ?? []).length,
    health: {
      samples: health.length,
      failed: healthFailed,
      max_ms: round(sorted.at(-1) ?? 0),
      p99_ms: round(percentile(sorted, 0.99)),
      p50_ms: round(percentile(sorted, 0.5)),
    },
    big_prompt_ms: bigMs,
    server_event_loop_delay_ms: loopDelay,
    server_peak_rss_mb: peak,
    clean_exit: cleanExit,
    machine: { cpus: os.cpus().length, load_average_before: round(loadBefore), load_average_after: round(os.loadavg()[0]) },
  };
}

function parseArgs(argv: string[]): Partial<LoadOptions> {
  const out: Partial<LoadOptions> = {};
  const num = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < 0) {
      console.error(`serve-load: --${flag} takes a non-negative integer, got ${v ?? "nothing"}`);
      process.exit(2);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].replace(/^--/, "").split("=", 2);
    const value = () => inline ?? argv[++i];
    if (flag === "model") out.model = value();
    else if (flag === "requests") out.requests = num(flag, value());
    else if (flag === "concurrency") out.concurrency = Math.max(1, num(flag, value()));
    else if (flag === "big") out.big = num(flag, value());
    else if (flag === "big-bytes") out.bigBytes = num(flag, value());
    else if (flag === "seed") out.seed = num(flag, value());
    else {
      console.error(`serve-load: unknown flag ${argv[i]} (flags: --model M --requests N --concurrency N --big N --big-bytes N --seed S)`);
      process.exit(2);
    }
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const report = await serveLoad({ ...parseArgs(process.argv.slice(2)), log: (l) => console.error(l) });
  console.log(JSON.stringify(report, null, 2));
  process.exitCode = report.crashes === 0 && report.malformed === 0 && report.bugs_logged === 0 && report.clean_exit ? 0 : 1;
}
