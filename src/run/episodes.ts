/**
 * The environment a training config describes: its text source, the POMDP's settings, the agent slots (learner i
 * on adapter `agent<i>`, or `shared`), and the validation episodes. The trainer and `colloquy eval language` (which
 * re-runs a finished run's validation with adapters swapped) build them here, so both see the same episodes.
 */
import type { Backend } from "../engine/backend.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { type AgentSlot, type EpisodeRun, runEpisodes } from "../env/episode.ts";
import { makeSource } from "../env/sources/index.ts";
import type { TextSource } from "../env/sources/source.ts";
import { SHARED_ADAPTER_NAME, agentAdapterName } from "../run/names.ts";
import { Rng } from "../util/rng.ts";
import type { TrainConfig } from "./config.ts";

export function sourceFromConfig(c: TrainConfig): TextSource {
  return makeSource(c.source, { seed: c.seed, files: c.files });
}

export function slotsFromConfig(c: TrainConfig): AgentSlot[] {
  return c.agents.map((kind, i) => ({
    kind,
    adapter: kind === "learner" ? (c.sharedAdapter ? SHARED_ADAPTER_NAME : agentAdapterName(i)) : null,
  }));
}

export interface ValidationOptions {
  backend: Backend;
  tokenizer: Tokenizer;
  source: TextSource;
  config: TrainConfig;
  slots: readonly AgentSlot[]; // usually slotsFromConfig(config); another assignment of adapters to slots is allowed
  deliver: boolean;
  split?: "val" | "test"; // default val; test: the test worlds, which training never reads
  episodes?: number; // default the config's evalEpisodes
}

/**
 * The validation episodes: the same worlds and sampling seeds every time, so evaluations are comparable (and
 * an evaluation of the same adapters with the same config reproduces training's own validation exactly).
 */
export function validationEpisodes(o: ValidationOptions): Promise<EpisodeRun> {
  const c = o.config;
  const split = o.split ?? "val";
  return runEpisodes({
    backend: o.backend,
    tokenizer: o.tokenizer,
    source: o.source,
    split,
    slots: o.slots,
    episodes: o.episodes ?? c.evalEpisodes,
    env: c,
    rng: new Rng(split === "val" ? `${c.seed}/eval` : `${c.seed}/eval/${split}`),
    deliver: o.deliver,
  });
}
