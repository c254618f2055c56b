/**
 * The training configuration: one flat object, nanoGPT style. Values flow one way: these defaults → a preset
 * (configs/<name>.json) or a config file → `--key=value` overrides, each override keeping its default's type.
 * The schema rejects unknown keys and wrong types with one-line errors; the resolved config is saved with the run.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { DEFAULT_ENV } from "../env/config.ts";
import { UserError } from "../util/errors.ts";
import { readJsonFile } from "../util/fs.ts";

const LINEARS = ["q", "k", "v", "o", "gate", "up", "down"] as const;

export const TrainConfigSchema = z.strictObject({
  // what is trained
  model: z.string().nullable().describe("base model; null = the embedded default model (built on first use)"),
  tokenizer: z.string().nullable().describe("tokenizer of a llama2.c model"),
  agents: z.array(z.string()).min(2).describe("one kind per slot: learner, silent, honest, liar, random, echo"),
  sharedAdapter: z.boolean().describe("all learners share one adapter (and optimizer) instead of one each"),
  loraRank: z.number().int().positive().describe("LoRA rank of each adapter"),
  loraAlpha: z.number().positive().describe("LoRA alpha (scale alpha/rank)"),
  loraTargets: z.array(z.enum(LINEARS)).min(1).describe("linear layers the adapters adapt"),
  // the environment (SYSTEM.md "The POMDP, exactly")
  source: z.string().describe("facts | split | corpus"),
  files: z.array(z.string()).describe("split / corpus: text or JSONL files"),
  rounds: z.number().int().positive().describe("T"),
  window: z.number().int().nonnegative().describe("scorer's view of past excerpts, tokens"),
  scorer: z.enum(["base", "self"]).describe("base (adapter off: states must be readable by the unchanged model) or self"),
  reward: z.enum(["gain", "raw"]).describe("gain (information gain) or raw (log-likelihood with the state)"),
  social: z.union([z.string(), z.array(z.string())]).describe("selfish | team | mixed:a [+credit:b], or one per agent"),
  stateTokens: z.number().int().positive().describe("cap on a state's tokens"),
  messageTokens: z.number().int().positive().describe("cap on one message's tokens"),
  messagesPerRound: z.number().int().nonnegative().describe("M: messages per agent per round"),
  systemPrompt: z.string().describe("short | proposal | a template with {i} and {others}"),
  temperature: z.number().positive().describe("sampling temperature of the learners; the policy trained is softmax(logits / temperature), the sampler's, and KL is to the base model at the same temperature (top-k / top-p truncation is not part of it)"),
  topK: z.number().int().nonnegative().describe("top-k sampling (0 = off)"),
  topP: z.number().gt(0).max(1).describe("nucleus sampling (1 = off)"),
  violationPenalty: z.number().nonnegative().describe("reward subtracted per protocol violation"),
  // batch
  iterations: z.number().int().nonnegative().describe("training iterations"),
  episodes: z.number().int().positive().describe("distinct worlds per iteration"),
  group: z.number().int().positive().describe("G: replicas of each world (RLOO / group baselines need G ≥ 2)"),
  // algorithm
  algorithm: z.enum(["reinforce", "a2c", "ppo"]).describe("reinforce | a2c | ppo"),
  baseline: z.enum(["none", "moving", "batch", "rloo", "group"]).describe("REINFORCE's baseline"),
  baselineMomentum: z.number().min(0).max(1).describe("moving average"),
  gamma: z.number().min(0).max(1).describe("discount across rounds (0: each round is credited with its own reward; a message's effect on the next round reaches its sender through the credit)"),
  lambda: z.number().min(0).max(1).describe("GAE (PPO)"),
  splitAdvantage: z.boolean().describe("reinforce: message tokens are weighted by the advantage of what they can change (their credit, later rounds), state tokens by the whole reward's"),
  whitenAdvantages: z.boolean().describe("a2c / ppo: advantages to zero mean and unit std per adapter and batch"),
  lengthNorm: z.boolean().describe("average a sample's log-probs over its tokens instead of summing them"),
  ppoClip: z.number().positive().describe("PPO ratio clip ε"),
  ppoEpochs: z.number().int().positive().describe("PPO epochs per iteration"),
  minibatches: z.number().int().positive().describe("PPO minibatches per epoch"),
  valueClip: z.number().nonnegative().describe("PPO's clipped value loss (0 = off)"),
  valueLr: z.number().positive().describe("the value head's learning rate (A2C, PPO; the head is detached from the adapter)"),
  // regularisers
  klCoef: z.number().nonnegative().describe("β, initial β when adaptive"),
  klEstimator: z.enum(["k1", "k3"]).describe("k1 (log ratio) or k3 (never negative)"),
  klMode: z.enum(["reward", "loss"]).describe("penalise the reward (Ziegler et al.) or add β·KL to the loss"),
  klTarget: z.number().positive().nullable().describe("adaptive β aiming at this KL per token (null = fixed β)"),
  klHorizon: z.number().positive().describe("adaptive controller's horizon, in samples"),
  entropyCoef: z.number().nonnegative().describe("entropy bonus per completion token"),
  sftCoef: z.number().nonnegative().describe("supervised cross-entropy on the agent's own excerpts"),
  // optimisation
  lr: z.number().positive().describe("AdamW learning rate of the adapters"),
  weightDecay: z.number().nonnegative().describe("AdamW weight decay"),
  maxGradNorm: z.number().nonnegative().describe("0 = off"),
  // evaluation, logging, checkpoints
  evalEvery: z.number().int().nonnegative().describe("iterations between validation passes (0 = only first and last)"),
  evalEpisodes: z.number().int().positive().describe("validation episodes per evaluation"),
  transcriptEpisodes: z.number().int().nonnegative().describe("episodes per iteration written to transcripts.jsonl"),
  checkpointEvery: z.number().int().positive().describe("iterations between checkpoints"),
  seed: z.number().int().describe("seed of everything random in the run"),
});

export type TrainConfig = z.infer<typeof TrainConfigSchema>;

/** The environment's keys take their defaults from the environment's own (the trainer always scores the oracle). */
const { oracle: _alwaysOn, ...ENV_DEFAULTS } = DEFAULT_ENV;

export const DEFAULT_TRAIN: TrainConfig = {
  model: null,
  tokenizer: null,
  agents: ["learner", "learner", "learner"],
  sharedAdapter: false,
  loraRank: 8,
  loraAlpha: 16,
  loraTargets: ["q", "k", "v", "o", "gate", "up", "down"],
  source: "facts",
  files: [],
  ...ENV_DEFAULTS,
  iterations: 60,
  episodes: 8,
  group: 4,
  algorithm: "reinforce",
  baseline: "rloo",
  baselineMomentum: 0.9,
  gamma: 0,
  lambda: 0.95,
  splitAdvantage: true,
  whitenAdvantages: true,
  lengthNorm: true,
  ppoClip: 0.2,
  ppoEpochs: 2,
  minibatches: 2,
  valueClip: 0.2,
  valueLr: 1e-2,
  klCoef: 0.02,
  klEstimator: "k1",
  klMode: "reward",
  klTarget: null,
  klHorizon: 2000,
  entropyCoef: 0,
  sftCoef: 0,
  lr: 2e-3,
  weightDecay: 0,
  maxGradNorm: 1,
  evalEvery: 30,
  evalEpisodes: 256,
  transcriptEpisodes: 1,
  checkpointEvery: 1,
  seed: 0,
};

export const PRESETS_DIR = path.resolve(import.meta.dirname, "../../configs");

export function listPresets(): string[] {
  return fs.readdirSync(PRESETS_DIR).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)).sort();
}

/** A preset or config file's keys (its "description" is documentation, not config). */
export function readConfigFile(file: string): Record<string, unknown> {
  const raw = readJsonFile(file, "config file");
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new UserError("E_BAD_CONFIG", `${file}: a config is a JSON object`);
  const { description: _d, ...rest } = raw as Record<string, unknown>;
  return rest;
}

export function presetFile(name: string): string {
  const file = path.join(PRESETS_DIR, `${name}.json`);
  if (!fs.existsSync(file)) throw new UserError("E_BAD_PRESET", `no preset named "${name}"`, `presets: ${listPresets().join(", ")}`);
  return file;
}

const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Parses a `--key=value` override to the type of the key's default. */
export function parseOverride(key: string, value: string): [string, unknown] {
  const k = camel(key);
  if (!(k in DEFAULT_TRAIN)) {
    throw new UserError("E_UNKNOWN_KEY", `unknown config key "${key}"`, "see colloquy train --help for the keys, or configs/*.json");
  }
  const def = (DEFAULT_TRAIN as Record<string, unknown>)[k];
  const bad = (what: string) => new UserError("E_BAD_VALUE", `--${key}=${value}: expected ${what}`);
  if (typeof def === "number") {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) throw bad("a number");
    return [k, n];
  }
  if (typeof def === "boolean") {
    if (value !== "true" && value !== "false") throw bad("true or false");
    return [k, value === "true"];
  }
  if (Array.isArray(def)) return [k, value === "" ? [] : value.split(",").map((s) => s.trim())];
  if (def === null) {
    if (value === "null") return [k, null];
    const n = Number(value);
    return [k, value.trim() !== "" && Number.isFinite(n) && k !== "model" && k !== "tokenizer" ? n : value];
  }
  if (k === "social" && value.includes(",")) return [k, value.split(",").map((s) => s.trim())];
  return [k, value];
}

/** defaults → layers (preset or file first, then overrides) → validated config. */
export function resolveConfig(layers: Record<string, unknown>[]): TrainConfig {
  const merged: Record<string, unknown> = { ...DEFAULT_TRAIN };
  for (const layer of layers) Object.assign(merged, layer);
  const r = TrainConfigSchema.safeParse(merged);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length ? issue.path.join(".") : "config";
    const key = issue.code === "unrecognized_keys" ? ` ${(issue as { keys: string[] }).keys.join(", ")}` : "";
    throw new UserError("E_BAD_CONFIG", `${where}: ${issue.message}${key}`, "see colloquy train --help");
  }
  return r.data;
}
