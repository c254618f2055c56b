/**
 * The environment's settings (SYSTEM.md, "The POMDP, exactly"), defined once: type, bounds, default and meaning
 * of each key. `train` (whose schema extends this one), `rollout` and every verb that runs episodes read them
 * through this table, as config keys and as flags.
 */
import { z } from "zod";
import { UserError } from "../util/errors.ts";
import { type Values, defaults, key } from "../util/keys.ts";
import { AGENT_KINDS } from "./agents.ts";
import { SYSTEM_PROMPTS } from "./prompt.ts";
import { SOURCES } from "./sources/index.ts";

const agentKind = z
  .string()
  .refine((k) => AGENT_KINDS.includes(k), { error: (i) => `unknown agent kind "${String(i.input)}" (kinds: ${AGENT_KINDS.join(", ")})` });
const socialMode = z.string().superRefine((spec, ctx) => {
  try {
    parseSocial(spec);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
  }
});

export const ENV_KEYS = {
  agents: key(z.array(agentKind).min(2), ["learner", "learner", "learner"], `one kind per agent slot: ${AGENT_KINDS.join(", ")}`, {
    hint: "kinds",
  }),
  source: key(
    z.enum(Object.keys(SOURCES) as [string, ...string[]]),
    "facts",
    "text source: facts (a generated world), split (one document dealt out by paragraph), corpus (a stream per agent)",
    { alias: ["env"] },
  ),
  files: key(z.array(z.string()), [] as string[], "split / corpus: text or JSONL files (split default: the State of the Union addresses)", {
    repeat: true,
    hint: "a.txt,b.jsonl",
  }),
  rounds: key(z.number().int().positive(), 3, "T: rounds per episode", { hint: "T" }),
  window: key(
    z.number().int().nonnegative(),
    12,
    "tokens of the agent's own past excerpts the scorer sees before the state (0 = Markovian)",
    { hint: "W" },
  ),
  scorer: key(
    z.enum(["base", "self"]),
    "base",
    "which model scores: base (adapter off: states must be readable by the unchanged model) or self",
  ),
  reward: key(z.enum(["gain", "raw"]), "gain", "gain (information gain) or raw (log-likelihood with the state)"),
  social: key(
    z.union([socialMode, z.array(socialMode)]),
    "mixed:0.5+credit:1" as string | string[],
    "selfish | team | mixed:a, optionally +credit:b; or one per agent, comma-separated",
    { hint: "mode" },
  ),
  stateTokens: key(z.number().int().positive(), 48, "cap on a state's tokens"),
  messageTokens: key(z.number().int().positive(), 24, "cap on one message's tokens"),
  messagesPerRound: key(z.number().int().nonnegative(), 2, "M: messages per agent per round", { alias: ["messages"] }),
  systemPrompt: key(z.string(), "short", `${Object.keys(SYSTEM_PROMPTS).join(" | ")} | a template with {i} and {others}`),
  promptFormat: key(
    z.enum(["auto", "chat", "plain"]),
    "auto",
    "agent prompts: chat (the model's chat template: system prompt as the system turn, memory, excerpt and inbox as the user turn, STATE: opening the reply), plain (one text), or auto (chat when the tokenizer has a template)",
  ),
  temperature: key(
    z.number().positive(),
    0.7,
    "sampling temperature of the learners; the policy trained is softmax(logits / temperature), the sampler's, and KL is to the base model at the same temperature (top-k / top-p truncation is not part of it)",
    { hint: "T" },
  ),
  topK: key(z.number().int().nonnegative(), 0, "top-k sampling (0 = off)", { hint: "K" }),
  topP: key(z.number().gt(0).max(1), 1, "nucleus sampling mass (1 = off)", { hint: "P" }),
  violationPenalty: key(z.number().nonnegative(), 0.02, "reward subtracted per protocol violation of a completion"),
};

export type EnvConfig = Values<typeof ENV_KEYS>;

export const DEFAULT_ENV: EnvConfig = defaults(ENV_KEYS);

export interface SocialMode {
  own: number; // weight of the agent's own signal
  team: number; // weight of the mean over agents
  credit: number; // b: weight of the message value of the agent's messages
}

/** The social mode of each of `agents` agents (one mode for all, or one per agent). */
export function socialModes(spec: string | readonly string[], agents: number): SocialMode[] {
  if (typeof spec === "string") return Array.from({ length: agents }, () => parseSocial(spec));
  if (spec.length !== agents) throw new UserError("E_BAD_CONFIG", `social lists ${spec.length} modes for ${agents} agents`);
  return spec.map(parseSocial);
}

/** Parses "selfish", "team", "mixed:0.3", "credit:0.5", "team+credit:0.2". */
export function parseSocial(spec: string): SocialMode {
  const mode: SocialMode = { own: 1, team: 0, credit: 0 };
  const parts = spec.split("+").map((p) => p.trim());
  for (const part of parts) {
    const [name, arg] = part.split(":");
    const value = arg === undefined ? NaN : Number(arg);
    const needValue = () => {
      if (!Number.isFinite(value)) throw new UserError("E_BAD_CONFIG", `social mode "${part}" needs a number, e.g. ${name}:0.5`);
      return value;
    };
    if (name === "selfish" && arg === undefined) Object.assign(mode, { own: 1, team: 0 });
    else if (name === "team" && arg === undefined) Object.assign(mode, { own: 0, team: 1 });
    else if (name === "mixed") {
      const a = needValue();
      if (a < 0 || a > 1) throw new UserError("E_BAD_CONFIG", `social mode mixed:${a}: a must be in [0, 1]`);
      Object.assign(mode, { own: a, team: 1 - a });
    } else if (name === "credit") mode.credit = needValue();
    else
      throw new UserError(
        "E_BAD_CONFIG",
        `unknown social mode "${part}"`,
        "use selfish, team, mixed:a, credit:b or a combination like team+credit:0.5",
      );
  }
  return mode;
}
