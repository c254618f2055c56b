/**
 * `colloquy human-eval` end to end: make-pairs from the tiny model (base vs an agent of a real run), a rater in
 * Debian's Chromium completes ten comparisons, the server is killed (SIGKILL) and restarted, the rater resumes
 * where they stopped and finishes; a second rater answers through the HTTP API; `results` counts exactly the answers
 * given, with agreement, and the CSV holds each one. Model output with <script> or HTML shows as text. Hostile HTTP
 * (a 200 MB chunked sign-in, a Host it does not answer to) is refused without the server's memory growing.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import {
  type Browser,
  type Server,
  chromiumSkip,
  launchBrowser,
  memoryOf,
  pumpChunks,
  rawExchange,
  screenshot,
  startServer,
} from "../src/web/testing.ts";
import { assertUserError, runCli, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const skip = chromiumSkip();
if (skip) console.log(`skipping the human evaluation's browser test: ${skip}`);

const dir = tmpDir("colloquy-web-eval-");
const pairsFile = path.join(dir, "pairs.jsonl");
const db = path.join(dir, "eval.sqlite");
const HOSTILE = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"><b>bold?</b>`;
let run = "";
let browser: Browser | undefined;
const servers: Server[] = [];

before(() => {
  const model = saveTinyModel(path.join(dir, "tiny"));
  run = path.join(dir, "run");
  const r = runCli(["train", "--preset", "smoke", `--model=${model}`, "--out", run, "--quiet"]);
  assert.equal(r.status, 0, r.stderr);
});

after(async () => {
  await browser?.close();
  for (const s of servers) await s.stop("SIGKILL");
});

test("make-pairs: base vs an agent of a run, seeded; bad systems are one-line errors", () => {
  const prompts = path.join(dir, "prompts.txt");
  fs.writeFileSync(prompts, Array.from({ length: 11 }, (_, i) => `Who has the coins? (${i})`).join("\n") + "\n");
  const args = ["human-eval", "make-pairs", "--prompts", prompts, "--a", "base", "--b", `${run}:agent0`, "--max-tokens", "16", "--quiet"];
  const r = runCli([...args, "--out", pairsFile, "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual([out.pairs, out.a, out.b], [11, "base", `${run}:agent0`]);
  const pairs = fs
    .readFileSync(pairsFile, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(Object.keys(pairs[0]), ["id", "prompt", "a", "b"]);
  assert.equal(pairs[0].prompt, "Who has the coins? (0)");
  assert.equal(pairs[0].b.system, `${run}:agent0`);
  assert.equal(runCli([...args, "--out", path.join(dir, "again.jsonl")]).status, 0);
  assert.equal(fs.readFileSync(path.join(dir, "again.jsonl"), "utf8"), fs.readFileSync(pairsFile, "utf8"), "the same seed, the same pairs");
  assertUserError(runCli([...args.slice(0, 6), "--b", `${run}:agent7`, "--out", path.join(dir, "x.jsonl")]), /no adapter "agent7"/);
  assertUserError(runCli([...args.slice(0, 6), "--b", "base", "--out", path.join(dir, "x.jsonl")]), /the same system/);
  assertUserError(runCli(["human-eval", "serve", "--pairs", path.join(dir, "missing.jsonl")]), /pairs file not found/);
  // one more comparison whose prompt and responses are hostile markup
  fs.appendFileSync(
    pairsFile,
    JSON.stringify({
      id: "hostile",
      prompt: `Say ${HOSTILE}`,
      a: { system: "base", response: `</p>${HOSTILE}` },
      b: { system: `${run}:agent0`, response: `<i>${HOSTILE}</i>` },
    }) + "\n",
  );
});

test("hostile HTTP: a 200 MB chunked sign-in is cut at 16 KB and memory stays flat; a foreign Host gets 421; the database is private", async () => {
  const file = path.join(dir, "hostile.sqlite");
  const pairs = path.join(dir, "hostile-pairs.jsonl"); // its own: this test needs no trained run
  fs.writeFileSync(
    pairs,
    `${JSON.stringify({ id: "p0", prompt: "Who?", a: { system: "x", response: "A" }, b: { system: "y", response: "B" } })}\n`,
  );
  const server = await startServer(["human-eval", "serve", "--pairs", pairs, "--db", file, "--port", "0"]);
  servers.push(server);
  const { port } = new URL(server.url);
  assert.equal((await fetch(`${server.url}/api/eval/session`)).status, 200); // warm
  const before = memoryOf(server.proc.pid!);
  const t0 = Date.now();
  const upload = await rawExchange(server.url, (s) => {
    s.write(
      `POST /api/eval/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    pumpChunks(s, 200 << 20);
  });
  assert.match(upload.response, /^HTTP\/1\.1 413 /);
  assert.match(upload.response, /"code":"E_TOO_LARGE"/);
  const after = memoryOf(server.proc.pid!);
  if (before && after) {
    console.log(
      `200 MB chunked sign-in: 413 after the client wrote ${(upload.written / 2 ** 20).toFixed(1)} MiB in ${Date.now() - t0} ms; ` +
        `server RSS ${before.rss.toFixed(0)} → ${after.rss.toFixed(0)} MiB (peak ${after.peak.toFixed(0)})`,
    );
    assert.ok(after.peak - before.peak < 32, `the server's peak memory grew by ${(after.peak - before.peak).toFixed(0)} MiB`);
  }
  const declared = await rawExchange(server.url, (s) =>
    s.write(
      `POST /api/eval/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\n\r\n{`,
    ),
  );
  assert.match(declared.response, /^HTTP\/1\.1 413 /);
  const rebind = await rawExchange(server.url, (s) => s.write(`GET /api/eval/session HTTP/1.1\r\nHost: evil.example:${port}\r\n\r\n`));
  assert.match(rebind.response, /^HTTP\/1\.1 421 /);
  assert.match(rebind.response, /"code":"E_BAD_HOST"/);
  const named = await startServer([
    "human-eval",
    "serve",
    "--pairs",
    pairs,
    "--db",
    file,
    "--port",
    "0",
    "--allowed-hosts",
    "eval.lab.example",
  ]);
  servers.push(named);
  const ok = await rawExchange(named.url, (s) =>
    s.write(`GET /api/eval/session HTTP/1.1\r\nHost: eval.lab.example\r\nConnection: close\r\n\r\n`),
  );
  assert.match(ok.response, /^HTTP\/1\.1 200 /);
  await named.stop();
  await server.stop();
  for (const f of fs.readdirSync(dir).filter((f) => f.startsWith("hostile.sqlite")))
    assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, `${f} is readable by its owner only`);
});

test("a rater completes ten comparisons, the server is killed and restarted, the rater resumes; results count every answer", {
  skip,
  timeout: 300_000,
}, async () => {
  const serve = () =>
    startServer(["human-eval", "serve", "--pairs", pairsFile, "--db", db, "--port", "0"]).then((s) => (servers.push(s), s));
  let server = await serve();
  browser = await launchBrowser();
  const { page, problems } = browser;
  const given = new Map<string, string>(); // item → choice
  const choices = ["left", "right", "tie"] as const;
  let sawHostile = false;
  const answerOne = async (k: number) => {
    await page.locator(`body[data-state='ready'][data-done='${given.size}'] #compare:not([hidden])`).waitFor();
    const item = (await page.locator("body").getAttribute("data-item"))!;
    assert.ok(!given.has(item), `item ${item} is shown once`);
    if (item === "hostile") {
      sawHostile = true;
      assert.equal(await page.locator("#prompt").textContent(), `Say ${HOSTILE}`);
      const sides = [await page.locator("#left").textContent(), await page.locator("#right").textContent()].sort();
      assert.deepEqual(sides, [`</p>${HOSTILE}`, `<i>${HOSTILE}</i>`].sort(), "the responses verbatim, as text");
      assert.equal(
        await page.locator("#compare img, #compare script, #compare b, #compare i").count(),
        0,
        "no element made from model output",
      );
      assert.equal(await page.evaluate("window.__xss"), undefined, "no script from model output ran");
      const progress = await page.locator("#count").textContent();
      await screenshot(
        page,
        "human-eval",
        `the rating page: the signed-in rater (alice, ${progress}, with a progress bar), a prompt and two anonymous responses ` +
          "in random left/right order, all three holding <script>, <img onerror> and <b> shown as plain text; buttons A is better / Tie / B is better and an optional reason",
      );
    }
    const choice = choices[k % 3];
    if (k % 4 === 0) await page.fill("#reason", `reason ${k}: <script>window.__xss = 3</script>`);
    await page.click(`.choices button[data-choice='${choice}']`);
    given.set(item, choice);
    await page.locator(`body[data-state='ready'][data-done='${given.size}']`).waitFor();
  };

  await page.goto(`${server.url}/eval`);
  await page.fill("#name", "alice");
  await page.fill("#token", "alice's secret token");
  await page.click("#signin-form button[type=submit]");
  for (let k = 0; k < 10; k++) await answerOne(k);
  assert.equal(await page.locator("#count").textContent(), "10 of 12 done");

  // killed mid-session, with no chance to flush anything; then started again
  assert.equal(await server.stop("SIGKILL"), null);
  server = await serve();
  assert.match(server.stderr(), /10 answers by 1 raters so far/);
  await page.goto(`${server.url}/eval`); // the same browser: its session cookie still holds
  await page.locator("#compare:not([hidden])").waitFor();
  assert.equal(await page.locator("#who").textContent(), "signed in as alice");
  assert.equal(await page.locator("#count").textContent(), "10 of 12 done", "resumed where they stopped");
  for (let k = 10; k < 12; k++) await answerOne(k);
  await page.locator("#done:not([hidden])").waitFor();
  assert.ok(sawHostile, "the hostile comparison was shown");
  assert.equal(await page.evaluate("window.__xss"), undefined);
  await screenshot(page, "human-eval-done", "the rating page after the restart, once alice answered all 12 comparisons");
  assert.deepEqual(problems, [], "no console error and no CSP violation");

  // a second rater, through the API (a token this time too), on six items; and a few malformed submissions
  const base = server.url;
  const post = (url: string, body: unknown, cookie = "") =>
    fetch(`${base}${url}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(cookie ? { cookie } : {}) },
      body: JSON.stringify(body),
    });
  const login = await post("/api/eval/login", { name: "bob", token: "bob-token-7f3e" });
  assert.equal(login.status, 200);
  const cookie = login.headers.get("set-cookie")!.split(";")[0];
  const bad = await post("/api/eval/answer", { item: "hostile", choice: "B" }, cookie);
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { code: string } }).error.code, "E_BAD_CHOICE");
  assert.equal((await post("/api/eval/answer", { item: "hostile", choice: "left" })).status, 401);
  let bobAnswers = 0;
  for (let k = 0; k < 6; k++) {
    const next = (await (await fetch(`${base}/api/eval/next`, { headers: { cookie } })).json()) as { item: { id: string } };
    const res = await post("/api/eval/answer", { item: next.item.id, choice: choices[(k + 1) % 3] }, cookie);
    assert.equal(res.status, 200, await res.text());
    bobAnswers++;
  }
  await server.stop("SIGKILL");

  const csv = path.join(dir, "answers.csv");
  const r = runCli(["human-eval", "results", "--db", db, "--json", "--csv", csv]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split("\n").length, 1, "exactly one JSON object on stdout");
  const res = JSON.parse(r.stdout);
  assert.equal(res.answers, given.size + bobAnswers);
  assert.deepEqual(res.raters, [
    { name: "alice", answers: 12 },
    { name: "bob", answers: 6 },
  ]);
  assert.equal(res.items_answered, 12);
  assert.equal(res.pairs.length, 1);
  const p = res.pairs[0];
  assert.equal(p.x_wins + p.y_wins + p.ties, 18);
  assert.equal(
    p.ties,
    [...given.values()].filter((c) => c === "tie").length + [0, 1, 2, 3, 4, 5].filter((k) => choices[(k + 1) % 3] === "tie").length,
  );
  assert.ok(p.x_win_rate.low <= p.x_win_rate.rate && p.x_win_rate.rate <= p.x_win_rate.high);
  assert.equal(res.agreement.method, "cohen");
  assert.equal(res.agreement.items, 6);
  assert.equal(res.bradley_terry, null);
  const rows = fs.readFileSync(csv, "utf8").trim().split("\r\n");
  assert.equal(rows.length, 1 + 18);
  const alice = rows.slice(1).filter((l) => l.split(",")[2] === "alice");
  for (const l of alice) {
    const [, item, , , , , , choice] = l.split(",");
    assert.equal(choice, given.get(item), `the CSV has alice's answer to ${item}`);
  }
  const text = runCli(["human-eval", "results", "--db", db]);
  assert.equal(text.status, 0);
  assert.match(text.stdout, /18 answers by 2 raters on 12 of 12 comparisons/);
  assert.match(text.stdout, /Cohen's kappa/);
  for (const f of fs.readdirSync(dir).filter((f) => f.startsWith("eval.sqlite"))) {
    const bytes = fs.readFileSync(path.join(dir, f));
    assert.ok(!bytes.includes("alice's secret token") && !bytes.includes("bob-token-7f3e"), `${f}: no token in clear`);
  }
});

test("results: a missing database is a one-line error", () => {
  assertUserError(runCli(["human-eval", "results", "--db", path.join(dir, "none.sqlite")]), /no evaluation database/);
});
