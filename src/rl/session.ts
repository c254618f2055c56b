/**
 * A training run from start to summary: the rules for starting and resuming a run folder, the loop, and the
 * outcome written to summary.json (the validation gain before and after, and what message delivery is worth,
 * paired over the same validation episodes).
 */
import type { Backend, Placement } from "../engine/backend.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { UserError } from "../util/errors.ts";
import { kebab } from "../util/keys.ts";
import { mean, sampleSd } from "../util/stats.ts";
import { VERSION } from "../util/version.ts";
import { type TrainConfig, resolveConfig } from "../run/config.ts";
import { sourceFromConfig } from "../run/episodes.ts";
import { RunFolder } from "../run/folder.ts";
import { RUN_FILES } from "../run/names.ts";
import { openTrackers } from "../run/trackers.ts";
import type { Evaluation, MetricsLine } from "../run/metrics.ts";
import { Trainer } from "./trainer.ts";

/** Keys a resumed run may change: how far it goes, and where it runs (not what it computes). */
const RESUMABLE_KEYS = new Set(["iterations", "python", "nproc", "worker", "tokenFile", "maxTokensPerPass"]);

/** A new run folder holding the resolved config and where it came from. */
export function startRun(
  dir: string,
  config: TrainConfig,
  origin: { preset: string | null; configFile: string | null; flags: Record<string, string> },
): RunFolder {
  const run = new RunFolder(dir);
  run.create({
    config,
    preset: origin.preset,
    config_file: origin.configFile,
    overrides: origin.flags,
    versions: { colloquy: VERSION, node: process.version },
    created: new Date().toISOString(),
  });
  return run;
}

/**
 * An existing run folder and its saved config, with the changes a resume may make (`changes`: key → value).
 * A resume continues from the last checkpoint. Without a usable one, a run that has trained nothing yet (killed
 * before its first checkpoint) starts from the beginning, which loses nothing; one that holds results is refused,
 * since starting again would overwrite them, unless `restart` asks for exactly that: its results are removed
 * (`discarded` lists them) and it trains again from iteration 0 with its saved config.
 */
export function resumeRun(
  dir: string,
  changes: Record<string, unknown>,
  opts: { restart?: boolean } = {},
): { run: RunFolder; config: TrainConfig; discarded: string[] } {
  const run = new RunFolder(dir);
  const saved = run.trainConfig();
  const was = (k: string) => (saved as Record<string, unknown>)[k];
  for (const [k, v] of Object.entries(changes)) {
    if (!RESUMABLE_KEYS.has(k) && JSON.stringify(v) !== JSON.stringify(was(k)))
      throw new UserError(
        "E_BAD_FLAG",
        `--${kebab(k)} cannot change when resuming (only ${[...RESUMABLE_KEYS].map((r) => `--${kebab(r)}`).join(", ")} can)`,
        `the run has ${kebab(k)} ${JSON.stringify(was(k))}`,
      );
  }
  const config = resolveConfig([
    { values: saved, where: run.file(RUN_FILES.config) },
    { values: changes, where: "flags" },
  ]);
  const { files, lastIteration } = run.results();
  if (opts.restart) {
    run.discardResults();
    return { run, config, discarded: files };
  }
  if (!run.checkpointDir() && files.length > 0) {
    const trained = lastIteration > 0 ? ` (metrics up to iteration ${lastIteration})` : "";
    throw new UserError(
      "E_NO_CHECKPOINT",
      `${dir} has no usable checkpoint (${run.file(RUN_FILES.checkpointState)} or its adapters.safetensors is missing), so it cannot resume; starting again from iteration 0 would overwrite its ${files.join(", ")}${trained}`,
      `to start it over on purpose, add --restart (colloquy train --resume ${dir} --restart); or train a new run with --out`,
    );
  }
  return { run, config, discarded: [] };
}

export interface RunOptions {
  run: RunFolder;
  config: TrainConfig;
  backend: Backend;
  tokenizer: Tokenizer;
  modelPath: string;
  onLine?: (line: MetricsLine) => void;
  onStart?: (resumedAfter: number | null) => void;
  /** Called at the end with the episodes of the validations before and after training, when this process ran both. */
  onValidations?: (before: NonNullable<Trainer["validations"]["before"]>, after: NonNullable<Trainer["validations"]["after"]>) => void;
}

/** Trains from the run's last checkpoint (or from scratch) to `config.iterations`, evaluates, writes summary.json. */
export async function trainRun(o: RunOptions): Promise<RunSummary> {
  const { run, config } = o;
  const trainer = new Trainer({
    config,
    backend: o.backend,
    tokenizer: o.tokenizer,
    source: sourceFromConfig(config),
    run,
    modelPath: o.modelPath,
    onLine: o.onLine,
  });
  await trainer.init();
  const ckpt = run.checkpointDir();
  if (ckpt) await trainer.restore(ckpt);
  run.truncateLogs(ckpt ? trainer.iteration + 1 : 0);
  run.trackers = openTrackers(config.log, run.dir, ckpt ? trainer.iteration + 1 : 0);
  o.onStart?.(ckpt ? trainer.iteration : null);
  const t0 = performance.now();
  if (!ckpt) await trainer.initialEvaluation();
  while (trainer.iteration < config.iterations) await trainer.step();
  // the last iteration evaluated both ways; a resumed run that was already complete evaluates again (same numbers)
  const final = trainer.final?.on ?? (await trainer.evaluate(true));
  const noMessages = trainer.final?.off ?? (await trainer.evaluate(false));
  const trained = (run.readMetrics() as unknown as MetricsLine[]).filter((m) => m.reward !== null);
  const summary: RunSummary = {
    run: run.dir,
    iterations: trainer.iteration,
    algorithm: config.algorithm,
    agents: config.agents,
    model: o.modelPath,
    placement: o.backend.placement,
    val_information_gain_initial: trainer.initial?.learner_gain ?? null,
    val_information_gain_final: final.learner_gain,
    val_information_gain_final_no_messages: noMessages.learner_gain,
    val_message_effect: messageEffect(final, noMessages),
    val_message_effect_initial: trainer.initial && trainer.initialOff ? messageEffect(trainer.initial, trainer.initialOff) : null,
    val_oracle_gain: final.oracle_gain,
    val_information_gain_per_agent: final.information_gain,
    train_reward_first: trained[0]?.reward ?? null,
    train_reward_last: trained[trained.length - 1]?.reward ?? null,
    kl_last: trained[trained.length - 1]?.kl ?? null,
    seconds_this_session: (performance.now() - t0) / 1000,
    adapters: trainer.adapters.map((a) => run.file(RUN_FILES.adapters, a)),
  };
  run.writeSummary(summary);
  const { before, after } = trainer.validations;
  if (before && after) o.onValidations?.(before, after);
  return summary;
}

export interface MessageEffect {
  mean: number;
  se: number;
  episodes: number;
}

export interface RunSummary {
  run: string;
  iterations: number;
  algorithm: TrainConfig["algorithm"];
  agents: string[];
  model: string;
  placement: Placement; // where this session ran the model (config.json holds what was asked: null is a default)
  val_information_gain_initial: number | null;
  val_information_gain_final: number;
  val_information_gain_final_no_messages: number;
  val_message_effect: MessageEffect;
  val_message_effect_initial: MessageEffect | null;
  val_oracle_gain: number | null;
  val_information_gain_per_agent: number[];
  train_reward_first: number | null;
  train_reward_last: number | null;
  kl_last: number | null;
  seconds_this_session: number;
  adapters: string[];
}

/**
 * What delivery is worth: the mean over validation episodes of (gain with messages − gain without), and its
 * standard error. Both evaluations run the same episodes from the same sampling seeds, so the difference is paired.
 */
export function messageEffect(on: Evaluation, off: Evaluation): MessageEffect {
  const d = on.episode_gain.map((g, e) => g - off.episode_gain[e]);
  const m = d.length ? mean(d) : NaN;
  return { mean: m, se: d.length > 1 ? sampleSd(d, m) / Math.sqrt(d.length) : NaN, episodes: d.length };
}
