/**
 * Trackers: copies of the metrics line in formats other tools read (config key `log`, a list). Each one gets every
 * line the run appends to metrics.jsonl, as it is appended, and on a resume first forgets what it had written of
 * the iterations that metrics.jsonl drops, so that it always holds what metrics.jsonl holds. New trackers are
 * one more entry of TRACKERS.
 *
 * The scalars of a line (`scalarsOf`): every number but `iteration` (the step), under the field's name; a
 * per-agent array gives `<field>/agent<i>` (agent i = the i-th of the config's `agents`), a [sender][recipient]
 * matrix `<field>/agent<i>_to_agent<j>`; `val_` fields go under `val/` (`val/information_gain`); nulls are left out.
 */
import path from "node:path";
import { RUN_FILES } from "./names.ts";
import { EventFileWriter, truncateEventFiles } from "./tensorboard.ts";

export interface Tracker {
  /** One metrics line (a MetricsLine as appended to metrics.jsonl: its `iteration` is the step). */
  write(line: object): void;
}

export interface TrackerDef {
  about: string;
  /** Starts tracking run folder `runDir` from iteration `next` (0: a new run), dropping what it holds from there on. */
  open(runDir: string, next: number): Tracker;
}

export const TRACKERS = {
  tensorboard: {
    about: `TensorBoard event files in runs/<id>/${RUN_FILES.tb}/`,
    open(runDir, next) {
      const dir = path.join(runDir, RUN_FILES.tb);
      truncateEventFiles(dir, next);
      const writer = new EventFileWriter(dir);
      return { write: (line) => writer.write(Number((line as { iteration: number }).iteration), scalarsOf(line)) };
    },
  },
} satisfies Record<string, TrackerDef>;

export type TrackerName = keyof typeof TRACKERS;
export const TRACKER_NAMES = Object.keys(TRACKERS) as [TrackerName, ...TrackerName[]];

/** The trackers named (each once), started at iteration `next`. */
export function openTrackers(names: readonly TrackerName[], runDir: string, next: number): Tracker[] {
  return [...new Set(names)].map((n) => TRACKERS[n].open(runDir, next));
}

/** A metrics line's scalars as [tag, value] pairs, in the line's field order (see the header for the tags). */
export function scalarsOf(line: object): [string, number][] {
  const out: [string, number][] = [];
  const add = (tag: string, v: unknown) => {
    if (typeof v === "number" && Number.isFinite(v)) out.push([tag, v]);
  };
  for (const [field, v] of Object.entries(line)) {
    if (field === "iteration") continue;
    const tag = field.startsWith("val_") ? `val/${field.slice(4)}` : field;
    if (!Array.isArray(v)) add(tag, v);
    else
      v.forEach((x, i) => {
        if (Array.isArray(x)) x.forEach((y, j) => add(`${tag}/agent${i}_to_agent${j}`, y));
        else add(`${tag}/agent${i}`, x);
      });
  }
  return out;
}
