import { z } from "zod";
import { benchMain } from "../../../bench/bench.ts";
import { MODEL_KEYS } from "../../formats/model-keys.ts";
import { key } from "../../util/keys.ts";
import { defineVerb } from "../verb.ts";

// bench's --model names a shape to time, not a model to load: its own key, not MODEL_KEYS' (no --tokenizer)
const BENCH_FLAGS = {
  json: key(z.boolean(), false, "print one JSON object (ratios as *_ratio_vs_torch) on stdout; progress on stderr"),
  quick: key(z.boolean(), false, "fewer repetitions (3 after 1 warm-up instead of 7 after 2)"),
  model: key(
    z.string().min(1),
    "default",
    "shape (b): default (the default base model's shape, random weights), standin (the issue's stand-in), or a Hugging Face model folder",
    { hint: "default|standin|dir" },
  ),
  python: {
    ...MODEL_KEYS.python,
    about:
      "the Python with PyTorch for the reference (bench/torch_ref.py), the torch backend's worker and bench/hf_bench.py (default: $COLLOQUY_PYTHON, else python3)",
  },
  torch: key(z.boolean(), true, "run the PyTorch reference (--no-torch: colloquy only)"),
  backend: {
    ...MODEL_KEYS.backend,
    about: "cpu: colloquy's engine alone; torch: also each case through the torch backend (its worker), with its speed ÷ the engine's",
  },
  device: MODEL_KEYS.device,
  dtype: MODEL_KEYS.dtype,
};

export default defineVerb({
  name: "bench",
  description:
    "Speed of the engine against a PyTorch reference on the same shapes: training, sampling, scoring (tokens/s), and GEMM GFLOP/s.",
  keys: {},
  flags: BENCH_FLAGS,
  async run({ flags }) {
    await benchMain(flags);
  },
});
