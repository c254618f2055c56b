/**
 * The run folder (SYSTEM.md, "Outputs of a run"):
 *   config.json         the resolved config, seed and versions
 *   metrics.jsonl       one line per iteration (fixed fields; iteration 0 holds the initial evaluation)
 *   transcripts.jsonl   sampled agent-rounds of each iteration
 *   adapters/<agent>/   PEFT adapters (written atomically: a folder is renamed into place)
 *   checkpoint/         everything a resume needs; replaced atomically (new folder, then a swap of names)
 *   summary.json        the outcome
 * A run killed at any moment resumes from its last checkpoint: lines of metrics.jsonl and transcripts.jsonl
 * written after it are dropped, so the resumed run continues without a gap or a repeated iteration.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { savePeftAdapter } from "../formats/peft.ts";
import type { AdapterState } from "../engine/backend.ts";
import { UserError } from "../util/errors.ts";
import { readJsonFile, writeFileAtomic } from "../util/fs.ts";
import { type TrainConfig, resolveConfig } from "./config.ts";
import { RUN_FILES } from "./names.ts";
import type { Tracker } from "./trackers.ts";

export class RunFolder {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  file(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  create(config: object): void {
    if (fs.existsSync(this.file(RUN_FILES.config))) {
      throw new UserError(
        "E_RUN_EXISTS",
        `${this.dir} already holds a run`,
        `resume it with --resume ${this.dir}, or choose another --out`,
      );
    }
    try {
      fs.mkdirSync(this.dir, { recursive: true });
    } catch (e) {
      throw new UserError(
        "E_BAD_OUT",
        `cannot create the run folder ${this.dir}: ${(e as Error).message}`,
        "--out names a folder to create",
      );
    }
    if (!fs.statSync(this.dir).isDirectory()) {
      throw new UserError("E_BAD_OUT", `${this.dir} is a file, not a folder`, "--out names a folder to create, or an empty one");
    }
    writeFileAtomic(this.file(RUN_FILES.config), JSON.stringify(config, null, 2) + "\n");
  }

  readConfig(): Record<string, unknown> {
    return readJsonFile(this.file(RUN_FILES.config), "run config") as Record<string, unknown>;
  }

  /** The run's training config, checked against today's keys (keys added since it was written take their defaults). */
  trainConfig(): TrainConfig {
    const saved = this.readConfig().config;
    if (typeof saved !== "object" || saved === null) {
      throw new UserError(
        "E_BAD_RUN",
        `${this.file(RUN_FILES.config)} has no "config" object`,
        "is this a folder written by colloquy train?",
      );
    }
    return resolveConfig([{ values: saved as Record<string, unknown>, where: this.file(RUN_FILES.config) }]);
  }

  /** Trackers (config key `log`) that get each metrics line as it is appended; set when training starts. */
  trackers: Tracker[] = [];

  appendMetrics(line: object): void {
    fs.appendFileSync(this.file(RUN_FILES.metrics), JSON.stringify(line) + "\n");
    for (const t of this.trackers) t.write(line);
  }

  appendTranscripts(records: readonly object[]): void {
    if (records.length) fs.appendFileSync(this.file(RUN_FILES.transcripts), records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  }

  /** Keeps only lines whose `iteration` is below `next` (and drops a torn last line). */
  truncateLogs(next: number): void {
    for (const name of [RUN_FILES.metrics, RUN_FILES.transcripts]) {
      const f = this.file(name);
      if (!fs.existsSync(f)) continue;
      const kept = fs
        .readFileSync(f, "utf8")
        .split("\n")
        .filter((line) => {
          if (!line.trim()) return false;
          try {
            return (JSON.parse(line) as { iteration: number }).iteration < next;
          } catch {
            return false;
          }
        });
      writeFileAtomic(f, kept.length ? kept.join("\n") + "\n" : "");
    }
  }

  readMetrics(): Record<string, unknown>[] {
    const f = this.file(RUN_FILES.metrics);
    if (!fs.existsSync(f)) return [];
    return fs
      .readFileSync(f, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }

  /** The lines of a log that parse (a torn last line does not). */
  private readLogLines(name: string): Record<string, unknown>[] {
    const f = this.file(name);
    if (!fs.existsSync(f)) return [];
    return fs
      .readFileSync(f, "utf8")
      .split("\n")
      .flatMap((line) => {
        try {
          return line.trim() ? [JSON.parse(line) as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      });
  }

  /** Writes adapters/<agent>/ in PEFT's format from an adapter's plain data (Backend.exportAdapter). */
  saveAdapter(agent: string, adapter: AdapterState, baseModel: string): void {
    const dst = this.file(RUN_FILES.adapters, agent);
    const tmp = `${dst}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    savePeftAdapter(tmp, adapter, baseModel);
    swapInto(tmp, dst);
  }

  /** Writes a checkpoint folder through `write(tmpDir)` and swaps it into place. */
  writeCheckpoint(write: (dir: string) => void): void {
    const dst = this.file(RUN_FILES.checkpoint);
    const tmp = `${dst}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    write(tmp);
    swapInto(tmp, dst);
  }

  /**
   * The checkpoint folder to resume from (a swap interrupted half-way leaves `.old`), or null when there is none
   * holding both of its files.
   */
  checkpointDir(): string | null {
    const dst = this.file(RUN_FILES.checkpoint);
    const whole = (dir: string) => CHECKPOINT_FILES.every((f) => fs.existsSync(path.join(dir, f)));
    if (whole(dst)) return checkedCheckpoint(dst);
    return whole(`${dst}.old`) ? checkedCheckpoint(`${dst}.old`) : null;
  }

  /**
   * What the run holds beyond its config and its initial evaluation (which a restart redoes identically): the
   * files a run from iteration 0 would overwrite, and the last trained iteration of metrics.jsonl (0: none).
   */
  results(): { files: string[]; lastIteration: number } {
    const lastIteration = Math.max(0, ...this.readLogLines(RUN_FILES.metrics).map((l) => Number(l.iteration) || 0));
    const files = RESULT_FILES.filter((f) => {
      const p = this.file(f);
      if (f === RUN_FILES.metrics) return lastIteration > 0;
      // a checkpoint.tmp alone is a first checkpoint cut short, not a result
      if (f === RUN_FILES.checkpoint) return fs.existsSync(p) || fs.existsSync(`${p}.old`);
      return fs.existsSync(p) && !(fs.statSync(p).isFile() && fs.statSync(p).size === 0);
    });
    return { files, lastIteration };
  }

  /** Removes everything a run writes but its config (a restart from iteration 0, asked for by the user). */
  discardResults(): void {
    const written = Object.values(RUN_FILES).filter((f) => f !== RUN_FILES.config && !f.includes(path.sep));
    for (const f of written) {
      for (const p of [this.file(f), `${this.file(f)}.old`, `${this.file(f)}.tmp`]) fs.rmSync(p, { recursive: true, force: true });
    }
  }

  writeSummary(summary: object): void {
    writeFileAtomic(this.file(RUN_FILES.summary), JSON.stringify(summary, null, 2) + "\n");
  }
}

/** The files of a checkpoint folder; without both it cannot be resumed from. */
const CHECKPOINT_FILES = ["state.json", "adapters.safetensors"];

/** The results of a run that a start from iteration 0 would overwrite (besides the metrics of trained iterations). */
const RESULT_FILES = [
  RUN_FILES.metrics,
  RUN_FILES.transcripts,
  RUN_FILES.adapters,
  RUN_FILES.checkpoint,
  RUN_FILES.summary,
  RUN_FILES.eval,
  RUN_FILES.report,
];

/** The fields of a checkpoint's state.json (rl/trainer.ts writes them), checked before a resume trusts them. */
const finite = z.number().finite();
const CHECKPOINT_STATE = z.object({
  iteration: z.number().int().nonnegative(),
  rng: z
    .array(
      z
        .number()
        .int()
        .min(0)
        .max(2 ** 32 - 1),
    )
    .length(4),
  beta: finite.nonnegative(),
  baseline: z.object({ moving: z.record(z.string(), finite) }),
  valueHeads: z.record(
    z.string(),
    z.object({
      w: z.array(finite),
      b: finite,
      mw: z.array(finite),
      vw: z.array(finite),
      mb: finite,
      vb: finite,
      t: z.number().int().nonnegative(),
    }),
  ),
  initial: z.object({ learner_gain: finite }).nullable(),
  initialOff: z.object({ learner_gain: finite }).nullable().optional(),
  optimizerSteps: z.record(z.string(), z.number().int().nonnegative()),
});

/** `dir`, once its state.json has the fields and types a resume needs (else a one-line error naming the field). */
function checkedCheckpoint(dir: string): string {
  const file = path.join(dir, "state.json");
  const r = CHECKPOINT_STATE.safeParse(readJsonFile(file, "checkpoint state"));
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(
      "E_BAD_CHECKPOINT",
      `${file}: ${issue.path.join(".") || "(the whole file)"}: ${issue.message}`,
      "the checkpoint is damaged; --restart trains the run again from iteration 0",
    );
  }
  return dir;
}

/** Replaces folder `dst` by `src`: dst → dst.old, src → dst, remove dst.old. Readers always find one whole copy. */
function swapInto(src: string, dst: string): void {
  const old = `${dst}.old`;
  fs.rmSync(old, { recursive: true, force: true });
  if (fs.existsSync(dst)) fs.renameSync(dst, old);
  fs.renameSync(src, dst);
  fs.rmSync(old, { recursive: true, force: true });
}
