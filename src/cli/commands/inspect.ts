import { defineCommand } from "citty";
import { tapeBytesPerTokenPerLayer } from "../../engine/block.ts";
import { describeConfig } from "../../engine/config.ts";
import { baseParamCount } from "../../engine/params.ts";
import { resolveModelSource } from "../../formats/hub/resolve.ts";
import { loadModel } from "../../formats/load-model.ts";
import { DEFAULT_TRAIN } from "../../run/config.ts";
import { DEFAULT_TOKENS_PER_PASS, DTYPE_BYTES, type TorchDtype, formatBytes, runMemory } from "../../torch/memory.ts";
import { UserError } from "../../util/errors.ts";
import { int, optStr, str } from "../args.ts";
import { info, printJson } from "../output.ts";

export const inspectArgs = {
  model: {
    type: "positional",
    description: "model: a Hugging Face folder, a Hub id org/name[@revision] or a llama2.c .bin file",
    required: true,
  },
  tokenizer: { type: "string", description: "tokenizer file or folder (default: the model's own)" },
  json: { type: "boolean", description: "print one JSON object" },
  dtype: {
    type: "string",
    description: "memory: the torch backend's base weights on CUDA (default: both bfloat16 on CUDA and float32 on the CPU)",
    valueHint: "float32|bfloat16|float16",
  },
  agents: { type: "string", description: `memory: adapters trained at once (default ${learners()}, the default run's learners)` },
  loraRank: { type: "string", description: `memory: LoRA rank (default ${DEFAULT_TRAIN.loraRank}, train's)` },
  maxTokensPerPass: {
    type: "string",
    description: `memory: the torch worker's token budget of one forward (default ${DEFAULT_TOKENS_PER_PASS})`,
  },
} as const;

/** The default run's learners: one adapter each. */
function learners(): number {
  return DEFAULT_TRAIN.sharedAdapter ? 1 : DEFAULT_TRAIN.agents.filter((a) => a === "learner").length;
}

/** The run `--dtype` names, on CUDA; without it, the torch backend's defaults on CUDA and on the CPU. */
function memoryCases(dtype: string | undefined): { device: "cuda" | "cpu"; dtype: TorchDtype }[] {
  if (dtype === undefined)
    return [
      { device: "cuda", dtype: "bfloat16" },
      { device: "cpu", dtype: "float32" },
    ];
  if (!Object.hasOwn(DTYPE_BYTES, dtype)) throw new UserError("E_BAD_FLAG", `--dtype must be float32, bfloat16 or float16, got "${dtype}"`);
  return [{ device: "cuda", dtype: dtype as TorchDtype }];
}

export default defineCommand({
  meta: {
    name: "inspect",
    description:
      "Show a model's architecture, parameter count, dtype, tokenizer and context length, and the memory a torch-backend run needs per device.",
  },
  args: inspectArgs,
  async run({ args }) {
    const m = loadModel(await resolveModelSource(str(args.model, "model"), "model"), optStr(args.tokenizer));
    const c = m.config;
    const plan = {
      adapters: int(args.agents, "agents", learners(), { min: 1 }),
      loraRank: int(args.loraRank, "lora-rank", DEFAULT_TRAIN.loraRank, { min: 1 }),
      loraTargets: DEFAULT_TRAIN.loraTargets,
      maxTokensPerPass: int(args.maxTokensPerPass, "max-tokens-per-pass", DEFAULT_TOKENS_PER_PASS, { min: 1 }),
      training: true,
    };
    const rowTokens = Math.min(c.maxSeqLen, plan.maxTokensPerPass);
    // on CUDA the worker runs PyTorch 2's fused attention; the CPU case assumes the plain one (PyTorch 1.13, Debian's)
    const estimates = memoryCases(optStr(args.dtype)).map((k) => ({
      ...k,
      attention: k.device === "cuda" ? "fused" : "plain",
      ...runMemory(c, { ...plan, dtype: k.dtype, fusedAttention: k.device === "cuda" }),
    }));
    const report = {
      path: m.path,
      format: m.format,
      architecture: "LlamaForCausalLM",
      parameters: baseParamCount(c),
      dtype: m.dtype,
      context_length: c.maxSeqLen,
      // what a training forward keeps for backward, for rows as long as the context (attention grows with length)
      training_activation_bytes_per_token_per_layer: tapeBytesPerTokenPerLayer(c, c.maxSeqLen),
      config: c,
      tokenizer: m.tokenizer
        ? {
            kind: m.tokenizer.kind,
            path: m.tokenizerPath,
            vocab_size: m.tokenizer.vocabSize,
            bos_id: m.tokenizer.bosId,
            eos_id: m.tokenizer.eosId,
          }
        : null,
      // what a train run on the torch backend needs per device (src/torch/memory.ts), in bytes
      memory: {
        agents: plan.adapters,
        lora_rank: plan.loraRank,
        lora_targets: plan.loraTargets,
        max_tokens_per_pass: plan.maxTokensPerPass,
        row_tokens: rowTokens,
        estimates,
      },
    };
    if (args.json) return printJson(report);
    info(`${m.path} (${m.format === "hf" ? "Hugging Face" : "llama2.c"})`);
    console.log(`architecture  LlamaForCausalLM: ${describeConfig(c)}`);
    console.log(`parameters    ${report.parameters.toLocaleString("en-US")}`);
    console.log(`dtype         ${m.dtype} (computed in float32)`);
    console.log(`context       ${c.maxSeqLen} tokens`);
    console.log(`norm eps      ${c.normEps}`);
    const tape = report.training_activation_bytes_per_token_per_layer;
    console.log(
      `training      ${(tape / 1024).toFixed(1)} KiB of activations per token per layer at full context (${((tape * c.nLayers * c.maxSeqLen) / 2 ** 20).toFixed(1)} MiB per row)`,
    );
    console.log(
      `tokenizer     ${report.tokenizer ? `${report.tokenizer.kind}, ${report.tokenizer.vocab_size} tokens (${m.tokenizerPath})` : "none"}`,
    );
    console.log(
      `memory        per device, torch backend: ${plan.adapters} adapters (LoRA r${plan.loraRank}, AdamW), ` +
        `${plan.maxTokensPerPass} tokens per forward, rows up to ${rowTokens} tokens`,
    );
    for (const e of estimates) {
      console.log(
        `  ${`${e.device} ${e.dtype}`.padEnd(15)}${formatBytes(e.total)} = weights ${formatBytes(e.weights)} + adapters ${formatBytes(e.adapters)} + ` +
          `activations ${formatBytes(e.activations)} + workspace ${formatBytes(e.workspace)}`,
      );
    }
  },
});
