/**
 * A run's scalar training metrics averaged over its first and its last N training iterations (and their values at
 * the last), as the README's algorithm comparison quotes them: `colloquy report <run> --averages N`. Iteration 0
 * (the validation before training) is not a training iteration; per-agent and matrix metrics, validation metrics
 * (measured only every evalEvery iterations) and timings are left out.
 */
import fs from "node:fs";
import { runPath } from "../../run/names.ts";
import { UserError } from "../../util/errors.ts";
import { mean } from "../../util/stats.ts";
import { readJsonl } from "../language.ts";

type Line = Record<string, unknown>;

/** The metrics averaged, in the order they are printed. */
export const AVERAGED = [
  "reward",
  "learner_gain",
  "oracle_gain",
  "kl",
  "kl_coef",
  "entropy",
  "grad_norm",
  "state_tokens",
  "messages",
  "clip_fraction",
  "value_loss",
] as const;

export interface MetricAverages {
  first: number | null; // mean over the first N training iterations (null: never measured there)
  last: number | null; // mean over the last N
  at_last: number | null; // at the last iteration
}

export interface Averages {
  n: number; // iterations per window
  first: [number, number]; // the first window's iterations, inclusive
  last: [number, number];
  metrics: Record<string, MetricAverages>; // only metrics measured in some training iteration
}

const meanOrNull = (xs: number[]) => (xs.length ? mean(xs) : null);
const values = (lines: Line[], key: string) => lines.map((l) => l[key]).filter((v): v is number => typeof v === "number");

/** metrics.jsonl's lines → the averages over the first and the last `n` training iterations (n ≥ 1). */
export function metricAverages(metrics: readonly Line[], n: number): Averages {
  const training = metrics.filter((l) => typeof l.iteration === "number" && l.iteration >= 1);
  training.sort((a, b) => (a.iteration as number) - (b.iteration as number));
  if (!training.length)
    throw new UserError(
      "E_NO_METRICS",
      "metrics.jsonl has no training iteration yet",
      "train the run first, or wait for its first iteration",
    );
  const head = training.slice(0, n),
    tail = training.slice(-n),
    end = training[training.length - 1];
  const it = (l: Line) => l.iteration as number;
  const out: Averages = { n, first: [it(head[0]), it(head.at(-1)!)], last: [it(tail[0]), it(tail.at(-1)!)], metrics: {} };
  for (const key of AVERAGED) {
    if (!values(training, key).length) continue;
    out.metrics[key] = {
      first: meanOrNull(values(head, key)),
      last: meanOrNull(values(tail, key)),
      at_last: typeof end[key] === "number" ? end[key] : null,
    };
  }
  return out;
}

/** The averages of run folder `runDir`'s metrics.jsonl. */
export function runAverages(runDir: string, n: number): Averages {
  const file = runPath(runDir, "metrics");
  if (!fs.existsSync(file)) throw new UserError("E_NOT_FOUND", `no ${file}`, "give a run folder written by colloquy train");
  return metricAverages(readJsonl<Line>(file), n);
}

/** The averages as a plain-text table: metric, first window, last window, at the last iteration. */
export function formatAverages(a: Averages): string {
  const span = ([from, to]: [number, number]) => (from === to ? `it. ${from}` : `it. ${from}–${to}`);
  const num = (v: number | null) => (v === null ? "—" : (v < 0 ? "−" : v > 0 ? "+" : " ") + Math.abs(v).toFixed(4));
  const rows = [["metric", span(a.first), span(a.last), `at ${a.last[1]}`]];
  for (const [key, m] of Object.entries(a.metrics)) rows.push([key, num(m.first), num(m.last), num(m.at_last)]);
  const width = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c ? cell.padStart(width[c]) : cell.padEnd(width[c]))).join("  ")).join("\n");
}
