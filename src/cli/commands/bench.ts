import { defineCommand } from "citty";
import { benchMain } from "../../../bench/bench.ts";
import { optStr } from "../args.ts";

export const benchArgs = {
  json: { type: "boolean", description: "print one JSON object (ratios as *_ratio_vs_torch) on stdout; progress on stderr" },
  quick: { type: "boolean", description: "fewer repetitions (3 after 1 warm-up instead of 7 after 2)" },
  model: { type: "string", description: "shape (b): default (the default base model's shape, random weights), standin (the issue's stand-in), or a Hugging Face model folder" },
  python: { type: "string", description: "python with torch for the reference (default /usr/bin/python3, Debian's python3-torch)" },
  torch: { type: "boolean", default: true, description: "run the PyTorch reference (--no-torch: colloquy only)" },
} as const;

export default defineCommand({
  meta: { name: "bench", description: "Speed of the engine against a PyTorch reference on the same shapes: training, sampling, scoring (tokens/s), and GEMM GFLOP/s." },
  args: benchArgs,
  async run({ args }) {
    await benchMain({
      json: Boolean(args.json),
      quick: Boolean(args.quick),
      model: optStr(args.model),
      python: optStr(args.python) ?? "/usr/bin/python3",
      torch: args.torch !== false,
    });
  },
});
