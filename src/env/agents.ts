/**
 * Agent kinds. A `learner` is the model (with its adapter, if any); the scripted kinds let an experiment ask
 * whether learners learn to listen to helpful partners and to ignore or avoid bad ones:
 *   silent   writes an empty state and sends nothing
 *   honest   sends the facts it just learned, verbatim, to everyone
 *   liar     sends plausible but false versions of them (facts world: the value swapped) to everyone
 *   random   sends a random statement of the episode (true or false, anyone's) to a random agent
 *   echo     forwards every message it received to everyone, and keeps its excerpt as its state
 */
import type { Rng } from "../util/rng.ts";
import type { InboxEntry } from "./prompt.ts";
import type { Recipient } from "./protocol.ts";
import type { EpisodeText } from "./sources/source.ts";

export interface ScriptedContext {
  agent: number;
  agents: number;
  excerptIndex: number; // index of the excerpt read this round
  episode: EpisodeText;
  inbox: readonly InboxEntry[];
  rng: Rng;
}

export interface ScriptedAction {
  state: string;
  messages: { to: Recipient; text: string }[];
}

export type ScriptedPolicy = (c: ScriptedContext) => ScriptedAction;

export const SCRIPTED: Record<string, ScriptedPolicy> = {
  silent: () => ({ state: "", messages: [] }),
  honest: (c) => {
    const truths = c.episode.truths[c.agent][c.excerptIndex];
    return { state: truths.join(" "), messages: truths.map((text) => ({ to: "*" as const, text })) };
  },
  liar: (c) => {
    const truths = c.episode.truths[c.agent][c.excerptIndex];
    const lies = c.episode.lies[c.agent][c.excerptIndex];
    return { state: truths.join(" "), messages: lies.map((text) => ({ to: "*" as const, text })) };
  },
  random: (c) => {
    const pool = [...c.episode.truths, ...c.episode.lies].flatMap((perAgent) => perAgent.slice(0, c.excerptIndex + 1).flat());
    if (pool.length === 0) return { state: "", messages: [] };
    const others = Array.from({ length: c.agents }, (_, j) => j).filter((j) => j !== c.agent);
    return {
      state: c.rng.pick(pool),
      messages: others.length ? [{ to: c.rng.pick(others), text: c.rng.pick(pool) }] : [],
    };
  },
  echo: (c) => ({
    state: c.episode.streams[c.agent][c.excerptIndex],
    messages: c.inbox.map((m) => ({ to: "*" as const, text: m.text })),
  }),
};

export const AGENT_KINDS = ["learner", ...Object.keys(SCRIPTED)];
