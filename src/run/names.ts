/**
 * The names inside a run folder (SYSTEM.md, "Outputs of a run") and of its agents' adapters: the one place they
 * are written, for the trainer that writes a run and for everything that reads one (evaluation, report, web).
 */
import path from "node:path";

export const RUN_FILES = {
  config: "config.json", // the resolved config, seed and versions
  metrics: "metrics.jsonl", // one line per iteration (fixed fields; iteration 0 holds the initial evaluation)
  tb: "tb", // TensorBoard event files of the metrics lines (`--log tensorboard`)
  transcripts: "transcripts.jsonl", // sampled agent-rounds of each iteration
  adapters: "adapters", // adapters/<agent>/: PEFT adapters
  checkpoint: "checkpoint", // everything a resume needs
  checkpointState: path.join("checkpoint", "state.json"),
  summary: "summary.json", // the outcome
  eval: "eval", // eval/<kind>.json: results of `colloquy eval … --run`
  report: "report.html", // `colloquy report`
} as const;

export type RunFile = keyof typeof RUN_FILES;

/** A path inside run folder `dir`. */
export function runPath(dir: string, file: RunFile, ...more: string[]): string {
  return path.join(dir, RUN_FILES[file], ...more);
}

/** The adapter of learner slot i (and its folder under adapters/); all learners' when they share one. */
export function agentAdapterName(slot: number): string {
  return `agent${slot}`;
}

export const SHARED_ADAPTER_NAME = "shared";
