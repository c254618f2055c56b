/**
 * `colloquy report`: one self-contained page for a run (runs/<id>/report.html: inline SVG and CSS, no scripts, no
 * external requests) and every figure as runs/<id>/report/<figure>.png (and .svg) for papers. Sections: the run
 * (config highlights and summary.json), training curves of every metric in metrics.jsonl, the talk and message-value
 * matrices, each evaluation in runs/<id>/eval/*.json, and sample transcripts. Everything read from the run is
 * escaped: model outputs are untrusted.
 */
import fs from "node:fs";
import path from "node:path";
import type { TranscriptRecord } from "../language.ts";
import { defaultBlock, readJsonl, readTranscripts } from "../language.ts";
import { UserError } from "../../util/errors.ts";
import { readJsonFile, writeFileAtomic } from "../../util/fs.ts";
import { type Cell, type Section, figureHtml, kvTable, page, para, table } from "./html.ts";
import { jsonSection } from "./json-tables.ts";
import { type LanguageResult, languageSection } from "./language-section.ts";
import { pngRenderer, systemFontsLikely } from "./png.ts";
import { esc, fmtNum, standalone } from "./svg.ts";
import { type Figure, agentLabel, matrixFigures, trainingFigures } from "./training.ts";
import { runPath } from "../../run/names.ts";

export interface ReportOptions {
  out?: string; // the HTML file (default <run>/report.html)
  png?: boolean; // write report/<figure>.png and .svg (default true)
  block?: number; // iterations per block of the matrices (default: at most 5 blocks)
}

export interface ReportResult {
  html: string;
  bytes: number;
  figures: { id: string; title: string; metrics: string[]; png: string | null; svg: string | null }[];
  evals: string[];
  sections: string[];
}

type Obj = Record<string, unknown>;

const HIGHLIGHTS = [
  "agents",
  "sharedAdapter",
  "source",
  "rounds",
  "window",
  "scorer",
  "reward",
  "social",
  "algorithm",
  "baseline",
  "iterations",
  "episodes",
  "group",
  "lr",
  "klCoef",
  "klTarget",
  "klMode",
  "entropyCoef",
  "loraRank",
  "loraAlpha",
  "stateTokens",
  "messageTokens",
  "messagesPerRound",
  "temperature",
  "evalEpisodes",
  "seed",
];

const show = (v: unknown): Cell => (v === null || v === undefined ? null : typeof v === "object" ? JSON.stringify(v) : (v as Cell));

function runSection(runDir: string, saved: Obj, summary: Obj | null, lastIteration: number): Section {
  const config = (saved.config ?? {}) as Obj;
  const rows: [string, Cell][] = [
    ["run folder", runDir],
    ["created", show(saved.created)],
    ["preset", show(saved.preset)],
    ["config file", show(saved.config_file)],
    ["base model", show(summary?.model ?? config.model ?? "the default model")],
    ["iterations done", lastIteration],
    ...HIGHLIGHTS.filter((k) => k in config).map((k): [string, Cell] => [k, show(config[k])]),
    ["overrides", show(saved.overrides)],
    ["versions", show(saved.versions)],
  ];
  let body = "<h3>Configuration (highlights; the full config is config.json)</h3>" + kvTable(rows);
  body += "<h3>Outcome (summary.json)</h3>";
  body += summary
    ? kvTable(
        Object.entries(summary).map(([k, v]) => [
          k,
          Array.isArray(v) && v.every((x) => typeof x === "number") ? v.map((x) => fmtNum(x as number, 4)).join(", ") : show(v),
        ]),
      )
    : para("no summary.json: the run has not finished", "note");
  return { id: "run", title: "Run", body };
}

function grid(figures: readonly Figure[]): string {
  return `<div class="grid">${figures.map(figureHtml).join("\n")}</div>`;
}

function transcriptsSection(records: readonly TranscriptRecord[], agents: readonly string[]): Section {
  const iterations = [...new Set(records.map((r) => r.iteration))].sort((a, b) => a - b);
  const pick = [...new Set([iterations[0], iterations[iterations.length - 1]])].filter((x) => x !== undefined);
  let body = para("The first episode of the first and last iterations in transcripts.jsonl, as the agents wrote them (escaped).", "note");
  if (!pick.length) body += para("no transcripts.jsonl records", "note");
  for (const it of pick) {
    const rs = records.filter((r) => r.iteration === it);
    const episode = Math.min(...rs.map((r) => r.episode));
    const mine = rs.filter((r) => r.episode === episode).sort((a, b) => a.round - b.round || a.agent - b.agent);
    body += `<h3>${esc(`Iteration ${it}, episode ${episode} (world ${mine[0]?.world ?? "?"})`)}</h3>`;
    body += table(
      ["round", "agent", "excerpt read", "completion", "state", "messages sent", "info gain", "reward", "message values", "violations"],
      mine.map((r) => [
        r.round,
        agentLabel(agents, r.agent),
        r.excerpt,
        r.completion,
        r.state,
        r.sent.map((m) => `${m.from}→${m.to}: ${m.text}`).join("\n"),
        r.information_gain,
        r.reward,
        r.message_values.map((v) => `→${v.to}: ${fmtNum(v.value, 4)}`).join(", "),
        r.violations.join(", "),
      ]),
    );
  }
  return { id: "transcripts", title: "Transcripts", body };
}

interface EvalPart {
  kind: string;
  note: string | null;
  html: string;
  figures: Figure[];
}

function evalParts(runDir: string, agents: readonly string[]): EvalPart[] {
  const dir = runPath(runDir, "eval");
  const files = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".json"))
        .sort()
    : [];
  return files.map((f) => {
    const kind = f.slice(0, -5);
    let value: unknown;
    try {
      value = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
    } catch (e) {
      return { kind, note: `eval/${f} is not valid JSON: ${(e as Error).message}`, html: "", figures: [] };
    }
    try {
      if (kind === "language") return { kind, note: null, ...languageSection({ agents, ...(value as Omit<LanguageResult, "agents">) }) };
    } catch {
      // a language.json of another version: its tables, generically
    }
    return { kind, note: null, ...jsonSection(kind, value) };
  });
}

function evalBody(parts: readonly EvalPart[]): string {
  if (!parts.length)
    return para(
      "No evaluations yet: run `colloquy eval <kind> --run <run>` (channel, language, hh, machiavelli, judge) and make the report again.",
      "note",
    );
  return parts
    .map((p) => `<h3 id="eval-${esc(p.kind)}">${esc(p.kind)}</h3>` + (p.note ? para(p.note, "note") : "") + grid(p.figures) + p.html)
    .join("\n");
}

/** Builds report.html and the PNGs; returns what it wrote. */
export async function buildReport(runDir: string, o: ReportOptions = {}): Promise<ReportResult> {
  if (!fs.existsSync(runPath(runDir, "config")))
    throw new UserError("E_NOT_FOUND", `no run in ${runDir} (config.json missing)`, "give a folder written by colloquy train");
  const saved = readJsonFile(runPath(runDir, "config"), "run config") as Obj;
  const summaryFile = runPath(runDir, "summary");
  const summary = fs.existsSync(summaryFile) ? (readJsonFile(summaryFile, "run summary") as Obj) : null;
  const agents = (((saved.config ?? {}) as Obj).agents ?? []) as string[];
  const metrics = readJsonl<Obj>(runPath(runDir, "metrics"));
  const last = Math.max(0, ...metrics.map((m) => Number(m.iteration) || 0));
  const block = o.block ?? defaultBlock(last);

  const training = trainingFigures(metrics, agents);
  const matrices = matrixFigures(metrics, agents, block);
  const evals = evalParts(runDir, agents);
  const all = uniqueIds([...training.figures, ...matrices, ...evals.flatMap((p) => p.figures)]);
  const fonts = systemFontsLikely();
  const sections: Section[] = [
    runSection(runDir, saved, summary, last),
    {
      id: "training",
      title: "Training curves",
      body:
        (metrics.length ? "" : para("metrics.jsonl is empty or missing", "note")) +
        grid(training.figures) +
        (training.empty.length ? para(`Not recorded in this run (always null): ${training.empty.join(", ")}.`, "note") : ""),
    },
    {
      id: "matrices",
      title: "Matrices",
      body:
        para(
          `Means over the last block of ${block} iteration(s) of metrics.jsonl (every training episode). Row = sender, column = recipient.`,
          "note",
        ) + (matrices.length ? grid(matrices) : para("no matrices recorded", "note")),
    },
    { id: "evaluations", title: "Evaluations", body: evalBody(evals) },
    transcriptsSection(readTranscripts(runDir), agents),
  ];
  const subtitle =
    `${runDir}: ${all.length} figures; each is also report/<figure>.png${o.png === false ? " (not written this time: --no-png)" : ""}` +
    (fonts ? "" : "; no system fonts were found, so the PNGs may lack their text (install fonts-dejavu-core)") +
    ".";
  const html = page(`colloquy report: ${path.basename(path.resolve(runDir))}`, subtitle, sections);
  const out = o.out ?? runPath(runDir, "report");
  writeFileAtomic(out, html);

  const files: ReportResult["figures"] = [];
  const pngDir = path.join(runDir, "report");
  const toPng = o.png === false ? null : await pngRenderer(2);
  if (toPng) {
    fs.mkdirSync(pngDir, { recursive: true });
    for (const f of fs.readdirSync(pngDir)) if (/\.(png|svg)$/.test(f)) fs.rmSync(path.join(pngDir, f)); // no stale figures
  }
  for (const f of all) {
    if (!toPng) {
      files.push({ id: f.id, title: f.title, metrics: f.metrics, png: null, svg: null });
      continue;
    }
    const png = path.join(pngDir, `${f.id}.png`),
      svg = path.join(pngDir, `${f.id}.svg`);
    fs.writeFileSync(png, toPng(f.svg));
    fs.writeFileSync(svg, standalone(f.svg) + "\n");
    files.push({ id: f.id, title: f.title, metrics: f.metrics, png, svg });
  }
  return {
    html: out,
    bytes: Buffer.byteLength(html),
    figures: files,
    evals: evals.map((p) => p.kind),
    sections: sections.map((s) => s.id),
  };
}

/** Figure ids become file names: makes them unique, in place (each figure's SVG id in step). */
function uniqueIds(figures: Figure[]): Figure[] {
  const seen = new Map<string, number>();
  for (const f of figures) {
    const n = seen.get(f.id) ?? 0;
    seen.set(f.id, n + 1);
    if (n === 0) continue;
    const id = `${f.id}-${n + 1}`;
    f.svg = f.svg.replace(`id="${esc(f.id)}"`, `id="${esc(id)}"`);
    f.id = id;
  }
  return figures;
}
