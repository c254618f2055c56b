/**
 * The evaluations a training config asks for at the end (`hhData`, `machiavelliData`): each runs as
 * `colloquy eval <kind> --run <dir> --data <file>` would, on the base model and every agent adapter of the run, on
 * the run's backend, and writes runs/<id>/eval/hh.json and eval/machiavelli-choices.json (which `colloquy report` reads).
 */
import fs from "node:fs";
import type { TrainConfig } from "../run/config.ts";
import { UserError } from "../util/errors.ts";
import { runVerbQuietly } from "./in-process.ts";

const FINAL_EVALS = {
  hh: { data: "hhData", file: "eval/hh.json", load: () => import("./commands/eval/hh.ts"), hint: "colloquy data download hh-rlhf" },
  machiavelli: {
    data: "machiavelliData",
    file: "eval/machiavelli-choices.json",
    load: () => import("./commands/eval/machiavelli.ts"),
    hint: "MACHIAVELLI decision points, .jsonl(.gz) or a folder of them",
  },
} as const;

/** The model keys an evaluation needs to run where training ran (its model is the run's, read from the run). */
const BACKEND_KEYS = ["tokenizer", "backend", "device", "dtype", "python", "maxTokensPerPass", "nproc", "worker", "tokenFile"] as const;

function planned(config: TrainConfig): [keyof typeof FINAL_EVALS, string][] {
  return (Object.keys(FINAL_EVALS) as (keyof typeof FINAL_EVALS)[]).flatMap((kind) => {
    const data = config[FINAL_EVALS[kind].data];
    return data ? [[kind, data] as [keyof typeof FINAL_EVALS, string]] : [];
  });
}

/** Before training: every data file the final evaluations will read exists (so a long run does not fail at its end). */
export function checkFinalEvals(config: TrainConfig): void {
  for (const [kind, data] of planned(config)) {
    if (!fs.existsSync(data))
      throw new UserError(
        "E_NOT_FOUND",
        `${FINAL_EVALS[kind].data} ${data} does not exist`,
        `${FINAL_EVALS[kind].hint}; or set it to null`,
      );
  }
}

/**
 * After training: the evaluations, one after the other (close the training backend first: each opens its own).
 * Their tables go to stderr, so that train's stdout stays its own (one JSON object with --json).
 */
/** Returns the files written, relative to the run folder. */
export async function runFinalEvals(runDir: string, config: TrainConfig, quiet: boolean): Promise<string[]> {
  const done: string[] = [];
  for (const [kind, data] of planned(config)) {
    const args = ["--run", runDir, "--data", data];
    if (config.finalEvalLimit !== null) args.push("--limit", String(config.finalEvalLimit));
    for (const k of BACKEND_KEYS) if (config[k] !== null) args.push(`--${k}`, String(config[k]));
    if (quiet) args.push("--quiet");
    await runVerbQuietly(FINAL_EVALS[kind].load, args);
    done.push(FINAL_EVALS[kind].file);
  }
  return done;
}
