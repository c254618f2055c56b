/**
 * The keys that say which model to load and where it runs, defined once for every verb that loads a model (as
 * flags) and for `train` (as config keys). Adapters are named per verb (a slot's, a served model's), so only their
 * type lives here.
 */
import { z } from "zod";
import { UserError } from "../util/errors.ts";
import { type KeyDef, type Values, key } from "../util/keys.ts";

export const MODEL_KEYS = {
  model: key(
    z.string().min(1).nullable(),
    null as string | null,
    "base model: a Hugging Face folder, a Hub id org/name[@revision] or a llama2.c .bin (default: the embedded default model, built on first use)",
    { hint: "path" },
  ),
  tokenizer: key(
    z.string().min(1).nullable(),
    null as string | null,
    "tokenizer: tokenizer.json or its folder (HF), tok*.bin (llama2.c); default: the model's own",
    { hint: "path" },
  ),
  backend: key(
    z.enum(["cpu", "torch"]),
    "cpu",
    "where the model runs: cpu (colloquy's own engine, in process) or torch (a PyTorch worker process)",
  ),
  device: key(
    z
      .string()
      .regex(/^(cpu|cuda(:\d+)?)$/, "expected cpu, cuda or cuda:N")
      .nullable(),
    null as string | null,
    "torch: cpu, cuda or cuda:N (default: cuda when PyTorch sees one, else cpu)",
    { hint: "cpu|cuda|cuda:N" },
  ),
  dtype: key(
    z.enum(["float32", "bfloat16", "float16"]).nullable(),
    null as "float32" | "bfloat16" | "float16" | null,
    "torch: the base weights' dtype (default: bfloat16 on CUDA, float32 on CPU); LoRA weights, gradients and optimizer state stay float32",
    { hint: "float32|bfloat16|float16" },
  ),
  python: key(
    z.string().min(1).nullable(),
    null as string | null,
    "torch: the Python interpreter with PyTorch (default: $COLLOQUY_PYTHON, else python3)",
    { hint: "path" },
  ),
  maxTokensPerPass: key(
    z.number().int().min(1),
    16384,
    "torch: tokens of one forward pass (rows × longest row); bounds activation memory, which `colloquy inspect` estimates",
    { hint: "N" },
  ),
  nproc: key(
    z.number().int().min(1).max(1024),
    1,
    "torch: worker processes on this machine, one torch.distributed group (gloo on CPU, NCCL and one GPU each on CUDA); rows are sharded, LoRA gradients summed",
    { hint: "N" },
  ),
  worker: key(
    z.string().min(1).nullable(),
    null as string | null,
    "torch: HOST:PORT of a worker group you started (rank 0 of `python -m colloquy_worker --listen HOST:PORT`, e.g. under torchrun) instead of starting one",
    { hint: "host:port" },
  ),
  tokenFile: key(
    z.string().min(1).nullable(),
    null as string | null,
    "torch: the file holding the --worker group's token (default: $COLLOQUY_WORKER_TOKEN; required off loopback)",
    { hint: "path" },
  ),
};

export type ModelKeys = Values<typeof MODEL_KEYS>;

/** The keys that only the torch backend reads, refused on the CPU engine rather than silently ignored. */
export function refuseTorchKeys(k: Partial<Pick<ModelKeys, "device" | "dtype" | "python" | "nproc" | "worker" | "tokenFile">>): void {
  const given: [string, unknown][] = [
    ["device", k.device],
    ["dtype", k.dtype],
    ["python", k.python],
    ["nproc", (k.nproc ?? 1) > 1 ? k.nproc : null],
    ["worker", k.worker],
    ["token-file", k.tokenFile],
  ];
  const found = given.find(([, v]) => v !== null && v !== undefined);
  if (found)
    throw new UserError(
      "E_BAD_FLAG",
      `--${found[0]} ${found[1]} is for the torch backend; the cpu backend (colloquy's engine) has no such setting`,
      "add --backend torch",
    );
}

/** A verb's adapter flag: PEFT LoRA adapter folders, repeatable; `about` says what the verb does with them. */
export function adapterKey(about: string, hint = "dir"): KeyDef<z.ZodArray<z.ZodString>> {
  return key(z.array(z.string().min(1)), [] as string[], about, { repeat: true, verbatim: true, hint });
}
