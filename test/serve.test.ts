/**
 * `colloquy serve` as a user runs it: a child process on a free local port, the tiny model and one adapter.
 * A burst of concurrent requests (good, malformed, unknown model, oversize, streaming, abandoned by the client)
 * gets proper answers, batched; hostile HTTP (a Host it does not answer to, an endless chunked upload, a client
 * that goes away mid-upload) is refused without a bug logged; an address other than loopback needs an API key;
 * the server stays up; SIGTERM shuts it down cleanly with exit status 0.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { createAdapter } from "../src/engine/lora.ts";
import { savePeftAdapter } from "../src/formats/peft.ts";
import { Rng } from "../src/util/rng.ts";
import { pumpChunks, rawExchange } from "../src/web/testing.ts";
import { ROOT, assertUserError, runCli, tmpDir } from "./support.ts";
import { saveTinyModel, tinyModel } from "./tiny.ts";

interface Served {
  child: ChildProcess;
  url: string; // http://127.0.0.1:port
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `colloquy serve <args> --port 0` and waits for the URL it prints on stderr. */
function startServe(args: string[], env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), "serve", ...args, "--port", "0"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, COLLOQUY_API_KEY: "", ...env },
  });
  let err = "";
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start in time:\n${err}`)), 60_000);
    child.stderr!.on("data", (d) => {
      err += d;
      const m = /listening on (http:\/\/[^\s/]+)\/v1/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stderr: () => err, exited });
      }
    });
    child.stdout!.resume();
    void exited.then((code) => reject(new Error(`serve exited (${code}) before listening:\n${err}`)));
  });
}

function randomAdapterDir(dir: string): string {
  const m = tinyModel();
  const a = createAdapter("kind", m.config, { rank: 4, alpha: 8, rslora: false, targets: ["q", "v", "down"] });
  const rng = new Rng(5);
  for (let i = 0; i < a.weights.data.length; i++) a.weights.data[i] = 0.3 * rng.normal();
  savePeftAdapter(dir, a);
  return dir;
}

let served: Served;
const dir = tmpDir();
const modelDir = path.join(dir, "tinymodel");

before(async () => {
  saveTinyModel(modelDir);
  const adapter = randomAdapterDir(path.join(dir, "adapter"));
  served = await startServe([
    "--model",
    modelDir,
    "--adapter",
    `kind=${adapter}`,
    "--max-queue",
    "12",
    "--max-batch",
    "8",
    "--max-body-bytes",
    "4096",
  ]);
});

after(() => {
  if (served?.child.exitCode === null) served.child.kill("SIGKILL");
});

const post = (route: string, body: unknown, signal?: AbortSignal) =>
  fetch(served.url + route, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });

test("models: the base model, its folder's name and the adapter", async () => {
  const body = (await (await fetch(served.url + "/v1/models")).json()) as { data: { id: string }[] };
  assert.deepEqual(
    body.data.map((m) => m.id),
    ["base", "tinymodel", "kind"],
  );
});

test("streaming over a real socket: chunks, then [DONE]; the same text as without streaming", async () => {
  const req = { model: "kind", messages: [{ role: "user", content: "Who has the key?" }], max_tokens: 12, seed: 4 };
  const plain = (await (await post("/v1/chat/completions", req)).json()) as {
    choices: { message: { content: string }; finish_reason: string }[];
  };
  const res = await post("/v1/chat/completions", { ...req, stream: true });
  assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const text = await res.text();
  const datas = text
    .split("\n\n")
    .filter(Boolean)
    .map((s) => s.replace(/^data: /, ""));
  assert.equal(datas.at(-1), "[DONE]");
  const chunks = datas.slice(0, -1).map((d) => JSON.parse(d));
  assert.equal(chunks.map((c) => c.choices[0].delta.content ?? "").join(""), plain.choices[0].message.content);
  assert.equal(chunks.at(-1).choices[0].finish_reason, plain.choices[0].finish_reason);
});

test("a burst of 40 concurrent requests, good and bad, gets proper answers and the server stays up", async () => {
  const good = (i: number) => ({ model: i % 2 ? "kind" : "base", prompt: `Alice ${i}`, max_tokens: 6, seed: i });
  const kinds = ["good", "stream", "malformed", "unknown-model", "oversize", "bad-param", "abandoned", "good"] as const;
  const started = Date.now();
  const outcomes = await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const kind = kinds[i % kinds.length];
      const abort = new AbortController();
      try {
        let res: Response;
        if (kind === "good") res = await post("/v1/completions", good(i));
        else if (kind === "stream") res = await post("/v1/completions", { ...good(i), stream: true });
        else if (kind === "malformed") res = await post("/v1/completions", '{"model": "base", "prompt": ');
        else if (kind === "unknown-model") res = await post("/v1/completions", { ...good(i), model: "gpt-17" });
        else if (kind === "oversize") res = await post("/v1/completions", { ...good(i), prompt: "x".repeat(5000) });
        else if (kind === "bad-param") res = await post("/v1/chat/completions", { model: "base", messages: "hi" });
        else {
          setTimeout(() => abort.abort(), 5);
          res = await post("/v1/completions", { ...good(i), max_tokens: 40, stream: true }, abort.signal);
          await res.text();
        }
        const text = await res.text();
        return { kind, status: res.status, text };
      } catch (e) {
        if (kind === "abandoned" && abort.signal.aborted) return { kind, status: 0, text: "" };
        throw e;
      }
    }),
  );
  const allowed: Record<string, number[]> = {
    good: [200, 429],
    stream: [200, 429],
    malformed: [400],
    "unknown-model": [404],
    oversize: [413],
    "bad-param": [400],
    abandoned: [0, 200, 429],
  };
  for (const o of outcomes) {
    assert.ok(allowed[o.kind].includes(o.status), `${o.kind}: status ${o.status} ${o.text}`);
    if (o.status >= 400) {
      const body = JSON.parse(o.text);
      assert.equal(typeof body.error.message, "string", o.text);
      assert.ok("type" in body.error && "param" in body.error && "code" in body.error, o.text);
    } else if (o.kind === "stream" && o.status === 200) assert.ok(o.text.trimEnd().endsWith("data: [DONE]"), o.text);
    else if (o.kind === "good" && o.status === 200) assert.equal(JSON.parse(o.text).object, "text_completion");
  }
  const ok = outcomes.filter((o) => (o.kind === "good" || o.kind === "stream") && o.status === 200).length;
  assert.ok(ok >= 5, `only ${ok} good requests were served`);
  assert.ok(Date.now() - started < 60_000);
  // still up, and requests that arrived together ran in shared batches
  const health = (await (await fetch(served.url + "/health")).json()) as {
    status: string;
    largestBatch: number;
    batches: number;
    rows: number;
  };
  assert.equal(health.status, "ok");
  assert.ok(health.largestBatch > 1, JSON.stringify(health));
  assert.ok(health.batches < health.rows, JSON.stringify(health));
  const again = await post("/v1/completions", good(99));
  assert.equal(again.status, 200);
  assert.doesNotMatch(served.stderr(), /internal error/);
});

test("hostile HTTP: a Host it does not answer to, an endless chunked upload, a client gone mid-upload", async () => {
  const { port } = new URL(served.url);
  const rebind = await rawExchange(served.url, (s) => s.write(`GET /v1/models HTTP/1.1\r\nHost: attacker.example:${port}\r\n\r\n`));
  assert.match(rebind.response, /^HTTP\/1\.1 421 /);
  assert.match(rebind.response, /"code":"host_not_allowed"/);

  // chunks for as long as the server reads them: it answers 413 once 4 KB (--max-body-bytes) have come
  const endless = await rawExchange(served.url, (s) => {
    s.write(
      `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    pumpChunks(s);
  });
  assert.match(endless.response, /^HTTP\/1\.1 413 /);
  assert.match(endless.response, /"code":"request_too_large"/);

  // a client that declares 4,000 bytes, sends 100 and goes away
  for (let k = 0; k < 3; k++) {
    const socket = net.connect(Number(port), "127.0.0.1");
    await new Promise((r) => socket.on("connect", r));
    socket.write(
      `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n`,
    );
    socket.write(`{"model": "base", "prompt": "${"y".repeat(70)}`);
    await new Promise((r) => setTimeout(r, 50));
    socket.destroy();
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.doesNotMatch(served.stderr(), /internal error|a bug/, "a client gone mid-upload is no bug");
  assert.equal((await fetch(served.url + "/health")).status, 200);
});

test("an address other than loopback needs an API key (--api-key-file, $COLLOQUY_API_KEY or --api-key); /v1 then asks for it", async () => {
  const noKey = runCli(["serve", "--model", modelDir, "--host", "0.0.0.0", "--port", "0"], { env: { COLLOQUY_API_KEY: "" } });
  assertUserError(noKey, /E_NO_API_KEY.*--host 0\.0\.0\.0 lets other machines connect/);
  assertUserError(
    runCli(["serve", "--model", modelDir, "--api-key", "a", "--api-key-file", path.join(dir, "k")], { env: { COLLOQUY_API_KEY: "" } }),
    /not both/,
  );
  const keyFile = path.join(dir, "api-key");
  fs.writeFileSync(keyFile, "file-key-4c1d\n", { mode: 0o600 });
  const s = await startServe(["--model", modelDir, "--host", "0.0.0.0", "--api-key-file", keyFile]);
  try {
    assert.match(s.stderr(), /API key required/);
    const url = s.url.replace("0.0.0.0", "127.0.0.1");
    const none = await fetch(`${url}/v1/models`);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, "invalid_api_key");
    assert.equal((await fetch(`${url}/v1/models`, { headers: { authorization: "Bearer wrong" } })).status, 401);
    assert.equal((await fetch(`${url}/v1/models`, { headers: { authorization: "Bearer file-key-4c1d" } })).status, 200);
    assert.equal((await fetch(`${url}/health`)).status, 200, "/health needs no key");
    const env = await startServe(["--model", modelDir, "--host", "0.0.0.0"], { COLLOQUY_API_KEY: "env-key-77" });
    try {
      const u = env.url.replace("0.0.0.0", "127.0.0.1");
      assert.equal((await fetch(`${u}/v1/models`, { headers: { authorization: "Bearer env-key-77" } })).status, 200);
      assert.equal((await fetch(`${u}/v1/models`)).status, 401);
    } finally {
      env.child.kill("SIGTERM");
      assert.equal(await env.exited, 0);
    }
  } finally {
    s.child.kill("SIGTERM");
    assert.equal(await s.exited, 0);
  }
});

test("SIGTERM: a request in flight finishes (or is refused with 503), then the process exits 0", async () => {
  const inflight = post("/v1/completions", { model: "base", prompt: "Alice", max_tokens: 48, stream: true, seed: 1 }).then(async (r) => ({
    status: r.status,
    text: await r.text(),
  }));
  await new Promise((r) => setTimeout(r, 50));
  served.child.kill("SIGTERM");
  const [r, code] = await Promise.all([inflight, served.exited]);
  assert.equal(code, 0, served.stderr());
  assert.ok(r.status === 200 || r.status === 503, `${r.status} ${r.text}`);
  if (r.status === 200) assert.ok(r.text.trimEnd().endsWith("data: [DONE]"));
  assert.match(served.stderr(), /SIGTERM, shutting down/);
  assert.match(served.stderr(), /stopped/);
  await assert.rejects(fetch(served.url + "/v1/models")); // no longer listening
});
