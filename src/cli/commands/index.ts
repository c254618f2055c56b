/** The registry of verbs: name → command. */
import type { CommandDef } from "citty";
import generate from "./generate.ts";
import finetune from "./finetune.ts";
import inspect from "./inspect.ts";
import pretrain from "./pretrain.ts";
import rollout from "./rollout.ts";
import train from "./train.ts";
import score from "./score.ts";

export const COMMANDS: Record<string, CommandDef<any>> = {
  inspect,
  generate,
  score,
  finetune,
  pretrain,
  rollout,
  train,
};
