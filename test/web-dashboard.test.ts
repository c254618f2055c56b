/**
 * `colloquy dashboard` end to end in Debian's Chromium (playwright-core): a real training run's curves render and
 * follow a line appended to metrics.jsonl without a reload (and a rewrite, as on resume); model output with HTML
 * or <script> in a transcript shows as text; a synthetic run of 5,000 iterations loads and updates fast (timings
 * printed). Screenshots go to test-output/screenshots/.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { Locator } from "playwright-core";
import { syntheticRun } from "../src/web/dashboard/synthetic-run.ts";
import { type Browser, type Server, chromiumSkip, launchBrowser, screenshot, startServer } from "../src/web/testing.ts";
import { assertUserError, runCli, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const skip = chromiumSkip();

/** The text of a table row: its cells' text content, one after another (no layout involved, unlike innerText). */
const rowText = async (row: Locator): Promise<string> => (await row.locator("td").allTextContents()).join(" ");
if (skip) console.log(`skipping the dashboard's browser tests: ${skip}`);

const dir = tmpDir("colloquy-web-dash-");
const runs = path.join(dir, "runs");
const run = path.join(runs, "smoke-run");
const HOSTILE = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">`;
let server: Server;
let browser: Browser;

before(async () => {
  if (skip) return;
  const model = saveTinyModel(path.join(dir, "tiny"));
  const r = runCli(["train", "--preset", "smoke", `--model=${model}`, "--out", run, "--quiet"]);
  assert.equal(r.status, 0, r.stderr);
  // a transcript record whose model output carries HTML and a script
  const last = fs.readFileSync(path.join(run, "transcripts.jsonl"), "utf8").trim().split("\n").pop()!;
  const rec = JSON.parse(last);
  Object.assign(rec, {
    agent: 1,
    round: 1,
    state: `state ${HOSTILE}`,
    completion: `STATE: ${HOSTILE}`,
    sent: [{ from: 1, to: 0, text: `</li>${HOSTILE}` }],
    message_values: [{ to: 0, text: `</li>${HOSTILE}`, value: 0.25 }],
  });
  fs.appendFileSync(path.join(run, "transcripts.jsonl"), JSON.stringify(rec) + "\n");
  syntheticRun(path.join(runs, "long"), { iterations: 5000, agents: 3, perIteration: 6 });
  server = await startServer(["dashboard", runs, "--port", "0", "--poll-ms", "250"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a real run: curves render, follow an appended line and a rewrite, transcripts show model output as text", {
  skip,
  timeout: 240_000,
}, async () => {
  const { page, problems } = browser;
  await page.goto(`${server.url}/dashboard#run=smoke-run`);
  await page.waitForSelector("html[data-ready='1']", { timeout: 30_000 });
  const row = page.locator("tr[data-run='smoke-run']");
  assert.match(await rowText(row), /smoke-run\s+smoke\s+finished\s+3 \/ 3/);
  assert.equal(await page.locator("tr[data-run='long']").count(), 1, "both runs listed");
  for (const chart of [
    "reward",
    "information_gain",
    "kl",
    "entropy",
    "state_tokens",
    "messages",
    "violations",
    "tokens_per_s",
    "validation",
  ]) {
    const card = page.locator(`[data-chart='${chart}']`);
    assert.equal(await card.getAttribute("data-last-x"), "3", chart);
  }
  const painted = (await page.evaluate(`(() => {
    const c = document.querySelector("[data-chart='reward'] canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200)) n++;
    return n;
  })()`)) as number;
  assert.ok(painted > 200, `the reward chart has ${painted} painted pixels`);
  await page.waitForSelector("#live.on");

  // a new iteration arrives: the page follows without a reload
  const metrics = path.join(run, "metrics.jsonl");
  const lines = fs.readFileSync(metrics, "utf8").trim().split("\n");
  const next = { ...JSON.parse(lines[lines.length - 1]), iteration: 4, reward: 0.5, val_information_gain: 0.3 };
  const t0 = Date.now();
  fs.appendFileSync(metrics, JSON.stringify(next) + "\n");
  await page.waitForSelector("[data-chart='reward'][data-last-x='4']", { timeout: 15_000 });
  console.log(`appended line shown after ${Date.now() - t0} ms (poll every 250 ms)`);
  await page.locator("tr[data-run='smoke-run']", { hasText: "4 / 3" }).waitFor({ timeout: 15_000 }); // the run list follows too (every 2 s)
  assert.match(await rowText(row), /\+0\.3000 \(it\. 4\)/, "best validation gain updated");
  // a resume rewrites the file without the lines after its checkpoint: the page starts that run over
  fs.writeFileSync(`${metrics}.tmp`, lines.slice(0, 3).join("\n") + "\n");
  fs.renameSync(`${metrics}.tmp`, metrics);
  await page.waitForSelector("[data-chart='reward'][data-last-x='2']", { timeout: 15_000 });
  await page.locator("tr[data-run='smoke-run']", { hasText: "2 / 3" }).waitFor({ timeout: 15_000 });

  // the talk graph and message-value matrix of the focus run, with its slider
  assert.equal(await page.locator("#matrix table.matrix tbody tr").count(), 2);
  assert.equal(await page.locator("#graph svg g.node").count(), 2);

  // transcripts: the hostile record is text, and nothing ran
  await page.selectOption("#t-agent", "1");
  await page.selectOption("#t-round", "1");
  await page.locator("#transcripts .state", { hasText: "<script>" }).first().waitFor({ timeout: 15_000 });
  const states = await page.locator("#transcripts .state").allTextContents();
  assert.ok(
    states.some((s) => s === `state ${HOSTILE}`),
    "the state is shown verbatim",
  );
  assert.ok(
    (await page.locator("#transcripts ul.msgs").allTextContents()).some((t) => t.includes(`</li>${HOSTILE}`) && t.includes("value +0.250")),
    "the message with its value",
  );
  assert.equal(await page.locator("#transcripts img, #transcripts script").count(), 0, "no element was made from model output");
  assert.equal(await page.evaluate("window.__xss"), undefined, "no script from model output ran");
  await page
    .locator("#transcripts details")
    .last()
    .evaluate((d) => ((d as unknown as { open: boolean }).open = true));
  await screenshot(
    page,
    "dashboard",
    "the dashboard on a real smoke run of the tiny model (2 learners): the run list (smoke-run, shown running " +
      "since the test wrote to its metrics.jsonl, and a 5,000-iteration synthetic run), curves of every metric of metrics.jsonl, the talk graph " +
      "and message-value matrix, and the transcript browser (agent 1, round 1) showing a record whose state, message and completion hold " +
      "<script> and <img onerror> as plain text",
  );
  assert.deepEqual(problems, [], "no console error and no CSP violation");
});

test("a long run (5,000 iterations): load time, downsampled drawing, per-update cost, overlay of two runs", {
  skip,
  timeout: 240_000,
}, async () => {
  const { page, problems } = browser;
  const t0 = Date.now();
  await page.goto(`${server.url}/dashboard#run=long`);
  await page.waitForSelector("html[data-ready='1']", { timeout: 60_000 });
  const loadMs = Date.now() - t0;
  const card = page.locator("[data-chart='reward']");
  assert.equal(await card.getAttribute("data-points"), "5001");
  const drawn = Number(await card.getAttribute("data-drawn"));
  assert.ok(drawn < 5001 && drawn > 100, `drawn downsampled: ${drawn} points`);
  await page.waitForSelector("#live.on");
  const metrics = path.join(runs, "long", "metrics.jsonl");
  const last = JSON.parse(fs.readFileSync(metrics, "utf8").trim().split("\n").pop()!);
  const updates: number[] = [];
  const seen: number[] = [];
  for (let k = 1; k <= 3; k++) {
    const t1 = Date.now();
    fs.appendFileSync(metrics, JSON.stringify({ ...last, iteration: 5000 + k }) + "\n");
    await page.waitForSelector(`[data-chart='reward'][data-last-x='${5000 + k}']`, { timeout: 15_000 });
    seen.push(Date.now() - t1);
    updates.push(Number(await page.evaluate("document.documentElement.dataset.lastUpdateMs")));
  }
  const pageLoad = Number(await page.evaluate("document.documentElement.dataset.loadMs"));
  console.log(
    `5,001-line metrics.jsonl (${(fs.statSync(metrics).size / 1e6).toFixed(1)} MB): page ready in ${loadMs} ms (${pageLoad} ms after navigation start); ` +
      `${drawn} of 5,001 points drawn per series; an appended line is seen after ${seen.join(", ")} ms and costs ${updates.join(", ")} ms in the page (parse, columns, redraw of every chart)`,
  );
  assert.ok(Math.max(...updates) < 1000, "an update costs well under a second");

  // overlay: tick the smoke run too
  await page.locator("tr[data-run='smoke-run'] input[type=checkbox]").check();
  await page.locator("[data-chart='reward'] .u-legend .u-label", { hasText: "smoke-run" }).waitFor({ timeout: 15_000 });
  assert.deepEqual(await page.locator("[data-chart='reward'] .u-legend .u-label").allTextContents(), ["iteration", "long", "smoke-run"]);
  await screenshot(
    page,
    "dashboard-long",
    "the dashboard with a synthetic run of 5,003 iterations (3 agents, the third a liar) overlaid with the " +
      "smoke run: curves drawn downsampled, the talk graph (edge width = messages, red = negative message value: the liar's) and the " +
      "message-value matrix at the latest iteration, and the transcript browser following the latest iteration",
  );
  assert.deepEqual(problems, []);
});

test("dashboard: a missing folder or a bad flag is a one-line error", () => {
  assertUserError(runCli(["dashboard", path.join(dir, "no-such-folder")]), /no folder .*no-such-folder/);
  assertUserError(runCli(["dashboard", dir, "--port", "http"]), /--port must be an integer/);
  assertUserError(runCli(["dashboard", dir, "--poll", "5"]), /unknown flag --poll/);
});
