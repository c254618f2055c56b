/** `colloquy eval <kind>`: the registry of evaluations. Each kind lives in its own file. */
import { defineCommand } from "citty";
import type { AnyCommand } from "../index.ts";
import channel from "./channel.ts";
import hh from "./hh.ts";
import judge from "./judge.ts";
import language from "./language.ts";
import machiavelli from "./machiavelli.ts";

export const EVALS: Record<string, AnyCommand> = {
  hh,
  machiavelli,
  judge,
  language,
  channel,
};

export default defineCommand({
  meta: { name: "eval", description: "Evaluate a base model and agent adapters: hh, machiavelli, judge, language, channel." },
  subCommands: EVALS,
});
