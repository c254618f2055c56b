/**
 * The run folders under the dashboard's folder: the folder itself when it is a run, else every subfolder (and
 * sub-subfolder, for sweeps) that is one (a run's config.json, not a model's). Rescanned at most every `rescanMs`; each refresh reads only
 * what the runs appended since the last one, and refreshes that come faster than `minIntervalMs` apart (several
 * pages polling at once) share one pass.
 */
import fs from "node:fs";
import path from "node:path";
import { WatchedRun } from "./run.ts";
import { runPath } from "../../run/names.ts";

export interface RunsIndexOptions {
  rescanMs?: number; // how often to look for new run folders (default 2000)
  minIntervalMs?: number; // refreshes closer together than this do nothing (default 250)
}

const SKIP = /^\.|\.tmp|\.old$|^(adapters|checkpoint|eval)$/;

export class RunsIndex {
  readonly root: string;
  private readonly runs = new Map<string, WatchedRun>();
  private readonly rescanMs: number;
  private readonly minIntervalMs: number;
  private scannedAt = -Infinity;
  private refreshedAt = -Infinity;

  constructor(root: string, o: RunsIndexOptions = {}) {
    this.root = path.resolve(root);
    this.rescanMs = o.rescanMs ?? 2000;
    this.minIntervalMs = o.minIntervalMs ?? 250;
  }

  /** Finds new run folders (when due) and reads what every run appended. */
  refresh(now = Date.now()): void {
    if (now - this.refreshedAt < this.minIntervalMs) return;
    this.refreshedAt = now;
    if (now - this.scannedAt >= this.rescanMs) {
      this.scannedAt = now;
      this.scan();
    }
    for (const run of this.runs.values()) run.refresh();
  }

  get(id: string): WatchedRun | undefined {
    return this.runs.get(id);
  }

  list(): WatchedRun[] {
    return [...this.runs.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  private scan(): void {
    const found = new Map<string, string>();
    const isRun = (dir: string) => isRunFolder(dir);
    if (isRun(this.root)) found.set(path.basename(this.root), this.root);
    else {
      for (const name of subfolders(this.root)) {
        const dir = path.join(this.root, name);
        if (isRun(dir)) found.set(name, dir);
        else for (const sub of subfolders(dir)) if (isRun(path.join(dir, sub))) found.set(`${name}/${sub}`, path.join(dir, sub));
      }
    }
    for (const id of [...this.runs.keys()]) if (!found.has(id)) this.runs.delete(id);
    for (const [id, dir] of found) if (!this.runs.has(id)) this.runs.set(id, new WatchedRun(id, dir));
  }
}

/** A run folder: config.json and metrics.jsonl, or (a run that is starting) a config.json with a "config" object. */
export function isRunFolder(dir: string): boolean {
  if (!fs.existsSync(runPath(dir, "config"))) return false;
  if (fs.existsSync(runPath(dir, "metrics"))) return true;
  try {
    const c = JSON.parse(fs.readFileSync(runPath(dir, "config"), "utf8"));
    return typeof c === "object" && c !== null && typeof c.config === "object" && c.config !== null; // not a model's config.json
  } catch {
    return false;
  }
}

function subfolders(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !SKIP.test(e.name))
      .map((e) => e.name);
  } catch {
    return [];
  }
}
