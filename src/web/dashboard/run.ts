/**
 * One run folder as the dashboard sees it: its config (name, preset, planned iterations, agents), its metrics and
 * transcripts followed incrementally, and its status, read off the files: `finished` (summary.json is newer than the
 * last metrics line), `running` (a file changed recently: within 2 minutes, or 5 times the slowest iteration),
 * `stopped` (neither: killed, or waiting for a resume), `starting` (no metrics yet, config written recently).
 */
import fs from "node:fs";
import path from "node:path";
import { MetricsLog } from "./metrics-log.ts";
import { TranscriptIndex } from "./transcript-index.ts";
import { RUN_FILES, runPath } from "../../run/names.ts";

export type RunStatus = "starting" | "running" | "finished" | "stopped";

export interface RunSummary {
  id: string; // path relative to the dashboard's folder
  name: string;
  preset: string | null;
  status: RunStatus;
  iteration: number | null; // last metrics line
  iterations: number | null; // planned
  best_val_gain: number | null; // highest validation information gain
  best_val_iteration: number | null;
  agents: string[];
  rounds: number | null;
  transcript_episodes: number | null;
  created: string | null;
  lines: number;
}

/** Quiet time after which a run without summary.json counts as stopped: 2 minutes, or 5 of its slowest iterations. */
export function quietLimitMs(slowestIterationSeconds: number): number {
  return Math.max(120_000, 5000 * slowestIterationSeconds);
}

export class WatchedRun {
  readonly id: string;
  readonly dir: string;
  readonly metrics: MetricsLog;
  private transcriptIndex: TranscriptIndex | null = null;
  private config: Record<string, unknown> | null = null;
  private configMtime = -1;

  constructor(id: string, dir: string) {
    this.id = id;
    this.dir = dir;
    this.metrics = new MetricsLog(runPath(dir, "metrics"));
  }

  /** The transcripts index, built on first use and kept up to date by `refresh`. */
  transcripts(): TranscriptIndex {
    if (!this.transcriptIndex) {
      this.transcriptIndex = new TranscriptIndex(runPath(this.dir, "transcripts"));
      this.transcriptIndex.refresh();
    }
    return this.transcriptIndex;
  }

  get hasTranscriptIndex(): boolean {
    return this.transcriptIndex !== null;
  }

  /** Reads what changed: the config if rewritten, appended metrics lines and transcript records. */
  refresh(): { metricsReset: boolean; metricsAdded: number; transcriptsAdded: number } {
    const st = fs.statSync(runPath(this.dir, "config"), { throwIfNoEntry: false });
    if (st && st.mtimeMs !== this.configMtime) {
      this.configMtime = st.mtimeMs;
      try {
        this.config = JSON.parse(fs.readFileSync(runPath(this.dir, "config"), "utf8"));
      } catch {
        this.config = null; // being written; read again next time
        this.configMtime = -1;
      }
    }
    const m = this.metrics.refresh();
    const t = this.transcriptIndex ? this.transcriptIndex.refresh() : { added: 0, reset: false };
    return { metricsReset: m.reset, metricsAdded: m.added, transcriptsAdded: t.reset ? t.added || 1 : t.added };
  }

  status(now = Date.now()): RunStatus {
    const mtime = (name: string) => fs.statSync(path.join(this.dir, name), { throwIfNoEntry: false })?.mtimeMs ?? -1;
    const metrics = mtime(RUN_FILES.metrics);
    const summary = mtime(RUN_FILES.summary);
    if (summary >= 0 && summary >= metrics) return "finished";
    const latest = Math.max(metrics, mtime(RUN_FILES.transcripts), mtime(RUN_FILES.checkpointState), mtime(RUN_FILES.config));
    const quiet = now - latest;
    if (metrics < 0) return quiet < quietLimitMs(0) ? "starting" : "stopped";
    return quiet < quietLimitMs(this.metrics.slowestIteration) ? "running" : "stopped";
  }

  summary(now = Date.now()): RunSummary {
    const c = this.config ?? {};
    const cfg = (typeof c.config === "object" && c.config !== null ? c.config : {}) as Record<string, unknown>;
    const num = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : null);
    return {
      id: this.id,
      name: this.id,
      preset: typeof c.preset === "string" ? c.preset : null,
      status: this.status(now),
      iteration: this.metrics.lastIteration,
      iterations: num(cfg.iterations),
      best_val_gain: this.metrics.best?.value ?? null,
      best_val_iteration: this.metrics.best?.iteration ?? null,
      agents: Array.isArray(cfg.agents) ? cfg.agents.map(String) : [],
      rounds: num(cfg.rounds),
      transcript_episodes: num(cfg.transcriptEpisodes),
      created: typeof c.created === "string" ? c.created : null,
      lines: this.metrics.count,
    };
  }
}
