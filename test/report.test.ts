/**
 * `colloquy report` on a smoke run of the tiny model, after `colloquy eval language` and with a generic evaluation
 * file beside it: report.html is self-contained (no scripts, no URLs, no external resources), has a chart for every
 * metric with data, renders every evaluation, escapes what the models wrote, and every figure is a valid PNG.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { assertUserError, runCli, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-report-");
const model = saveTinyModel(path.join(dir, "tiny"));
const run = path.join(dir, "run");
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const EVIL = `<script>alert("x")</script>`;

test("report: a self-contained page with every metric, the evaluations and escaped transcripts; PNGs for papers", () => {
  const train = runCli(["train", "--preset", "smoke", `--model=${model}`, "--agents=learner,learner,liar", "--out", run, "--quiet"]);
  assert.equal(train.status, 0, train.stderr);
  // a model that wrote markup: the report must show it as text
  const tf = path.join(run, "transcripts.jsonl");
  const lines = fs
    .readFileSync(tf, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  Object.assign(lines[0], {
    state: `state ${EVIL}`,
    completion: ` state ${EVIL}\n0:1:<img src=x onerror=alert(1)>`,
    sent: [{ from: 0, to: 1, text: "<img src=x onerror=alert(1)>" }],
  });
  fs.writeFileSync(tf, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  const lang = runCli(["eval", "language", "--run", run, "--quiet"]);
  assert.equal(lang.status, 0, lang.stderr);
  fs.writeFileSync(
    path.join(run, "eval", "hh.json"),
    JSON.stringify({
      eval: "hh",
      n: 8,
      accuracy: 0.625,
      accuracy_ci95: [0.31, 0.86],
      systems: [
        { system: "base", accuracy: 0.625, accuracy_ci95: [0.31, 0.86] },
        { system: `agent0${EVIL}`, accuracy: 0.5, accuracy_ci95: [0.22, 0.78] },
      ],
    }),
  );

  const r = runCli(["report", run, "--json"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split("\n").length, 1);
  const out = JSON.parse(r.stdout);
  assert.equal(out.html, path.join(run, "report.html"));
  assert.deepEqual(out.evals, ["channel", "hh", "language"], "channel: written by train itself");
  assert.deepEqual(out.sections, ["run", "training", "matrices", "evaluations", "transcripts"]);
  const html = fs.readFileSync(out.html, "utf8");

  // self-contained and safe
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /https?:/i);
  assert.doesNotMatch(html, /<(img|link|iframe|object|embed)\b|<[^>]*\s(src|on[a-z]+)=|url\(/i);
  for (const href of html.match(/href="[^"]*"/g) ?? []) assert.match(href, /^href="#[a-z-]+"$/);
  assert.ok(html.includes("state &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"), "the injected state is shown, escaped");
  assert.ok(html.includes("&lt;img src=x onerror=alert(1)&gt;"));
  assert.ok(html.includes("agent0&lt;script&gt;"), "labels from evaluation files are escaped too");

  // a chart for every metric of metrics.jsonl that has data
  const metrics = fs
    .readFileSync(path.join(run, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const charted = new Set(
    (html.match(/<svg [^>]*data-metrics="([^"]*)"/g) ?? []).flatMap((s) => /data-metrics="([^"]*)"/.exec(s)![1].split(" ")),
  );
  const hasData = (v: unknown): boolean => (typeof v === "number" && Number.isFinite(v)) || (Array.isArray(v) && v.some(hasData));
  const fields = Object.keys(metrics[0]).filter((f) => f !== "iteration" && metrics.some((m) => hasData(m[f])));
  assert.ok(fields.length >= 15, fields.join(","));
  for (const f of fields) assert.ok(charted.has(f), `a chart of ${f}`);
  for (const f of [
    "reward",
    "information_gain",
    "learner_gain",
    "oracle_gain",
    "val_information_gain",
    "kl",
    "kl_coef",
    "entropy",
    "state_tokens",
    "messages",
    "violations",
    "tokens_per_s",
    "time_generate",
    "time_score",
    "time_train",
    "talk",
    "message_value",
  ]) {
    assert.ok(charted.has(f), f);
  }
  for (const f of ["drift", "honesty", "roles"]) assert.ok(charted.has(f), `language: ${f}`);
  assert.match(html, /id="fig-eval-hh-systems-accuracy"/);
  assert.match(html, /0\.625 \[0\.31, 0\.86\]/);

  // one PNG (and SVG) per figure, each a real PNG
  const svgs = html.match(/<svg /g) ?? [];
  assert.equal(out.figures.length, svgs.length);
  for (const f of out.figures) {
    const png = fs.readFileSync(f.png);
    assert.deepEqual(png.subarray(0, 8), PNG, f.png);
    assert.ok(png.length > 1000, `${f.png}: ${png.length} bytes`);
    assert.match(fs.readFileSync(f.svg, "utf8"), /^<\?xml[\s\S]*<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  }
  assert.deepEqual(
    fs
      .readdirSync(path.join(run, "report"))
      .filter((f) => f.endsWith(".png"))
      .sort(),
    out.figures.map((f: { id: string }) => `${f.id}.png`).sort(),
  );

  // the same run, the same page
  assert.equal(runCli(["report", run, "--no-png", "--out", path.join(dir, "again.html")]).status, 0);
  assert.equal(fs.readFileSync(path.join(dir, "again.html"), "utf8").replace(/ \(not written this time: --no-png\)/, ""), html);
});

test("report --averages N: the training metrics' means over the first and the last N iterations, from metrics.jsonl", () => {
  const lines = fs
    .readFileSync(path.join(run, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((l) => l.iteration >= 1);
  const last = lines.at(-1).iteration;
  const r = runCli(["report", run, "--averages", "2", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const a = JSON.parse(r.stdout);
  assert.deepEqual(
    [a.first, a.last],
    [
      [1, 2],
      [last - 1, last],
    ],
  );
  const reward = (it: number) => lines.find((l) => l.iteration === it).reward;
  assert.ok(Math.abs(a.metrics.reward.first - (reward(1) + reward(2)) / 2) < 1e-12);
  assert.ok(Math.abs(a.metrics.reward.last - (reward(last - 1) + reward(last)) / 2) < 1e-12);
  assert.equal(a.metrics.reward.at_last, reward(last));
  const text = runCli(["report", run, "--averages", "2"]);
  assert.match(text.stdout, new RegExp(`^metric +it\\. 1–2 +it\\. ${last - 1}–${last} +at ${last}\n`));
  assertUserError(runCli(["report", run, "--averages", "0"]), /averages/);
});

test("report: one-line errors for a folder that is not a run", () => {
  assertUserError(runCli(["report", path.join(dir, "missing")]), /no run in/);
  assertUserError(runCli(["report", path.join(dir, "missing"), "--averages", "5"]), /no .*metrics\.jsonl/);
  assertUserError(runCli(["report"]), /missing required positional argument: RUN/i);
});
