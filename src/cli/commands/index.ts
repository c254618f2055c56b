/** The registry of verbs: name → command. */
import type { CommandDef } from "citty";
import bench from "./bench.ts";
import dashboard from "./dashboard.ts";
import data from "./data/index.ts";
import evalCommand from "./eval/index.ts";
import generate from "./generate.ts";
import humanEval from "./human-eval/index.ts";
import finetune from "./finetune.ts";
import inspect from "./inspect.ts";
import pretrain from "./pretrain.ts";
import report from "./report.ts";
import rollout from "./rollout.ts";
import train from "./train.ts";
import score from "./score.ts";
import serve from "./serve.ts";

/**
 * Any command, whatever its flags: a plain citty command with its own args, or a verb of verb.ts. citty's
 * CommandDef<T> is invariant in T (its args are T, its setup/run/cleanup take the args parsed from T), so no one
 * CommandDef<T> takes them all; here the hooks are methods taking `unknown`, which every command's hooks match
 * (method parameters are compared both ways), while the whole stays a CommandDef for running.
 */
export type AnyCommand = Omit<CommandDef, "setup" | "cleanup" | "run"> & {
  setup?(context: unknown): unknown;
  cleanup?(context: unknown): unknown;
  run?(context: unknown): unknown;
};

export const COMMANDS: Record<string, AnyCommand> = {
  inspect,
  generate,
  score,
  finetune,
  pretrain,
  rollout,
  train,
  eval: evalCommand,
  report,
  serve,
  dashboard,
  "human-eval": humanEval,
  data,
  bench,
};
