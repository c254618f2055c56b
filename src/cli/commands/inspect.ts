import { defineCommand } from "citty";
import { tapeBytesPerTokenPerLayer } from "../../engine/block.ts";
import { describeConfig } from "../../engine/config.ts";
import { baseParamCount } from "../../engine/params.ts";
import { loadModel } from "../../formats/load-model.ts";
import { optStr, str } from "../args.ts";
import { info, printJson } from "../output.ts";

export const inspectArgs = {
  model: { type: "positional", description: "model: a Hugging Face folder or a llama2.c .bin file", required: true },
  tokenizer: { type: "string", description: "tokenizer file or folder (default: the model's own)" },
  json: { type: "boolean", description: "print one JSON object" },
} as const;

export default defineCommand({
  meta: { name: "inspect", description: "Show a model's architecture, parameter count, dtype, tokenizer and context length." },
  args: inspectArgs,
  run({ args }) {
    const m = loadModel(str(args.model, "model"), optStr(args.tokenizer));
    const c = m.config;
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
  },
});
