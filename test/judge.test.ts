/**
 * `colloquy eval judge` end to end: against `colloquy serve` on a local port (a real HTTP round trip, both orders
 * of every prompt, counted on the server), and against a scripted OpenAI-compatible judge in this process whose
 * answers exercise every outcome (win/loss, tie, inconsistent, unparsed). The API key reaches the server as a
 * Bearer header and appears in no output.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { createAdapter } from "../src/engine/lora.ts";
import { savePeftAdapter } from "../src/formats/peft.ts";
import { Rng } from "../src/util/rng.ts";
import { ROOT, tmpDir } from "./support.ts";
import { saveTinyModel, tinyModel } from "./tiny.ts";

const KEY = "sk-test-9f8e7d6c5b4a";

/** Runs colloquy without blocking this process's event loop (the scripted judge lives here). */
function colloquy(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "",
    stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("exit", (status) => resolve({ status, stdout, stderr })));
}

const dir = tmpDir();
const modelDir = path.join(dir, "tiny");
const adapterDir = path.join(dir, "kind");
const promptsFile = path.join(dir, "prompts.txt");
let serve: ChildProcess;
let serveUrl = "";
let serveErr = "";

before(async () => {
  saveTinyModel(modelDir);
  const a = createAdapter("kind", tinyModel().config, { rank: 4, alpha: 8, rslora: false, targets: ["q", "v"] });
  const rng = new Rng(3);
  for (let i = 0; i < a.weights.data.length; i++) a.weights.data[i] = 0.3 * rng.normal();
  savePeftAdapter(adapterDir, a);
  fs.writeFileSync(promptsFile, "Who has the key?\n\nWhere is Alice?\nWhat did Bob find?\n");
  serve = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), "serve", "--model", modelDir, "--port", "0"], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  serveUrl = await new Promise<string>((resolve, reject) => {
    serve.stderr!.on("data", (d) => {
      serveErr += d;
      const m = /listening on (http:\/\/\S+\/v1)/.exec(serveErr);
      if (m) resolve(m[1]);
    });
    serve.on("exit", (code) => reject(new Error(`serve exited (${code}):\n${serveErr}`)));
  });
});

after(() => {
  if (serve?.exitCode === null) serve.kill("SIGKILL");
});

test("eval judge against colloquy serve: a real round trip, both orders of every prompt", async () => {
  const details = path.join(dir, "details.jsonl");
  const r = await colloquy(
    [
      "eval",
      "judge",
      "--judge-url",
      serveUrl,
      "--a",
      "base",
      "--b",
      adapterDir,
      "--prompts",
      promptsFile,
      "--model",
      modelDir,
      "--max-tokens",
      "6",
      "--judge-max-tokens",
      "4",
      "--details",
      details,
      "--json",
    ],
    { COLLOQUY_JUDGE_API_KEY: KEY },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split("\n").length, 1);
  const out = JSON.parse(r.stdout);
  assert.equal(out.prompts, 3);
  assert.equal(out.judgements, 6);
  assert.equal(out.judge.model, "base"); // the first model the server lists
  assert.equal(out.win + out.tie + out.loss + out.inconsistent + out.unparsed, 3);
  const lines = fs
    .readFileSync(details, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.index),
    [1, 3, 4],
  );
  for (const l of lines) {
    assert.equal(typeof l.a_first.answer, "string");
    assert.equal(typeof l.b_first.answer, "string");
  }
  // the server ran one row per judge request: 3 prompts × 2 orders
  const health = (await (await fetch(serveUrl.replace(/\/v1$/, "/health"))).json()) as { rows: number };
  assert.equal(health.rows, 6);
  for (const text of [r.stdout, r.stderr, fs.readFileSync(details, "utf8")]) assert.ok(!text.includes(KEY));
  serve.kill("SIGTERM");
  assert.equal(await new Promise((res) => serve.on("exit", res)), 0, serveErr);
});

test("eval judge with a scripted judge: position swap, inconsistent and unparsed verdicts, the key only in the header", async () => {
  const prompts = path.join(dir, "prompts.jsonl");
  const lines = [
    { prompt: "fair: who has the key?" },
    { prompt: "fair: where is Alice?" },
    { prompt: "fair: what did Bob find?" },
    { prompt: "biased: who won?" },
    { prompt: "torn: which is better?" },
    { messages: [{ role: "user", content: "mute: say something" }] },
  ];
  fs.writeFileSync(prompts, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  const seen: { auth: string | undefined; question: string; first: string; second: string }[] = [];
  const judge = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      if (req.url === "/v1/models") return res.end(JSON.stringify({ object: "list", data: [{ id: "scripted-judge" }] }));
      const msg = JSON.parse(body).messages[1].content as string;
      const part = (name: string, next: string) => msg.split(`[${name}]\n`)[1].split(`\n\n[${next}]`)[0];
      const question = part("Prompt", "Response A");
      const first = part("Response A", "Response B");
      const second = msg.split("[Response B]\n")[1].split("\n\nAnswer with")[0];
      seen.push({ auth: req.headers.authorization, question, first, second });
      // fair: the response that sorts first wins (the same in both orders); biased: always the first shown;
      // torn: tie in both orders; mute: an answer with no verdict
      const answer = question.startsWith("fair")
        ? first === second
          ? "tie"
          : first < second
            ? "A"
            : "**B**"
        : question.startsWith("biased")
          ? "A. It is clearly better."
          : question.startsWith("torn")
            ? "[[C]]"
            : "I cannot decide.";
      res.end(JSON.stringify({ choices: [{ index: 0, message: { role: "assistant", content: answer }, finish_reason: "stop" }] }));
    });
  });
  await new Promise<void>((r) => judge.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(judge.address() as AddressInfo).port}/v1`;
  const details = path.join(dir, "details2.jsonl");
  const r = await colloquy(
    [
      "eval",
      "judge",
      "--judge-url",
      url,
      "--a",
      "base",
      "--b",
      adapterDir,
      "--prompts",
      prompts,
      "--model",
      modelDir,
      "--max-tokens",
      "6",
      "--details",
      details,
      "--json",
    ],
    { OPENAI_API_KEY: KEY, COLLOQUY_JUDGE_API_KEY: "" },
  );
  judge.close();
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);

  // both orders of every prompt, with the responses swapped, and the key as a Bearer header
  assert.equal(seen.length, 12);
  for (const s of seen) assert.equal(s.auth, `Bearer ${KEY}`);
  for (const q of new Set(seen.map((s) => s.question))) {
    const pair = seen.filter((s) => s.question === q);
    assert.equal(pair.length, 2);
    assert.deepEqual([pair[0].first, pair[0].second].sort(), [pair[1].second, pair[1].first].sort());
  }
  const recs = fs
    .readFileSync(details, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const fair = recs.filter((x) => x.prompt.startsWith("fair"));
  const expected = fair.map((x) => (x.response_a === x.response_b ? "tie" : x.response_a < x.response_b ? "win" : "loss"));
  assert.deepEqual(
    fair.map((x) => x.outcome),
    expected,
  );
  const biased = recs.find((x) => x.prompt.startsWith("biased"))!;
  assert.equal(biased.outcome, biased.response_a === biased.response_b ? "inconsistent" : "inconsistent");
  assert.equal(biased.flip, true);
  assert.equal(recs.find((x) => x.prompt.startsWith("torn"))!.outcome, "tie");
  assert.equal(recs.find((x) => x.prompt.startsWith("mute"))!.outcome, "unparsed");

  const wins = expected.filter((e) => e === "win").length,
    losses = expected.filter((e) => e === "loss").length;
  assert.equal(out.win, wins);
  assert.equal(out.loss, losses);
  assert.equal(out.inconsistent, 1);
  assert.equal(out.flips, 1);
  assert.equal(out.unparsed, 1);
  assert.equal(out.judged, 5);
  assert.equal(out.tie_rate, (out.tie + out.inconsistent) / 5);
  assert.ok(out.win_rate_ci95[0] <= out.win_rate && out.win_rate <= out.win_rate_ci95[1]);
  assert.equal(out.judge.model, "scripted-judge");
  for (const text of [r.stdout, r.stderr, fs.readFileSync(details, "utf8")]) assert.ok(!text.includes(KEY));
});

test("eval judge: an unreachable judge or a bad system is a one-line error", async () => {
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const nowhere = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/v1`;
  await new Promise((r) => closed.close(r));
  const r = await colloquy(
    [
      "eval",
      "judge",
      "--judge-url",
      nowhere,
      "--judge-model",
      "m",
      "--a",
      "base",
      "--b",
      "nowhere/adapter",
      "--prompts",
      promptsFile,
      "--model",
      modelDir,
    ],
    { HF_HUB_OFFLINE: "1" },
  );
  // neither a folder nor an adapter in the Hugging Face cache (offline: no network is tried)
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^error\[E_HUB_OFFLINE\]: .*nowhere\/adapter/);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  const u = await colloquy(
    [
      "eval",
      "judge",
      "--judge-url",
      nowhere,
      "--retries",
      "1",
      "--a",
      "base",
      "--b",
      "base",
      "--prompts",
      promptsFile,
      "--model",
      modelDir,
    ],
    { COLLOQUY_JUDGE_API_KEY: KEY },
  );
  assert.equal(u.status, 2, u.stderr);
  assert.match(u.stderr, /^error\[E_JUDGE_UNREACHABLE\]/);
  assert.equal(u.stderr.trim().split("\n").length, 1);
  assert.ok(!u.stderr.includes(KEY));
});
