import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { createWebApp } from "./app.ts";
import { RunsIndex } from "./dashboard/runs.ts";
import { CONTENT_SECURITY_POLICY } from "./http.ts";
import { EvalStore } from "./human-eval/store.ts";
import { syntheticRun } from "./dashboard/synthetic-run.ts";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-web-"));

async function expectError(res: Response, status: number, code: string): Promise<void> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, body.error.message);
  assert.equal(typeof body.error.message, "string");
  assert.ok(!body.error.message.includes("\n"), "one line");
}

function evalApp() {
  const store = EvalStore.open(path.join(tmp(), "eval.sqlite"));
  const pairs = [0, 1, 2].map((i) => ({
    id: `q${i}`,
    prompt: `<script>alert(${i})</script>`,
    a: { system: "base", response: `<b>a${i}</b>` },
    b: { system: "tuned", response: `b${i}` },
  }));
  store.importPairs(pairs);
  const app = createWebApp({ humanEval: { store, served: pairs.map((p) => p.id) } });
  let cookie = "";
  const req = async (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) => {
    const init: RequestInit = { method, headers: { host: "localhost", ...(cookie ? { cookie } : {}), ...headers } };
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)["content-type"] ??= "application/json";
    }
    return app.request(`http://localhost${url}`, init);
  };
  return { store, app, req, setCookie: (c: string) => (cookie = c) };
}

test("pages and uPlot are served with a strict Content-Security-Policy; nothing else is", async () => {
  const { app } = evalApp();
  for (const [url, type] of [
    ["/eval.html", "text/html"],
    ["/dashboard.html", "text/html"],
    ["/eval.js", "text/javascript"],
    ["/vendor/uPlot.esm.js", "text/javascript"],
    ["/vendor/uPlot.min.css", "text/css"],
  ]) {
    const res = await app.request(url);
    assert.equal(res.status, 200, url);
    assert.match(res.headers.get("content-type")!, new RegExp(type));
    assert.equal(res.headers.get("content-security-policy"), CONTENT_SECURITY_POLICY);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  }
  assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'(;|$)/);
  assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval/);
  for (const url of ["/../package.json", "/%2e%2e/package.json", "/vendor/../../package.json", "/testing.ts", "/api/runs"])
    await expectError(await app.request(url), 404, "E_NOT_FOUND");
  for (const page of ["dashboard.html", "eval.html"]) {
    const html = fs.readFileSync(path.join(import.meta.dirname, "public", page), "utf8");
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, `${page}: no inline script`);
    assert.doesNotMatch(html, /\sstyle=|<style|\son[a-z]+=/i, `${page}: no inline style or handler`);
  }
  for (const js of fs.readdirSync(path.join(import.meta.dirname, "public")).filter((f) => f.endsWith(".js"))) {
    assert.doesNotMatch(
      fs.readFileSync(path.join(import.meta.dirname, "public", js), "utf8"),
      /innerHTML|outerHTML|insertAdjacentHTML|document\.write/,
      `${js} builds no HTML from strings`,
    );
  }
});

test("human eval API: sign in, get a blinded item, answer it; malformed requests get clear errors", async () => {
  const { req, setCookie, store } = evalApp();
  await expectError(await req("GET", "/api/eval/next"), 401, "E_NOT_SIGNED_IN");
  await expectError(
    await req("POST", "/api/eval/login", "name=ann", { "content-type": "application/x-www-form-urlencoded" }),
    415,
    "E_BAD_CONTENT_TYPE",
  );
  await expectError(await req("POST", "/api/eval/login", "{name"), 400, "E_BAD_JSON");
  await expectError(await req("POST", "/api/eval/login", []), 400, "E_BAD_REQUEST");
  await expectError(await req("POST", "/api/eval/login", {}), 400, "E_BAD_REQUEST");
  await expectError(await req("POST", "/api/eval/login", { name: "x".repeat(65) }), 400, "E_BAD_REQUEST");
  await expectError(await req("POST", "/api/eval/login", { name: "a\u0000b" }), 400, "E_BAD_REQUEST");
  await expectError(await req("POST", "/api/eval/login", { name: "ann", password: "x" }), 400, "E_BAD_REQUEST");
  await expectError(await req("POST", "/api/eval/login", { name: "ann" }, { origin: "http://evil.example" }), 403, "E_BAD_ORIGIN");
  const login = await req("POST", "/api/eval/login", { name: "ann", token: "t0ken" }, { origin: "http://localhost" });
  assert.equal(login.status, 200);
  const setCookie0 = login.headers.get("set-cookie")!;
  assert.match(setCookie0, /^colloquy_rater=\d+\.[\w-]+; Path=\/; HttpOnly; SameSite=Strict/);
  assert.ok(!setCookie0.includes("t0ken"));
  setCookie(setCookie0.split(";")[0]);
  assert.deepEqual(await (await req("GET", "/api/eval/session")).json(), {
    rater: { name: "ann" },
    require_token: false,
    done: 0,
    total: 3,
  });

  const next = (await (await req("GET", "/api/eval/next")).json()) as { item: Record<string, string>; done: number; total: number };
  assert.deepEqual(Object.keys(next.item).sort(), ["id", "left", "prompt", "right"]);
  assert.ok(
    !JSON.stringify(next).includes("base") && !JSON.stringify(next).includes("tuned"),
    "which system wrote which side is never sent",
  );
  const item = next.item.id;
  const other = ["q0", "q1", "q2"].find((x) => x !== item)!;
  await expectError(await req("POST", "/api/eval/answer", { item, choice: "A" }), 400, "E_BAD_CHOICE");
  await expectError(await req("POST", "/api/eval/answer", { item }), 400, "E_BAD_CHOICE");
  await expectError(await req("POST", "/api/eval/answer", { choice: "left" }), 400, "E_BAD_REQUEST");
  await expectError(await req("POST", "/api/eval/answer", { item: 3, choice: "left" }), 400, "E_BAD_REQUEST");
  await expectError(await req("POST", "/api/eval/answer", { item: "nope", choice: "left" }), 404, "E_NO_ITEM");
  await expectError(await req("POST", "/api/eval/answer", { item: other, choice: "left" }), 409, "E_NOT_SHOWN");
  await expectError(await req("POST", "/api/eval/answer", { item, choice: "left", reason: "r".repeat(2001) }), 400, "E_BAD_REQUEST");
  await expectError(await req("POST", "/api/eval/answer", { item, choice: "left", reason: "r".repeat(20_000) }), 413, "E_TOO_LARGE");
  await expectError(await req("POST", "/api/eval/answer", { item, choice: "left", score: 1 }), 400, "E_BAD_REQUEST");
  assert.equal(store.answers().length, 0, "nothing malformed was stored");
  const ok = await req("POST", "/api/eval/answer", { item, choice: "right", reason: "clearer\nand <shorter>" });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { ok: true, duplicate: false, done: 1, total: 3 });
  assert.deepEqual(
    (
      (await (await req("POST", "/api/eval/answer", { item, choice: "right", reason: "clearer\nand <shorter>" })).json()) as {
        duplicate: boolean;
      }
    ).duplicate,
    true,
  );
  await expectError(await req("POST", "/api/eval/answer", { item, choice: "left" }), 409, "E_ALREADY_ANSWERED");
  assert.equal(store.answers()[0].reason, "clearer\nand <shorter>");
  setCookie("colloquy_rater=1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  await expectError(await req("GET", "/api/eval/next"), 401, "E_NOT_SIGNED_IN");
  setCookie("");
  await expectError(await req("POST", "/api/eval/login", { name: "ann", token: "wrong" }), 401, "E_BAD_TOKEN");
});

test("dashboard API: runs, metrics from a cursor, transcripts, the live stream", async () => {
  const root = tmp();
  syntheticRun(path.join(root, "r1"), { iterations: 20, agents: 3, perIteration: 3 });
  const index = new RunsIndex(root);
  const streams = new AbortController();
  const app = createWebApp({ dashboard: { index, pollMs: 50, signal: streams.signal } });
  const runs = (await (await app.request("/api/runs")).json()) as { runs: { id: string; iteration: number; status: string }[] };
  assert.deepEqual(
    runs.runs.map((r) => [r.id, r.iteration]),
    [["r1", 20]],
  );
  const all = (await (await app.request("/api/metrics?run=r1")).json()) as {
    generation: number;
    from: number;
    total: number;
    lines: { iteration: number }[];
  };
  assert.equal(all.lines.length, 21);
  const tail = (await (await app.request(`/api/metrics?run=r1&from=18&generation=${all.generation}`)).json()) as typeof all;
  assert.deepEqual(
    tail.lines.map((l) => l.iteration),
    [18, 19, 20],
  );
  const stale = (await (await app.request(`/api/metrics?run=r1&from=18&generation=${all.generation + 5}`)).json()) as typeof all;
  assert.equal(stale.from, 0, "a stale generation gets every line");
  await expectError(await app.request("/api/metrics?run=r1&from=-1"), 400, "E_BAD_QUERY");
  await expectError(await app.request("/api/metrics?run=../r1"), 404, "E_NO_RUN");
  await expectError(await app.request("/api/metrics"), 400, "E_BAD_QUERY");
  const t = (await (await app.request("/api/transcripts?run=r1&iteration=7&agent=1")).json()) as {
    total: number;
    records: { iteration: number; agent: number }[];
  };
  assert.equal(t.total, 1);
  assert.deepEqual([t.records[0].iteration, t.records[0].agent], [7, 1]);
  const its = (await (await app.request("/api/transcript-iterations?run=r1")).json()) as { iterations: number[] };
  assert.equal(its.iterations.length, 20);

  const res = await app.request(`/api/stream?run=r1&from=${all.generation}:19&transcripts=r1`);
  assert.match(res.headers.get("content-type")!, /text\/event-stream/);
  const reader = res.body!.getReader();
  let text = "";
  const until = async (re: RegExp) => {
    while (!re.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended before ${re}: ${text}`);
      text += new TextDecoder().decode(value);
    }
  };
  await until(/event: runs\n/);
  const first = /event: metrics\ndata: (.*)\n/.exec(text)!;
  assert.deepEqual(
    (JSON.parse(first[1]) as typeof all).lines.map((l) => l.iteration),
    [19, 20],
    "only lines after the cursor",
  );
  assert.match(text, /event: transcripts\n/);
  const line = fs
    .readFileSync(path.join(root, "r1", "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .pop()!
    .replace(/^\{"iteration":20/, '{"iteration":21');
  fs.appendFileSync(path.join(root, "r1", "metrics.jsonl"), line + "\n");
  text = "";
  await until(/event: metrics\ndata: .*\n/);
  assert.deepEqual(
    (JSON.parse(/event: metrics\ndata: (.*)\n/.exec(text)![1]) as typeof all).lines.map((l) => l.iteration),
    [21],
    "the appended line, alone",
  );
  streams.abort();
  await reader.cancel();
});
