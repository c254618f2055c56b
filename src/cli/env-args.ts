/**
 * Flags that set up the environment (`rollout`, and as config keys in `train`): text source, agents, and the
 * POMDP's knobs, with the defaults of env/config.ts.
 */
import { DEFAULT_ENV, type EnvConfig, parseSocial } from "../env/config.ts";
import { AGENT_KINDS } from "../env/agents.ts";
import type { AgentSlot } from "../env/episode.ts";
import { SYSTEM_PROMPTS } from "../env/prompt.ts";
import { SOURCES } from "../env/sources/index.ts";
import { UserError } from "../util/errors.ts";
import { int, many, num, optStr } from "./args.ts";

export const envArgs = {
  env: { type: "string", description: `text source: ${Object.keys(SOURCES).join(", ")} (default facts)`, valueHint: "name" },
  files: { type: "string", description: "split / corpus sources: text or JSONL files, comma-separated (split default: State of the Union)", valueHint: "a.txt,b.jsonl" },
  agents: { type: "string", description: `one kind per agent slot, comma-separated: ${AGENT_KINDS.join(", ")} (default learner,learner,learner)`, valueHint: "kinds" },
  rounds: { type: "string", description: `rounds per episode (default ${DEFAULT_ENV.rounds})`, valueHint: "T" },
  window: { type: "string", description: `tokens of past excerpts the scorer sees before the state (default ${DEFAULT_ENV.window})`, valueHint: "W" },
  scorer: { type: "string", description: "base (adapter off, default) or self", valueHint: "base|self" },
  reward: { type: "string", description: "gain (information gain, default) or raw", valueHint: "gain|raw" },
  social: { type: "string", description: `selfish, team, mixed:a, optionally +credit:b; or one per agent, comma-separated (default ${DEFAULT_ENV.social})`, valueHint: "mode" },
  "state-tokens": { type: "string", description: `cap on state tokens (default ${DEFAULT_ENV.stateTokens})` },
  "message-tokens": { type: "string", description: `cap on tokens per message (default ${DEFAULT_ENV.messageTokens})` },
  messages: { type: "string", description: `messages per agent per round (default ${DEFAULT_ENV.messagesPerRound})` },
  "system-prompt": { type: "string", description: `${Object.keys(SYSTEM_PROMPTS).join(" or ")} or a template with {i} and {others} (default ${DEFAULT_ENV.systemPrompt})` },
  temperature: { type: "string", description: `sampling temperature of learners (default ${DEFAULT_ENV.temperature})` },
  "top-k": { type: "string", description: "top-k sampling (default 0 = off)" },
  "top-p": { type: "string", description: "nucleus sampling (default 1 = off)" },
  "violation-penalty": { type: "string", description: `reward subtracted per protocol violation (default ${DEFAULT_ENV.violationPenalty})` },
} as const;

export function envConfigFrom(args: Record<string, unknown>): EnvConfig {
  const a = args as Record<string, string | undefined>;
  const scorer = optStr(a.scorer) ?? DEFAULT_ENV.scorer;
  if (scorer !== "base" && scorer !== "self") throw new UserError("E_BAD_FLAG", `--scorer must be base or self, got "${scorer}"`);
  const reward = optStr(a.reward) ?? DEFAULT_ENV.reward;
  if (reward !== "gain" && reward !== "raw") throw new UserError("E_BAD_FLAG", `--reward must be gain or raw, got "${reward}"`);
  const spec = optStr(a.social);
  const social = spec === undefined ? DEFAULT_ENV.social : spec.includes(",") ? spec.split(",").map((x) => x.trim()) : spec;
  for (const mode of ([] as string[]).concat(social)) parseSocial(mode);
  return {
    ...DEFAULT_ENV,
    rounds: int(a.rounds, "rounds", DEFAULT_ENV.rounds, { min: 1 }),
    window: int(a.window, "window", DEFAULT_ENV.window, { min: 0 }),
    scorer, reward, social,
    stateTokens: int(a["state-tokens"], "state-tokens", DEFAULT_ENV.stateTokens, { min: 1 }),
    messageTokens: int(a["message-tokens"], "message-tokens", DEFAULT_ENV.messageTokens, { min: 1 }),
    messagesPerRound: int(a.messages, "messages", DEFAULT_ENV.messagesPerRound, { min: 0 }),
    systemPrompt: optStr(a["system-prompt"]) ?? DEFAULT_ENV.systemPrompt,
    temperature: num(a.temperature, "temperature", DEFAULT_ENV.temperature, { min: 0 }),
    topK: int(a["top-k"], "top-k", DEFAULT_ENV.topK, { min: 0 }),
    topP: num(a["top-p"], "top-p", DEFAULT_ENV.topP, { min: 0, max: 1 }),
    violationPenalty: num(a["violation-penalty"], "violation-penalty", DEFAULT_ENV.violationPenalty, { min: 0 }),
  };
}

/** "honest,learner,liar" → slots; learner i uses the adapter named `agent<i>` when one was given for it. */
export function slotsFrom(spec: string, learnerAdapters: ReadonlySet<number>): AgentSlot[] {
  const kinds = spec.split(",").map((k) => k.trim());
  return kinds.map((kind, i) => {
    if (!AGENT_KINDS.includes(kind)) throw new UserError("E_BAD_FLAG", `--agents: unknown kind "${kind}" in slot ${i}`, `kinds: ${AGENT_KINDS.join(", ")}`);
    return { kind, adapter: kind === "learner" && learnerAdapters.has(i) ? `agent${i}` : null };
  });
}

/** `--files a.txt,b.jsonl`, given once or several times. */
export function fileList(rawArgs: readonly string[]): string[] {
  return many(rawArgs, "files").flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);
}
