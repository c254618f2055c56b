/**
 * A run's configuration: one flat object, nanoGPT style, made of the model's keys (formats/model-keys.ts), the
 * environment's (env/config.ts) and the training keys below. Values flow one way: these defaults → a preset
 * (configs/<name>.json) or a config file → `--key=value` flags, each checked against its key's schema (unknown
 * keys, wrong types and values out of bounds are one-line errors); the resolved config is saved with the run.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { SCRIPTED } from "../env/agents.ts";
import { ENV_KEYS } from "../env/config.ts";
import { MODEL_KEYS } from "../formats/model-keys.ts";
import { UserError } from "../util/errors.ts";
import { type Values, defaults, key, resolveKeys } from "../util/keys.ts";
import { TRACKER_NAMES, type TrackerName } from "./trackers.ts";

const LINEARS = ["q", "k", "v", "o", "gate", "up", "down"] as const;

/** Most episodes an iteration (episodes × group) or an evaluation may run: the batch is built whole before it runs. */
const MAX_EPISODES = 65536;

/** The training config's keys: the model's and the environment's (defined where they belong), then RL's own. */
export const TRAIN_KEYS = {
  ...MODEL_KEYS,
  // what is trained
  sharedAdapter: key(z.boolean(), false, "all learners share one adapter (and optimizer) instead of one each"),
  loraRank: key(z.number().int().positive(), 8, "LoRA rank of each adapter"),
  loraAlpha: key(z.number().positive(), 16, "LoRA alpha (scale alpha/rank)"),
  loraTargets: key(z.array(z.enum(LINEARS)).min(1), [...LINEARS] as (typeof LINEARS)[number][], "linear layers the adapters adapt"),
  // the environment (SYSTEM.md "The POMDP, exactly")
  ...ENV_KEYS,
  // batch
  iterations: key(z.number().int().nonnegative(), 60, "training iterations"),
  episodes: key(z.number().int().positive().max(MAX_EPISODES), 8, "distinct worlds per iteration"),
  group: key(z.number().int().positive().max(MAX_EPISODES), 4, "G: replicas of each world (RLOO / group baselines need G ≥ 2)"),
  // curriculum
  warmupIterations: key(
    z.number().int().nonnegative(),
    0,
    "curriculum: for the first N iterations each learner trains beside scripted warmupPartner agents standing in for the other learners (every world once per learner), then beside the other learners; validation always runs the configured agents",
  ),
  warmupPartner: key(
    z.enum(Object.keys(SCRIPTED) as [string, ...string[]]),
    "honest",
    "the scripted kind that stands in for the other learners during warm-up",
  ),
  // algorithm
  algorithm: key(z.enum(["reinforce", "a2c", "ppo"]), "reinforce", "reinforce | a2c | ppo"),
  baseline: key(z.enum(["none", "moving", "batch", "rloo", "group"]), "rloo", "REINFORCE's baseline"),
  baselineMomentum: key(z.number().min(0).max(1), 0.9, "moving average"),
  gamma: key(
    z.number().min(0).max(1),
    0,
    "discount across rounds (0: each round is credited with its own reward; a message's effect on the next round reaches its sender through the credit)",
  ),
  lambda: key(z.number().min(0).max(1), 0.95, "GAE (PPO)"),
  splitAdvantage: key(
    z.boolean(),
    true,
    "reinforce: message tokens are weighted by the advantage of what they can change (their credit, later rounds), state tokens by the whole reward's",
  ),
  whitenAdvantages: key(z.boolean(), true, "a2c / ppo: advantages to zero mean and unit std per adapter and batch"),
  lengthNorm: key(z.boolean(), true, "average a sample's log-probs over its tokens instead of summing them"),
  ppoClip: key(z.number().positive(), 0.2, "PPO ratio clip ε"),
  ppoEpochs: key(z.number().int().positive(), 2, "PPO epochs per iteration"),
  minibatches: key(z.number().int().positive(), 2, "PPO minibatches per epoch"),
  valueClip: key(
    z.number().nonnegative(),
    0.2,
    "PPO's clipped value loss: the value head takes a step on every minibatch of every epoch, kept within this of its rollout values (0 = off)",
  ),
  valueLr: key(z.number().positive(), 1e-2, "the value head's learning rate (A2C, PPO; the head is detached from the adapter)"),
  // regularisers
  klCoef: key(z.number().nonnegative(), 0.02, "β, initial β when adaptive"),
  klEstimator: key(
    z.enum(["k1", "k2", "k3"]),
    "k1",
    "the per-token KL measured (and, with klMode=reward, penalised): k1 (log ratio), k2 (½ log ratio², never negative) or k3 (never negative)",
  ),
  klMode: key(
    z.enum(["reward", "loss"]),
    "reward",
    "penalise the reward (Ziegler et al.) or add β·KL(π ‖ base) to the loss (differentiated as k2, whose gradient is the KL's, whatever klEstimator measures)",
  ),
  klTarget: key(z.number().positive().nullable(), null as number | null, "adaptive β aiming at this KL per token (null = fixed β)"),
  klHorizon: key(z.number().positive(), 2000, "adaptive controller's horizon, in samples"),
  entropyCoef: key(z.number().nonnegative(), 0, "entropy bonus per completion token"),
  sftCoef: key(z.number().nonnegative(), 0, "supervised cross-entropy on the agent's own excerpts"),
  // optimisation
  lr: key(z.number().positive(), 2e-3, "AdamW learning rate of the adapters"),
  weightDecay: key(z.number().nonnegative(), 0, "AdamW weight decay"),
  maxGradNorm: key(z.number().nonnegative(), 1, "0 = off"),
  // evaluation, logging, checkpoints
  evalEvery: key(z.number().int().nonnegative(), 30, "iterations between validation passes (0 = only first and last)"),
  evalEpisodes: key(z.number().int().positive().max(MAX_EPISODES), 256, "validation episodes per evaluation"),
  transcriptEpisodes: key(z.number().int().nonnegative(), 1, "episodes per iteration written to transcripts.jsonl"),
  log: key(z.array(z.enum(TRACKER_NAMES)), [] as TrackerName[], `trackers that also get every metrics line: ${TRACKER_NAMES.join(" | ")}`, {
    repeat: true,
    hint: TRACKER_NAMES.join("|"),
  }),
  hhData: key(
    z.string().min(1).nullable(),
    null as string | null,
    "after training: HH-RLHF preference accuracy of the base model and every agent on this file (as `colloquy eval hh --run`)",
    { hint: "file" },
  ),
  machiavelliData: key(
    z.string().min(1).nullable(),
    null as string | null,
    "after training: MACHIAVELLI choice scoring of the base model and every agent on these decision points (as `colloquy eval machiavelli --run`)",
    { hint: "file|dir" },
  ),
  finalEvalLimit: key(
    z.number().int().positive().nullable(),
    null as number | null,
    "after training: only the first N pairs or decision points",
    {
      hint: "N",
    },
  ),
  checkpointEvery: key(z.number().int().positive(), 1, "iterations between checkpoints"),
  seed: key(z.number().int(), 0, "seed of everything random in the run"),
};

export type TrainConfig = Values<typeof TRAIN_KEYS>;
export const DEFAULT_TRAIN: TrainConfig = defaults(TRAIN_KEYS);

export const PRESETS_DIR = path.resolve(import.meta.dirname, "../../configs");

export function listPresets(): string[] {
  return fs
    .readdirSync(PRESETS_DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -5))
    .sort();
}

export function presetFile(name: string): string {
  const file = path.join(PRESETS_DIR, `${name}.json`);
  if (!fs.existsSync(file)) throw new UserError("E_BAD_PRESET", `no preset named "${name}"`, `presets: ${listPresets().join(", ")}`);
  return file;
}

/** defaults → layers (a preset or config file, then flags), each key checked as it is merged. */
export function resolveConfig(layers: { values: Record<string, unknown>; where: string }[]): TrainConfig {
  return checkTrainConfig(resolveKeys(TRAIN_KEYS, layers));
}

/** `c`, once the bounds that join several keys hold (each key's own bounds are in its schema). */
export function checkTrainConfig(c: TrainConfig): TrainConfig {
  if (c.episodes * c.group > MAX_EPISODES) {
    throw new UserError(
      "E_BAD_VALUE",
      `episodes × group = ${c.episodes} × ${c.group} = ${c.episodes * c.group} episodes per iteration, more than ${MAX_EPISODES}`,
      "lower --episodes or --group",
    );
  }
  if (c.algorithm === "reinforce" && (c.baseline === "rloo" || c.baseline === "group") && c.group === 1) {
    throw new UserError(
      "E_BAD_VALUE",
      `baseline ${c.baseline} compares the one sample of a group with each other: with group 1 every advantage is 0 and nothing trains`,
      "give --group 2 or more, or --baseline batch|moving|none",
    );
  }
  return c;
}
