import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { type HostPolicy, hostPolicy } from "../util/allowed-hosts.ts";
import { MAX_BODY_BYTES, createWebApp } from "./app.ts";
import { RunsIndex } from "./dashboard/runs.ts";
import { CONTENT_SECURITY_POLICY } from "./http.ts";
import { SIGN_IN_FAILURES } from "./human-eval/routes.ts";
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

function evalApp(o: { hosts?: HostPolicy } = {}) {
  const store = EvalStore.open(path.join(tmp(), "eval.sqlite"));
  const pairs = [0, 1, 2].map((i) => ({
    id: `q${i}`,
    prompt: `<script>alert(${i})</script>`,
    a: { system: "base", response: `<b>a${i}</b>` },
    b: { system: "tuned", response: `b${i}` },
  }));
  store.importPairs(pairs);
  const app = createWebApp({ humanEval: { store, served: pairs.map((p) => p.id) }, ...o });
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
  assert.match(setCookie0, /^colloquy_rater=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=604800$/);
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
  setCookie("colloquy_rater=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  await expectError(await req("GET", "/api/eval/next"), 401, "E_NOT_SIGNED_IN");
  setCookie("");
  await expectError(await req("POST", "/api/eval/login", { name: "ann", token: "wrong" }), 401, "E_BAD_TOKEN");
});

/** A request body that streams `chunk` bytes at a time without end, counting what the server pulled. */
function endless(chunk = 1024): { body: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += chunk;
      controller.enqueue(new Uint8Array(chunk).fill(0x20));
    },
  });
  return { body, pulled: () => pulled };
}

test("bodies: limited while they stream in, on every route, sign-in included; a declared size over it is refused unread", async () => {
  const { app } = evalApp();
  for (const url of ["/api/eval/login", "/api/eval/logout", "/api/eval/answer", "/api/nowhere"]) {
    const up = endless();
    const res = await app.request(`http://localhost${url}`, {
      method: "POST",
      body: up.body,
      headers: { "content-type": "application/json" },
      duplex: "half",
    } as RequestInit);
    await expectError(res, 413, "E_TOO_LARGE");
    assert.ok(up.pulled() <= MAX_BODY_BYTES + 2 * 1024, `${url}: read ${up.pulled()} bytes of an endless body`);
  }
  const declared = await app.request("http://localhost/api/eval/login", {
    method: "POST",
    body: "{}",
    headers: { "content-type": "application/json", "content-length": String(200 << 20) },
  });
  await expectError(declared, 413, "E_TOO_LARGE");
  // a client that goes away mid-upload is a 400 for nobody, not a bug
  const bugs: unknown[] = [];
  const store = EvalStore.open(path.join(tmp(), "eval.sqlite"));
  const app2 = createWebApp({ humanEval: { store, served: [] }, onBug: (e) => bugs.push(e) });
  let n = 0;
  const broken = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (n++ === 2) controller.error(new Error("aborted"));
      else controller.enqueue(new TextEncoder().encode('{"name": "a'));
    },
  });
  const res = await app2.request("http://localhost/api/eval/login", {
    method: "POST",
    body: broken,
    headers: { "content-type": "application/json" },
    duplex: "half",
  } as RequestInit);
  await expectError(res, 400, "E_ABORTED");
  assert.deepEqual(bugs, []);
});

test("Host header: only the names of the address it listens on, and those allowed by flag (DNS rebinding)", async () => {
  const local = evalApp();
  for (const host of ["localhost:8081", "127.0.0.1:8081", "[::1]:8081", "LOCALHOST", "localhost."])
    assert.equal((await local.req("GET", "/api/eval/session", undefined, { host })).status, 200, host);
  for (const host of ["evil.example", "evil.example:8081", "localhost.evil.example", "127.0.0.1.nip.io", "", "a b", "[::1"]) {
    const res = await local.req("GET", "/api/eval/session", undefined, { host });
    await expectError(res, 421, "E_BAD_HOST");
  }
  await expectError(await local.req("GET", "/eval.html", undefined, { host: "evil.example" }), 421, "E_BAD_HOST");
  const named = evalApp({ hosts: hostPolicy("127.0.0.1", ["eval.lab.example", ".corp.example"]) });
  for (const host of ["eval.lab.example", "eval.lab.example:443", "corp.example", "a.corp.example"])
    assert.equal((await named.req("GET", "/api/eval/session", undefined, { host })).status, 200, host);
  await expectError(await named.req("GET", "/api/eval/session", undefined, { host: "evilcorp.example" }), 421, "E_BAD_HOST");
  const wild = hostPolicy("0.0.0.0");
  assert.ok(
    wild.names.has("localhost") && wild.names.has("127.0.0.1") && wild.names.size > 3,
    "a wildcard bind answers to this machine's names",
  );
  assert.ok(!hostPolicy("192.168.1.5").names.has("localhost"));
  assert.ok(hostPolicy("127.0.0.1", ["*"]).any);
  const dash = createWebApp({ dashboard: { index: new RunsIndex(tmp()) } });
  await expectError(await dash.request("http://localhost/api/runs", { headers: { host: "evil.example" } }), 421, "E_BAD_HOST");
  assert.equal((await dash.request("http://localhost/api/runs", { headers: { host: "localhost:8080" } })).status, 200);
});

test("sign-in: a name without a token cannot be taken over; logging out ends the session; wrong tokens are throttled; no bidi tricks", async () => {
  const bob = evalApp();
  const first = await bob.req("POST", "/api/eval/login", { name: "bob" });
  assert.equal(first.status, 200);
  const cookie = first.headers.get("set-cookie")!.split(";")[0];
  await expectError(await bob.req("POST", "/api/eval/login", { name: "bob" }), 409, "E_NAME_TAKEN");
  await expectError(await bob.req("POST", "/api/eval/login", { name: " bob " }), 409, "E_NAME_TAKEN");
  bob.setCookie(cookie);
  assert.equal(((await (await bob.req("GET", "/api/eval/session")).json()) as { rater: { name: string } }).rater.name, "bob");
  const out = await bob.req("POST", "/api/eval/logout");
  assert.equal(out.status, 200);
  assert.match(out.headers.get("set-cookie")!, /^colloquy_rater=; .*Max-Age=0/);
  await expectError(await bob.req("GET", "/api/eval/next"), 401, "E_NOT_SIGNED_IN"); // the old cookie, replayed
  assert.equal(((await (await bob.req("GET", "/api/eval/session")).json()) as { rater: unknown }).rater, null);

  const ann = evalApp();
  assert.equal((await ann.req("POST", "/api/eval/login", { name: "ann", token: "right token" })).status, 200);
  for (let k = 0; k < SIGN_IN_FAILURES; k++)
    await expectError(await ann.req("POST", "/api/eval/login", { name: "ann", token: `guess ${k}` }), 401, "E_BAD_TOKEN");
  const blocked = await ann.req("POST", "/api/eval/login", { name: "ann", token: "right token" });
  assert.ok(Number(blocked.headers.get("retry-after")) > 0);
  await expectError(blocked, 429, "E_TOO_MANY_ATTEMPTS");
  await expectError(await ann.req("POST", "/api/eval/login", { name: "cid" }), 429, "E_TOO_MANY_ATTEMPTS"); // the same address

  const names = evalApp();
  for (const name of ["ann\u202egpj.exe", "a\u2066b\u2069", "a\u200bnn", "ann\u200f", "a\u2028b", "\u00ad"])
    await expectError(await names.req("POST", "/api/eval/login", { name }), 400, "E_BAD_REQUEST");
  names.setCookie((await names.req("POST", "/api/eval/login", { name: "dee" })).headers.get("set-cookie")!.split(";")[0]);
  const item = ((await (await names.req("GET", "/api/eval/next")).json()) as { item: { id: string } }).item.id;
  await expectError(await names.req("POST", "/api/eval/answer", { item, choice: "left", reason: "ok \u202e" }), 400, "E_BAD_REQUEST");
  names.setCookie("");
  const nfd = await names.req("POST", "/api/eval/login", { name: "Jose\u0301" });
  assert.equal(((await nfd.json()) as { rater: { name: string } }).rater.name, "Jos\u00e9", "names are NFC");
  await expectError(await names.req("POST", "/api/eval/login", { name: "Jos\u00e9" }), 409, "E_NAME_TAKEN");
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
