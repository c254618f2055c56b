/**
 * The environment's settings (SYSTEM.md, "The POMDP, exactly") with their defaults, and the social reward mode.
 */
import { UserError } from "../util/errors.ts";

export interface EnvConfig {
  rounds: number; // T
  window: number; // tokens of the agent's own past excerpts the scorer sees before the state (0 = Markovian)
  scorer: "base" | "self"; // which model scores: the base (adapter off) or the agent's adapter
  reward: "gain" | "raw"; // information gain (default) or the raw log-likelihood
  social: string | string[]; // "selfish" | "team" | "mixed:a", optionally "+credit:b" ("credit:b" alone = selfish + credit); or one per agent
  stateTokens: number; // cap on the state's tokens
  messageTokens: number; // cap on one message's tokens
  messagesPerRound: number; // M
  systemPrompt: string; // "short", "proposal", or a template with {i} and {others}
  temperature: number;
  topK: number;
  topP: number;
  oracle: boolean; // also score the oracle state (sources that know it)
  violationPenalty: number; // subtracted from an agent's reward per protocol violation of its completion
}

export const DEFAULT_ENV: EnvConfig = {
  rounds: 3,
  window: 12,
  scorer: "base",
  reward: "gain",
  social: "mixed:0.5+credit:1",
  stateTokens: 48,
  messageTokens: 24,
  messagesPerRound: 2,
  systemPrompt: "short",
  temperature: 0.7,
  topK: 0,
  topP: 1,
  oracle: true,
  violationPenalty: 0.02,
};

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
    else throw new UserError("E_BAD_CONFIG", `unknown social mode "${part}"`, "use selfish, team, mixed:a, credit:b or a combination like team+credit:0.5");
  }
  return mode;
}
