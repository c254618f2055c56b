/**
 * `colloquy eval hh` and `colloquy data download hh-rlhf` end to end: the JSON contract, --details, base and
 * adapters side by side (--run), the real HH-RLHF test file from ../shared (a few pairs), left truncation, and
 * user errors. Downloads go to a local HTTP server started here, never to the network.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import zlib from "node:zlib";
import { test } from "node:test";
import { createAdapter, initAdapterWeights } from "../src/engine/lora.ts";
import type { DownloadResult } from "../src/eval/download.ts";
import { savePeftAdapter } from "../src/formats/peft.ts";
import { Rng } from "../src/util/rng.ts";
import { ROOT, assertUserError, runCli, shared, tmpDir, type CliResult } from "./support.ts";
import { saveTinyModel, tinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-eval-hh-");
const model = saveTinyModel(path.join(dir, "tiny"));
const HH = shared("data/hh-rlhf/harmless-base/test.jsonl.gz");

const dialogue = (i: number, reply: string) => `\n\nHuman: Question ${i}: what colour is the sky?\n\nAssistant:${reply}`;
const pairs = Array.from({ length: 6 }, (_, i) => ({
  chosen: dialogue(i, " Blue, on a clear day."),
  rejected: dialogue(i, i === 5 ? "" : " I will not say."),
}));
const data = path.join(dir, "pairs.jsonl.gz");
fs.writeFileSync(data, zlib.gzipSync(pairs.map((p) => JSON.stringify(p)).join("\n") + "\n"));

/** `eval hh --json`, as these tests read it: the base model's numbers at the top level, every system in `systems`. */
interface HhJson {
  n: number;
  accuracy: number;
  accuracy_ci95: [number, number];
  accuracy_per_token: number;
  accuracy_per_token_ci95: [number, number];
  context_window: number;
  truncated_pairs: number;
  truncation: string;
  systems: { system: string; n: number; mean_margin: number }[];
}

/** `data download --json`. */
type DownloadJson = DownloadResult & { dataset: string; downloaded: boolean };

/** The one JSON object a command printed (with --json). */
function json<T>(r: CliResult): T {
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 1, "exactly one JSON object on stdout");
  return JSON.parse(lines[0]);
}

test("eval hh --json: accuracy, per token, n, 95% intervals; --details has one line per pair", () => {
  const details = path.join(dir, "details.jsonl");
  const out = json<HhJson>(runCli(["eval", "hh", "--model", model, "--data", data, "--details", details, "--json", "--quiet"]));
  assert.equal(out.n, 6);
  for (const k of ["accuracy", "accuracy_per_token"] as const) {
    const ci = out[`${k}_ci95` as const];
    assert.ok(out[k] >= 0 && out[k] <= 1, k);
    assert.ok(ci[0] <= out[k] && out[k] <= ci[1], `${k} inside its interval`);
  }
  assert.deepEqual(
    out.systems.map((s: { system: string }) => s.system),
    ["base"],
  );
  assert.equal(out.context_window, 512);
  const lines = fs
    .readFileSync(details, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.index),
    [0, 1, 2, 3, 4, 5],
  );
  const b = lines[5].systems.base;
  assert.equal(b.rejected_tokens, 0); // the empty reply
  assert.equal(b.rejected_logprob, 0);
  assert.equal(b.rejected_logprob_per_token, null);
  // the summary is the details' comparison
  const wins = lines.reduce(
    (s, l) =>
      s +
      (l.systems.base.chosen_logprob > l.systems.base.rejected_logprob
        ? 1
        : l.systems.base.chosen_logprob === l.systems.base.rejected_logprob
          ? 0.5
          : 0),
    0,
  );
  assert.equal(out.accuracy, wins / 6);
  assert.ok(lines.every((l) => l.systems.base.chosen_tokens > 0 && typeof l.systems.base.chosen_logprob_per_token === "number"));
});

test("eval hh --run: the base model and every agent adapter side by side, saved in the run folder", () => {
  const run = path.join(dir, "run");
  fs.mkdirSync(path.join(run, "adapters"), { recursive: true });
  fs.writeFileSync(path.join(run, "config.json"), JSON.stringify({ config: { model } }));
  const config = tinyModel().config;
  for (const [i, name] of ["agent0", "agent1"].entries()) {
    const a = createAdapter(name, config, { rank: 2, alpha: 4, rslora: false, targets: ["q", "v"] });
    initAdapterWeights(a, new Rng(i));
    for (const layer of a.weights.layers) for (const lin of Object.values(layer)) lin!.B.fill(0.5 * (i + 1));
    savePeftAdapter(path.join(run, "adapters", name), a, model);
  }
  const out = json<HhJson>(runCli(["eval", "hh", "--run", run, "--data", data, "--limit", "4", "--json", "--quiet"]));
  assert.deepEqual(
    out.systems.map((s: { system: string }) => s.system),
    ["base", "agent0", "agent1"],
  );
  assert.ok(out.systems.every((s: { n: number }) => s.n === 4));
  assert.notEqual(out.systems[1].mean_margin, out.systems[0].mean_margin); // the adapters change the scores
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(run, "eval", "hh.json"), "utf8")).systems, out.systems);
});

test("eval hh on the real HH-RLHF test file: a few pairs, long dialogues left-truncated and reported", { skip: HH.skip }, () => {
  const r = runCli(["eval", "hh", "--model", model, "--data", HH.path, "--limit", "12", "--json", "--quiet"]);
  const out = json<HhJson>(r);
  assert.equal(out.n, 12);
  assert.equal(typeof out.truncated_pairs, "number");
  assert.match(out.truncation, /^left/);
  if (out.truncated_pairs > 0) assert.match(r.stderr, /left-truncated/);
  const text = runCli(["eval", "hh", "--model", model, "--data", HH.path, "--limit", "3", "--quiet"]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^HH-RLHF preference accuracy: .*3 pairs/);
  assert.match(text.stdout, /\nbase +0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]/);
});

test("eval hh: bad input ends in one line and exit 2", () => {
  assertUserError(runCli(["eval", "hh", "--model", model]), /--data is required/);
  assertUserError(runCli(["eval", "hh", "--model", model, "--data", path.join(dir, "nope.jsonl")]), /not found: .*nope\.jsonl/);
  assertUserError(runCli(["eval", "hh", "--model", model, "--data", data, "--adapter", dir, "--run", dir]), /--adapter or --run, not both/);
  assertUserError(
    runCli(["eval", "hh", "--model", model, "--data", data, "--limit", "0"]),
    /--limit=0: too small: expected number to be >0/,
  );
  const help = runCli(["eval", "hh", "--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /left-truncated/);
  assert.match(help.stdout, /--details/);
});

/** Runs the CLI without blocking this process (the HTTP server below lives in it). */
function runCliAsync(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...args], { cwd: ROOT });
    let stdout = "",
      stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status: status ?? -1, stdout, stderr }));
  });
}

test("data download hh-rlhf: from a local server, atomically, with its sha256; an LFS pointer is named", async () => {
  const gz = zlib.gzipSync(pairs.map((p) => JSON.stringify(p)).join("\n") + "\n");
  const server = http.createServer((req, res) => {
    if (req.url === "/hf/helpful-base/train.jsonl.gz") res.end(gz);
    else if (req.url === "/gh/harmless-base/test.jsonl.gz")
      res.end("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 742801\n");
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const out = path.join(dir, "downloads");
    const args = ["data", "download", "hh-rlhf", "--subset", "helpful-base", "--split", "train", "--out", out, "--url", `${base}/hf`];
    const first = json<DownloadJson>(await runCliAsync([...args, "--json"]));
    assert.equal(first.path, path.join(out, "helpful-base", "train.jsonl.gz"));
    assert.equal(first.sha256, crypto.createHash("sha256").update(gz).digest("hex"));
    assert.equal(first.records, 6);
    assert.equal(first.downloaded, true);
    const again = json<DownloadJson>(await runCliAsync([...args, "--json"]));
    assert.equal(again.downloaded, false);
    assert.equal(again.sha256, first.sha256);
    const text = await runCliAsync([...args, "--force"]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`sha256 ${first.sha256}`));
    assertUserError(await runCliAsync(["data", "download", "hh-rlhf", "--out", out, "--url", `${base}/gh`, "--quiet"]), /Git LFS pointer/);
    assert.deepEqual(fs.readdirSync(path.join(out, "harmless-base")), []); // nothing left behind
    assertUserError(await runCliAsync(["data", "download", "hh-rlhf", "--subset", "helpful", "--out", out]), /--subset must be one of/);
    assertUserError(await runCliAsync(["data", "download", "imdb"]), /unknown dataset "imdb"/);
  } finally {
    server.close();
  }
});
