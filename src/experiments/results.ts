/**
 * The results table: results/RESULTS.md for people and results/results.json for programs, the same numbers.
 */
import type { Cell } from "./pool.ts";

export interface RunInfo {
  id: string; // the run folder's name under <out>/runs/
  variant: string;
  seed: number;
  config_hash: string; // sha256 of the resolved config, first 12 hex digits
  command: string; // the train command that makes it
}

export interface RowResult {
  id: string;
  title: string;
  command: string; // the experiments command that makes this row alone
  seeds: number[];
  runs: RunInfo[];
  cells: Cell[];
  notes: string[];
  seconds: number; // wall time of its runs and evaluations (a run shared with other rows counts in each)
  figures: { run: string; title: string; png: string | null; svg: string | null }[];
}

export interface Results {
  command: string;
  created: string;
  model: string; // what --model resolved to ("the default model" when none was given)
  seeds: number[];
  quick: boolean;
  interval: string;
  seconds: number; // total wall time, this invocation and the earlier ones it resumed
  rows: RowResult[];
}

const num = (x: number | null, d = 4) => (x === null || !Number.isFinite(x) ? "–" : Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(d));

export function resultsMarkdown(r: Results): string {
  const lines = ["# colloquy — results", "", provenance(r), "", pooling(r), ""];
  for (const row of r.rows) {
    lines.push(`## ${row.id}: ${row.title}`, "", `\`${row.command}\` (${Math.round(row.seconds)} s)`, "");
    lines.push("| run | seed | config sha256 | trains with |", "|---|---|---|---|");
    for (const run of row.runs) lines.push(`| ${run.id} | ${run.seed} | \`${run.config_hash}\` | \`${run.command}\` |`);
    lines.push("", ...measures(row));
    if (row.figures.length) lines.push("", `Figures: ${row.figures.map((f) => `[${f.title} (${f.run})](${f.png ?? f.svg})`).join(", ")}.`);
    lines.push("");
  }
  return lines.join("\n");
}

/**
 * The same table without the runs' commands and hashes (RESULTS.md has them), for the README's results section:
 * `experiments --readme FILE` writes it between FILE's markers, and a test checks the README's copy is this.
 */
export function resultsSummary(r: Results, resultsFile: string): string {
  const lines = [provenance(r), `Each run's config hash and train command: [${resultsFile}](${resultsFile}).`, "", pooling(r), ""];
  for (const row of r.rows)
    lines.push(`#### ${row.id}: ${row.title}`, "", `\`${row.command}\` (${Math.round(row.seconds)} s)`, "", ...measures(row), "");
  return lines.join("\n");
}

export const README_BEGIN = "<!-- results table: written by `colloquy experiments --readme README.md`; do not edit by hand -->";
export const README_END = "<!-- end of the results table -->";

/** `text` with the part between the markers replaced by `table` (null when the markers are missing). */
export function replaceBetweenMarkers(text: string, table: string): string | null {
  const a = text.indexOf(README_BEGIN);
  const b = text.indexOf(README_END);
  if (a < 0 || b < a) return null;
  return `${text.slice(0, a + README_BEGIN.length)}\n\n${table.trim()}\n\n${text.slice(b)}`;
}

function provenance(r: Results): string {
  return `Written by \`${r.command}\` on ${r.created.slice(0, 10)}: model ${r.model}, seeds ${r.seeds.join(", ")}${r.quick ? ", **--quick** (tiny settings for tests: not results)" : ""}, ${Math.round(r.seconds)} s in all.`;
}

function pooling(r: Results): string {
  return `Each value pools the seeds' units (episodes, messages, claims, pairs; n) into one sample: ${r.interval}. Per seed: each seed's own value. Nats are per token of the agent's next excerpt.`;
}

function measures(row: RowResult): string[] {
  const lines = ["| measure | value [95% interval] | per seed | n |", "|---|---|---|---|"];
  for (const c of row.cells)
    lines.push(`| ${c.label} | ${num(c.value)} [${num(c.low)}, ${num(c.high)}] | ${c.per_seed.map((x) => num(x)).join(" / ")} | ${c.n} |`);
  if (!row.cells.length) lines.push("| (nothing measured) | – | – | 0 |");
  if (row.notes.length) lines.push("", ...row.notes.map((n) => `- ${n}`));
  return lines;
}
