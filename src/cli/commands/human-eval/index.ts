/** `colloquy human-eval <step>`: blinded pairwise comparison by people: make-pairs, serve, results. */
import { defineCommand } from "citty";
import type { AnyCommand } from "../index.ts";
import makePairs from "./make-pairs.ts";
import results from "./results.ts";
import serve from "./serve.ts";

export const HUMAN_EVAL_STEPS: Record<string, AnyCommand> = {
  "make-pairs": makePairs,
  serve,
  results,
};

export default defineCommand({
  meta: {
    name: "human-eval",
    description:
      "Blinded pairwise comparison by people: make-pairs (two systems answer the same prompts), serve (a web page where " +
      "raters pick the better of two anonymous responses; answers go to SQLite), results (win rates, Bradley–Terry, agreement, CSV).",
  },
  subCommands: HUMAN_EVAL_STEPS,
});
