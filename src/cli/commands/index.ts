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

export const COMMANDS: Record<string, CommandDef<any>> = {
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
