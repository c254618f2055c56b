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
import { savePeftAdapter } from "../formats/peft.ts";
import type { AdapterState } from "../engine/backend.ts";
import { UserError } from "../util/errors.ts";
import { readJsonFile, writeFileAtomic } from "../util/fs.ts";
import { type TrainConfig, resolveConfig } from "./config.ts";
import { RUN_FILES } from "./names.ts";

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
    fs.mkdirSync(this.dir, { recursive: true });
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

  appendMetrics(line: object): void {
    fs.appendFileSync(this.file(RUN_FILES.metrics), JSON.stringify(line) + "\n");
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

  /** The checkpoint folder to resume from (a swap interrupted half-way leaves `.old`), or null. */
  checkpointDir(): string | null {
    const dst = this.file(RUN_FILES.checkpoint);
    if (fs.existsSync(path.join(dst, "state.json"))) return dst;
    const old = `${dst}.old`;
    return fs.existsSync(path.join(old, "state.json")) ? old : null;
  }

  writeSummary(summary: object): void {
    writeFileAtomic(this.file(RUN_FILES.summary), JSON.stringify(summary, null, 2) + "\n");
  }
}

/** Replaces folder `dst` by `src`: dst → dst.old, src → dst, remove dst.old. Readers always find one whole copy. */
function swapInto(src: string, dst: string): void {
  const old = `${dst}.old`;
  fs.rmSync(old, { recursive: true, force: true });
  if (fs.existsSync(dst)) fs.renameSync(dst, old);
  fs.renameSync(src, dst);
  fs.rmSync(old, { recursive: true, force: true });
}
