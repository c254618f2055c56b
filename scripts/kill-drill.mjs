#!/usr/bin/env node
/**
 * The kill -9 drill: a training run killed with SIGKILL N times at random moments and resumed after each kill
 * must end exactly as the same run uninterrupted.
 *
 *   node scripts/kill-drill.mjs [--kills N] [--seed S] [--dir D] [--keep] [--json] [-- <colloquy train flags>]
 *
 * The train flags (default `--preset smoke`) describe the run; the drill adds --out and --quiet. It first trains
 * the run uninterrupted (D/full), noting when each line of metrics.jsonl appears. Then it trains the same run in
 * D/killed and kills it N times: kill k picks (from the seeded RNG, --seed) a line j of metrics.jsonl — or the
 * start, or the end — waits until the process has written that line (at once when a resumed process already holds
 * it), then a random share of the time the uninterrupted run took to reach the next one, and sends SIGKILL. So the
 * kills land anywhere: while the process starts, samples episodes, writes metrics and transcripts, swaps its
 * checkpoint folder, evaluates, writes the summary. After each kill the run is resumed (`colloquy train --resume`;
 * started again when the kill came before its config.json existed); after the last it runs to the end.
 * Then it compares the two folders: metrics.jsonl (timings aside), transcripts.jsonl, every adapter and checkpoint
 * file byte for byte, summary.json (its paths and session time aside), and that no half-written folder is left.
 *
 * Exit status 0 when the folders agree, 1 when they differ or a process failed, 2 on a usage error. --json prints
 * the outcome as one JSON object. D defaults to a new temporary folder, removed at the end unless --keep.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLI = path.join(ROOT, "bin", "colloquy.mjs");
const TIMING = ["tokens_per_s", "time_generate", "time_score", "time_train"];
const SUMMARY_PATHS = ["run", "adapters", "seconds_this_session"];

function usage(msg) {
  process.stderr.write(
    `kill-drill: ${msg}\nusage: node scripts/kill-drill.mjs [--kills N] [--seed S] [--dir D] [--keep] [--json] [-- <train flags>]\n`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { kills: 3, seed: 0, dir: null, keep: false, json: false, train: ["--preset", "smoke"] };
  const cut = argv.indexOf("--");
  const own = cut < 0 ? argv : argv.slice(0, cut);
  if (cut >= 0) o.train = argv.slice(cut + 1);
  for (let i = 0; i < own.length; i++) {
    const [flag, inline] = own[i].split(/=(.*)/s);
    const value = () => inline ?? own[++i] ?? usage(`${flag} needs a value`);
    if (flag === "--kills" || flag === "--seed") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 0) usage(`${flag} takes a whole number ≥ 0`);
      o[flag.slice(2)] = n;
    } else if (flag === "--dir") o.dir = value();
    else if (flag === "--keep") o.keep = true;
    else if (flag === "--json") o.json = true;
    else usage(`unknown flag ${own[i]}`);
  }
  if (o.train.some((a) => /^--(out|resume|restart)\b/.test(a))) usage("the drill sets --out and --resume itself");
  return o;
}

/** mulberry32: the drill's own seeded generator of kill moments. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The iterations of the metrics lines written so far (a torn last line is not one). */
function loggedIterations(run) {
  const f = path.join(run, "metrics.jsonl");
  if (!fs.existsSync(f)) return [];
  return fs
    .readFileSync(f, "utf8")
    .split("\n")
    .flatMap((l) => {
      try {
        return l.trim() ? [JSON.parse(l).iteration] : [];
      } catch {
        return [];
      }
    });
}

/**
 * Runs `colloquy <args>`; `until(elapsedMs)` is polled every 5 ms and kills the process with SIGKILL when it returns
 * true. Resolves to { code, signal, ms, stderr }.
 */
function run(args, until = null) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const timer = until
      ? setInterval(() => {
          if (child.exitCode === null && until(performance.now() - t0)) child.kill("SIGKILL");
        }, 5)
      : null;
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (timer) clearInterval(timer);
      resolve({ code, signal, ms: performance.now() - t0, stderr });
    });
  });
}

/** The uninterrupted run, with the time after its start at which each metrics line appeared. */
async function reference(out, train) {
  const seen = new Map(); // iteration → ms after start
  const r = await run(["train", ...train, "--out", out, "--quiet"], (ms) => {
    for (const it of loggedIterations(out)) if (!seen.has(it)) seen.set(it, ms);
    return false;
  });
  if (r.code !== 0) throw new Error(`the uninterrupted run failed (exit ${r.code}): ${r.stderr.trim()}`);
  for (const it of loggedIterations(out)) if (!seen.has(it)) seen.set(it, r.ms);
  const lines = [...seen.keys()].sort((a, b) => a - b);
  return { ms: r.ms, lines, at: lines.map((it) => seen.get(it)) };
}

/**
 * Kill k's moment: a mark m among the start (−1), each metrics line and the end; the process is killed once it has
 * written line m (at its start for m = −1) plus a random share of the time the uninterrupted run took from that
 * mark to the next.
 */
function killPlan(ref, kills, random) {
  const marks = [-1, ...ref.lines.keys()]; // −1: the start; i: the i-th line
  const at = (m) => (m < 0 ? 0 : ref.at[m]);
  const next = (m) => (m + 1 < ref.lines.length ? ref.at[m + 1] : ref.ms);
  return Array.from({ length: kills }, () => marks[Math.floor(random() * marks.length)])
    .sort((a, b) => a - b)
    .map((m) => ({ line: m < 0 ? null : ref.lines[m], waitMs: 0.9 * random() * (next(m) - at(m)) }));
}

const withoutKeys = (o, keys) => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
const jsonl = (f) =>
  fs.existsSync(f)
    ? fs
        .readFileSync(f, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : null;

/** Every file under dir, relative to it. */
function filesUnder(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).filter((f) => fs.statSync(path.join(dir, f)).isFile());
}

/** What differs between the uninterrupted run `a` and the killed one `b` (empty when nothing does). */
function compare(a, b) {
  const diffs = [];
  const same = (x, y) => JSON.stringify(x) === JSON.stringify(y);
  const ma = jsonl(path.join(a, "metrics.jsonl")),
    mb = jsonl(path.join(b, "metrics.jsonl"));
  const strip = (lines) => (lines ?? []).map((l) => JSON.stringify(withoutKeys(l, TIMING)));
  const [la, lb] = [strip(ma), strip(mb)];
  const first = la.findIndex((l, i) => l !== lb[i]);
  if (first >= 0) diffs.push(`metrics.jsonl: line ${first + 1} (iteration ${ma[first].iteration}) differs or is missing`);
  else if (lb.length !== la.length) diffs.push(`metrics.jsonl: ${lb.length} lines instead of ${la.length}`);
  if (!same(jsonl(path.join(a, "transcripts.jsonl")), jsonl(path.join(b, "transcripts.jsonl")))) diffs.push("transcripts.jsonl");
  for (const sub of ["adapters", "checkpoint"]) {
    const fa = filesUnder(path.join(a, sub)).sort(),
      fb = filesUnder(path.join(b, sub)).sort();
    if (!same(fa, fb)) diffs.push(`${sub}/ holds ${fb.join(", ")} instead of ${fa.join(", ")}`);
    for (const f of fa.filter((x) => fb.includes(x))) {
      if (!fs.readFileSync(path.join(a, sub, f)).equals(fs.readFileSync(path.join(b, sub, f)))) diffs.push(`${sub}/${f} differs`);
    }
  }
  const sa = JSON.parse(fs.readFileSync(path.join(a, "summary.json"), "utf8"));
  const sb = fs.existsSync(path.join(b, "summary.json")) ? JSON.parse(fs.readFileSync(path.join(b, "summary.json"), "utf8")) : null;
  if (!sb || !same(withoutKeys(sa, SUMMARY_PATHS), withoutKeys(sb, SUMMARY_PATHS))) diffs.push("summary.json");
  const leftovers = fs.readdirSync(b, { recursive: true }).filter((f) => /\.(tmp|old)\b|\.tmp-\d+/.test(f));
  if (leftovers.length) diffs.push(`half-written files left: ${leftovers.join(", ")}`);
  return diffs;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-kill-drill-"));
  const full = path.join(dir, "full"),
    killed = path.join(dir, "killed");
  for (const d of [full, killed]) if (fs.existsSync(d)) usage(`${d} exists: give --dir an empty or new folder`);
  const say = (s) => o.json || process.stderr.write(`${s}\n`);
  const t0 = performance.now();
  const ref = await reference(full, o.train);
  say(`uninterrupted run: ${(ref.ms / 1000).toFixed(1)} s, metrics lines ${ref.lines.join(",")}`);
  const plan = killPlan(ref, o.kills, rng(o.seed));
  const kills = [];
  const args = () =>
    fs.existsSync(path.join(killed, "config.json"))
      ? ["train", "--resume", killed, "--quiet"]
      : ["train", ...o.train, "--out", killed, "--quiet"];
  for (const [k, p] of plan.entries()) {
    let since = null; // ms at which line p.line was first seen
    const r = await run(args(), (ms) => {
      if (since === null && (p.line === null || loggedIterations(killed).includes(p.line))) since = ms;
      return since !== null && ms - since >= p.waitMs;
    });
    const landed = r.signal === "SIGKILL";
    if (!landed && r.code !== 0) throw new Error(`kill ${k + 1}: the process failed (exit ${r.code}): ${r.stderr.trim()}`);
    const state = path.join(killed, "checkpoint", "state.json");
    const at = fs.existsSync(state) ? JSON.parse(fs.readFileSync(state, "utf8")).iteration : null;
    kills.push({ afterLine: p.line, waitMs: Math.round(p.waitMs), ms: Math.round(r.ms), landed, checkpoint: at });
    say(
      `kill ${k + 1}/${o.kills}: ${landed ? `SIGKILL after ${(r.ms / 1000).toFixed(2)} s` : "missed (the run had finished)"}` +
        ` (${p.line === null ? "from the start" : `metrics line ${p.line}`} + ${Math.round(p.waitMs)} ms); checkpoint at iteration ${at ?? "-"}`,
    );
  }
  const last = await run(args());
  if (last.code !== 0) throw new Error(`the last resume failed (exit ${last.code}): ${last.stderr.trim()}`);
  const diffs = compare(full, killed);
  const landed = kills.filter((k) => k.landed).length;
  const outcome = { equal: diffs.length === 0, kills: o.kills, landed, diffs, plan: kills, seconds: (performance.now() - t0) / 1000, dir };
  if (o.json) process.stdout.write(JSON.stringify(outcome) + "\n");
  else
    say(
      diffs.length === 0
        ? `kill drill: ${landed} of ${o.kills} kills landed; the resumed run equals the uninterrupted one (metrics, transcripts, adapters, checkpoint, summary) in ${outcome.seconds.toFixed(1)} s`
        : `kill drill: the resumed run differs from the uninterrupted one:\n  ${diffs.join("\n  ")}\n  (folders kept in ${dir})`,
    );
  if (!o.keep && diffs.length === 0 && !o.dir) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(diffs.length === 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`kill-drill: ${e.message}\n`);
  process.exit(1);
});
