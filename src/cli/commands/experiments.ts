import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { buildReport } from "../../eval/report/report.ts";
import {
  README_BEGIN,
  README_END,
  type Results,
  type RowResult,
  type RunInfo,
  replaceBetweenMarkers,
  resultsMarkdown,
  resultsSummary,
} from "../../experiments/results.ts";
import { EVALS, type EvalFile, ROW_IDS, ROWS, type Reader, type Row, type Variant } from "../../experiments/rows.ts";
import { TRAIN_KEYS } from "../../run/config.ts";
import { RUN_FILES, runPath } from "../../run/names.ts";
import { UserError } from "../../util/errors.ts";
import { lockIsStale, readJsonFile, writeFileAtomic } from "../../util/fs.ts";
import { key } from "../../util/keys.ts";
import { runAtMost, runVerbInChild } from "../child-verb.ts";
import { runVerbQuietly } from "../in-process.ts";
import { info, printJson } from "../output.ts";
import { defineVerb } from "../verb.ts";

const FLAGS = {
  only: key(z.string().nullable(), null as string | null, `rows to run, comma-separated: ${ROW_IDS.join(", ")} (default: all)`, {
    hint: "a,b",
  }),
  seeds: key(z.string(), "0,1", "training seeds, comma-separated", { hint: "0,1" }),
  out: key(z.string(), "results", "the folder of the table: RESULTS.md, results.json, runs/ (its runs), configs/", { hint: "dir" }),
  quick: key(z.boolean(), false, "tiny settings (2 iterations of 2×2 episodes, 2 rounds, 4 validation episodes): for tests, not results"),
  figures: key(z.boolean(), true, "write each run's report with PNG and SVG figures (--no-figures: the tables only)"),
  jobs: key(
    z.number().int().min(1),
    1,
    "trainings and evaluations run at once, each in its own process with its log in <out>/logs/ (CPU: up to one per core; 1: in this process)",
    { hint: "N" },
  ),
  readme: key(
    z.string().nullable(),
    null as string | null,
    "also write the table (without the runs' commands) into this Markdown file, between its results markers",
    {
      hint: "README.md",
    },
  ),
  quiet: key(z.boolean(), false, "no progress on stderr"),
  json: key(z.boolean(), false, "print results.json's object"),
};

/** The keys --quick sets on every run (the user's keys and each row's own come after). */
const QUICK = { iterations: 2, episodes: 2, group: 2, rounds: 2, evalEpisodes: 4, evalEvery: 0, loraRank: 2, loraAlpha: 4 };
/** Keys the rows own, or that go to one evaluation rather than to every run. */
const NOT_PASSED = new Set(["seed", "hhData", "machiavelliData", "finalEvalLimit"]);

const DESCRIPTION =
  "Run every experiment of the proposal on one model and write the results table: <out>/RESULTS.md (each row with its command, " +
  "the config hash of each run, seeds, pooled values with 95% intervals, wall time) and <out>/results.json (the same numbers), " +
  `with each run's report figures. Rows: ${ROW_IDS.join(", ")}. Training runs live in <out>/runs/ and are shared between rows ` +
  "with the same config; it resumes: a finished run or evaluation is reused, an interrupted run continued. Any train key " +
  "(--model, --backend, --iterations, …) applies to every run; --hh-data and --machiavelli-data feed the prosociality row.";

export default defineVerb({
  name: "experiments",
  description: DESCRIPTION,
  keys: TRAIN_KEYS,
  flags: FLAGS,
  async run({ keys, flags, argv }) {
    const t0 = Date.now();
    const rows = selectRows(flags.only);
    const seeds = parseSeeds(flags.seeds);
    const out = flags.out;
    const given = Object.fromEntries(Object.entries(argv.values).filter(([k]) => k in TRAIN_KEYS && !NOT_PASSED.has(k)));
    const data = { hhData: keys.hhData, machiavelliData: keys.machiavelliData };
    for (const [k, file] of Object.entries(data))
      if (file && !fs.existsSync(file))
        throw new UserError("E_NOT_FOUND", `--${k} ${file} does not exist`, "give an existing file or leave it out");
    if (flags.readme) writeIntoReadme(flags.readme, null, ""); // its markers checked before any work
    fs.mkdirSync(path.join(out, "runs"), { recursive: true });
    fs.mkdirSync(path.join(out, "configs"), { recursive: true });
    lockOut(out);
    const timingsFile = path.join(out, "timings.json");
    const timings: Record<string, number> = fs.existsSync(timingsFile)
      ? (readJsonFile(timingsFile, "timings") as Record<string, number>)
      : {};
    // each task's wall time, and this invocation's so far on top of the earlier ones' (kept if it is interrupted)
    const earlier = timings[TOTAL] ?? 0;
    const saveTimings = () => {
      timings[TOTAL] = earlier + (Date.now() - t0) / 1000;
      writeFileAtomic(timingsFile, JSON.stringify(timings, null, 2) + "\n");
    };
    const timed = async (what: string, work: () => Promise<unknown>) => {
      const t = Date.now();
      await work();
      timings[what] = (timings[what] ?? 0) + (Date.now() - t) / 1000;
      saveTimings();
    };
    const quiet = flags.quiet ? ["--quiet"] : [];
    const runDir = (variant: string, seed: number) => path.join(out, "runs", `${variant}-s${seed}`);
    // what a run sets over its preset: --quick's keys, then the user's, then the row's own, and the seed
    const runKeys = (v: Variant, seed: number) => ({ ...(flags.quick ? QUICK : {}), ...given, ...v.overrides, seed });

    // a verb on one task: in this process, or (--jobs > 1) in a child process with its log in <out>/logs/
    const exec = (what: string, verb: string[], args: string[], load: () => Promise<{ default: unknown }>) => async () => {
      await timed(what, () =>
        flags.jobs > 1
          ? runVerbInChild([...verb, ...args, "--quiet"], path.join(out, "logs", `${what.replace("/", ".")}.log`))
          : runVerbQuietly(load, [...args, ...quiet], "drop"),
      );
      if (flags.jobs > 1) log(flags.quiet, `${what}: done`);
    };

    // 1. the runs, each once
    const variants = [...new Map(rows.flatMap((r) => r.variants).map((v) => [v.id, v])).values()];
    const total = variants.length * seeds.length;
    const trainings: (() => Promise<void>)[] = [];
    let k = 0;
    for (const v of variants) {
      for (const seed of seeds) {
        const dir = runDir(v.id, seed);
        k++;
        if (fs.existsSync(runPath(dir, "summary"))) {
          log(flags.quiet, `[${k}/${total}] ${path.basename(dir)}: done, reused`);
          continue;
        }
        const configFile = path.join(out, "configs", `${v.id}-s${seed}.json`);
        fs.writeFileSync(configFile, JSON.stringify(runKeys(v, seed), null, 2) + "\n");
        const resume = fs.existsSync(runPath(dir, "config"));
        const start = `[${k}/${total}] ${path.basename(dir)}: ${resume ? "resuming" : "training"} (${v.about})`;
        const args = resume ? ["--resume", dir] : ["--preset", v.preset, "--config", configFile, "--out", dir];
        const run = exec(path.basename(dir), ["train"], args, TRAIN);
        trainings.push(async () => {
          log(flags.quiet, start);
          await run();
        });
      }
    }
    await runAtMost(flags.jobs, trainings);

    // 2. the evaluations each row reads, each once per run
    const modelArgs = Object.entries(given).flatMap(([k, v]) => (k in MODEL_PASSED ? [`--${k}`, String(v)] : []));
    const evaluations: (() => Promise<void>)[] = [];
    const planned = new Set<string>();
    for (const row of rows) {
      for (const [variant, kinds] of Object.entries(row.evals)) {
        for (const kind of kinds ?? []) {
          const e = EVALS[kind];
          if ((kind === "hh" && !data.hhData) || (kind === "machiavelli" && !data.machiavelliData)) continue;
          for (const seed of seeds) {
            const dir = runDir(variant, seed);
            const what = `${path.basename(dir)}/${e.file}`;
            if (fs.existsSync(runPath(dir, "eval", `${e.file}.json`)) || planned.has(what)) continue;
            planned.add(what);
            const extra = kind === "hh" ? ["--data", data.hhData!] : kind === "machiavelli" ? ["--data", data.machiavelliData!] : [];
            const limit =
              keys.finalEvalLimit !== null && (kind === "hh" || kind === "machiavelli") ? ["--limit", String(keys.finalEvalLimit)] : [];
            const run = exec(what, ["eval", e.verb], ["--run", dir, ...e.args, ...extra, ...limit, ...modelArgs], EVAL_VERBS[e.verb]);
            evaluations.push(async () => {
              log(flags.quiet, `eval ${e.verb} ${e.args.join(" ")} on ${path.basename(dir)}`);
              await run();
            });
          }
        }
      }
    }
    await runAtMost(flags.jobs, evaluations);

    // 3. the figures, then the table
    const figures = new Map<string, Awaited<ReturnType<typeof buildReport>>["figures"]>();
    if (flags.figures) for (const v of variants) figures.set(v.id, (await buildReport(runDir(v.id, seeds[0]), { png: true })).figures);
    const read: Reader = (variant, seed, file) => {
      const dir = runDir(variant, seed);
      const f = runPath(dir, "eval", `${file}.json`);
      return fs.existsSync(f) ? (readJsonFile(f, `${path.basename(dir)}'s ${file} evaluation`) as EvalFile) : null;
    };
    const userFlags = asFlags(given);
    const dataFlags = `${data.hhData ? ` --hh-data ${data.hhData}` : ""}${data.machiavelliData ? ` --machiavelli-data ${data.machiavelliData}` : ""}`;
    const rel = (f: string | null) => (f ? path.relative(out, f) : null);
    const results = rows.map((row): RowResult => {
      const runs: RunInfo[] = row.variants.flatMap((v) =>
        seeds.map((seed) => ({
          id: path.basename(runDir(v.id, seed)),
          variant: v.id,
          seed,
          config_hash: configHash(runDir(v.id, seed)),
          command: `npx colloquy train --preset ${v.preset}${asFlags(runKeys(v, seed))}`,
        })),
      );
      const { cells, notes } = row.measure(read, seeds, { hhData: !!data.hhData, machiavelliData: !!data.machiavelliData });
      const seconds = runs.reduce(
        (a, r) => a + (timings[r.id] ?? 0) + EVAL_FILES.reduce((b, file) => b + (timings[`${r.id}/${file}`] ?? 0), 0),
        0,
      );
      return {
        id: row.id,
        title: row.title,
        command: `npx colloquy experiments --only ${row.id} --seeds ${seeds.join(",")}${flags.quick ? " --quick" : ""}${userFlags}${row.id === "prosociality" ? dataFlags : ""}`,
        seeds,
        runs,
        cells,
        notes,
        seconds,
        figures: row.variants.flatMap((v) =>
          (figures.get(v.id) ?? [])
            .filter((f) => row.figures.includes(f.id))
            .map((f) => ({ run: path.basename(runDir(v.id, seeds[0])), title: f.title, png: rel(f.png), svg: rel(f.svg) })),
        ),
      };
    });
    saveTimings();
    const table: Results = {
      command: `npx colloquy experiments${flags.only ? ` --only ${flags.only}` : ""} --seeds ${seeds.join(",")}${flags.quick ? " --quick" : ""}${userFlags}${dataFlags}`,
      created: new Date().toISOString(),
      model: keys.model ?? "the default model",
      seeds,
      quick: flags.quick,
      interval:
        "95%: normal for means (over every pooled unit), Wilson for shares; systems that answer the same items (the trained agents on HH-RLHF and MACHIAVELLI) are averaged, their interval over the items counted once; a share of the oracle divides the measure's interval by the pooled oracle. The intervals are over these seeds' units: how training itself varies from seed to seed shows in the per-seed values, not in them",
      seconds: timings[TOTAL],
      rows: results,
    };
    writeFileAtomic(path.join(out, "results.json"), JSON.stringify(table, null, 2) + "\n");
    writeFileAtomic(path.join(out, "RESULTS.md"), resultsMarkdown(table));
    if (flags.readme) writeIntoReadme(flags.readme, table, path.join(out, "RESULTS.md"));
    if (flags.json) return printJson(table);
    info(`${path.join(out, "RESULTS.md")} and results.json: ${results.length} rows, ${Math.round(table.seconds)} s`);
  },
});

/** The table's summary between the results markers of a Markdown file (the README's results section); null: check only. */
function writeIntoReadme(file: string, table: Results | null, resultsFile: string): void {
  if (!fs.existsSync(file))
    throw new UserError("E_NOT_FOUND", `--readme ${file} does not exist`, "give the README to write the table into");
  const link = path.relative(path.dirname(file), resultsFile).split(path.sep).join("/");
  const text = replaceBetweenMarkers(fs.readFileSync(file, "utf8"), table ? resultsSummary(table, link) : "");
  if (text === null)
    throw new UserError(
      "E_BAD_FLAG",
      `--readme ${file}: no results markers in it`,
      `put the lines ${README_BEGIN} and ${README_END} where the table goes`,
    );
  if (table) writeFileAtomic(file, text);
}

/** The model keys an evaluation needs to score where training ran. */
const MODEL_PASSED = {
  model: 1,
  tokenizer: 1,
  backend: 1,
  device: 1,
  dtype: 1,
  python: 1,
  maxTokensPerPass: 1,
  nproc: 1,
  worker: 1,
  tokenFile: 1,
};

const TOTAL = "experiments (this and earlier invocations)";
const TRAIN = () => import("./train.ts");
const EVAL_FILES = [...new Set(Object.values(EVALS).map((e) => e.file))];
const EVAL_VERBS: Record<string, () => Promise<{ default: unknown }>> = {
  channel: () => import("./eval/channel.ts"),
  language: () => import("./eval/language.ts"),
  hh: () => import("./eval/hh.ts"),
  machiavelli: () => import("./eval/machiavelli.ts"),
};

/**
 * One invocation at a time writes a table's folder: <out>/.lock, created only if it is not there, holds its pid until
 * it exits; a lock whose process is gone is taken over.
 */
function lockOut(out: string): void {
  const lock = path.join(out, ".lock");
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let holder: string;
    try {
      holder = fs.readFileSync(lock, "utf8").trim();
    } catch {
      continue; // released meanwhile
    }
    if (holder === String(process.pid)) break;
    if (lockIsStale(lock)) {
      fs.rmSync(lock, { force: true });
      continue;
    }
    throw new UserError(
      "E_BUSY",
      `${out} is being written by another colloquy experiments (pid ${holder})`,
      "wait for it to end, or give another --out",
    );
  }
  process.on("exit", () => fs.rmSync(lock, { force: true }));
}

/** Keys as command-line flags: " --key=value", lists comma-separated. */
function asFlags(keys: Record<string, unknown>): string {
  return Object.entries(keys)
    .map(([k, v]) => ` --${k}=${Array.isArray(v) ? v.join(",") : String(v)}`)
    .join("");
}

function log(quiet: boolean, line: string): void {
  if (!quiet) info(`colloquy experiments: ${line}`);
}

function selectRows(only: string | null): Row[] {
  if (only === null) return ROWS;
  const ids = only.split(",").map((s) => s.trim());
  for (const id of ids)
    if (!ROW_IDS.includes(id)) throw new UserError("E_BAD_FLAG", `--only: unknown row "${id}"`, `rows: ${ROW_IDS.join(", ")}`);
  return ROWS.filter((r) => ids.includes(r.id));
}

function parseSeeds(s: string): number[] {
  const seeds = s.split(",").map((x) => Number(x.trim()));
  if (!seeds.length || seeds.some((x) => !Number.isInteger(x) || x < 0))
    throw new UserError("E_BAD_FLAG", `--seeds ${s}: expected non-negative integers, comma-separated`, "e.g. --seeds 0,1");
  return [...new Set(seeds)];
}

/** sha256 of a run's resolved config (its config.json's `config`, keys sorted), first 12 hex digits. */
function configHash(dir: string): string {
  const file = runPath(dir, "config");
  if (!fs.existsSync(file)) return "-";
  const config = (readJsonFile(file, RUN_FILES.config) as { config: Record<string, unknown> }).config;
  const sorted = JSON.stringify(Object.fromEntries(Object.entries(config).sort(([a], [b]) => (a < b ? -1 : 1))));
  return createHash("sha256").update(sorted).digest("hex").slice(0, 12);
}
