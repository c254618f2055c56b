/**
 * `colloquy serve`: an OpenAI-compatible HTTP API over the base model and LoRA adapters, each adapter a model name.
 * The model is loaded in a worker thread (this file's `serveSetup`, also the worker's loader); this thread runs
 * the HTTP side. SIGINT/SIGTERM shut it down cleanly (exit 0).
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { resolveModelSource } from "../../formats/hub/resolve.ts";
import { loadTokenizerAt, requireTokenizer } from "../../formats/load-model.ts";
import { MODEL_KEYS, type ModelKeys, adapterKey } from "../../formats/model-keys.ts";
import { readPeftAdapter } from "../../formats/peft.ts";
import { agentAdapterName } from "../../run/names.ts";
import { FALLBACK_TEMPLATE_DOC } from "../../formats/chat-template.ts";
import type { ServeSetup, ServedModel } from "../../serve/engine.ts";
import { listen } from "../../serve/server.ts";
import { Service, type ServeLimits } from "../../serve/service.ts";
import { TokenizerThread } from "../../serve/tokenizer-thread.ts";
import { WorkerEngine } from "../../serve/worker-engine.ts";
import { isLoopback, parseAllowedHosts } from "../../util/allowed-hosts.ts";
import { UserError } from "../../util/errors.ts";
import { defaults, key } from "../../util/keys.ts";
import { EVAL_MODEL_KEYS, evalSetup } from "../eval-args.ts";
import { info } from "../output.ts";
import { defineVerb } from "../verb.ts";

export const SERVE_FLAGS = {
  adapter: adapterKey("serve this PEFT adapter as model NAME (NAME defaults to the folder's name)", "name=dir"),
  run: key(
    z.string().min(1).nullable(),
    null as string | null,
    `serve every agent adapter of this run (models ${agentAdapterName(0)}, ${agentAdapterName(1)}, …)`,
    { hint: "runs/<id>" },
  ),
  host: key(
    z.string().min(1),
    "127.0.0.1",
    "address to listen on; any but a loopback address (127.0.0.1, ::1, localhost) needs an API key",
    { hint: "addr" },
  ),
  apiKey: key(
    z.string().min(1).nullable(),
    null as string | null,
    "require 'Authorization: Bearer KEY' on /v1 (as vLLM's --api-key; default $COLLOQUY_API_KEY; --api-key-file keeps it off the command line)",
    { hint: "KEY" },
  ),
  apiKeyFile: key(z.string().min(1).nullable(), null as string | null, "read the API key from this file (its first line)", {
    hint: "file",
  }),
  allowedHosts: key(
    z.array(z.string().min(1)),
    [] as string[],
    "Host names to answer besides those of --host (a name, .domain for it and its subdomains, * for any); others get 421",
    { hint: "a,b", repeat: true },
  ),
  port: key(z.number().int().min(0).max(65535), 8000, "port; 0 = any free port", { hint: "P" }),
  maxBatch: key(z.number().int().positive(), 16, "most completions in one engine call, and in one request (prompts × n)", { hint: "N" }),
  maxQueue: key(z.number().int().nonnegative(), 64, "requests that may wait for the engine; more get 429", { hint: "N" }),
  maxBodyBytes: key(z.number().int().positive(), 1 << 20, "largest request body; larger gets 413", { hint: "B" }),
  maxPromptTokens: key(
    z.number().int().positive().nullable(),
    null as number | null,
    "longest prompt; longer gets 400 (default: the model's context)",
    { hint: "N" },
  ),
  seed: key(z.number().int(), 0, "seed of the server's generator, for requests without a seed", { hint: "S" }),
  grace: key(z.number().int().nonnegative(), 30, "seconds shutdown waits for the running batch", { hint: "S" }),
};

/** What the worker is told to load. */
/** The model keys (those not given take their defaults), and what is served besides the base model. */
export interface ServeOptions extends Partial<ModelKeys> {
  run: string | null;
  adapters: [name: string, dir: string][];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

/** `name=dir` or `dir` (the folder's name). */
export function parseAdapterFlag(v: string): [string, string] {
  const eq = v.indexOf("=");
  const [name, dir] = eq > 0 ? [v.slice(0, eq), v.slice(eq + 1)] : [path.basename(path.resolve(v)), v];
  if (!NAME.test(name))
    throw new UserError(
      "E_BAD_FLAG",
      `--adapter ${v}: "${name}" is not a usable model name`,
      "names are letters, digits and . _ : - (e.g. --adapter kind=runs/x/adapters/agent0)",
    );
  if (!dir) throw new UserError("E_BAD_FLAG", `--adapter ${v}: no folder after "="`);
  return [name, dir];
}

/**
 * The API key: --api-key, --api-key-file or $COLLOQUY_API_KEY (one of them), required unless the server listens on
 * loopback only.
 */
export function resolveApiKey(flags: { apiKey: string | null; apiKeyFile: string | null; host: string }, env = process.env): string | null {
  if (flags.apiKey !== null && flags.apiKeyFile !== null) throw new UserError("E_BAD_FLAG", "give --api-key or --api-key-file, not both");
  let key = flags.apiKey;
  if (flags.apiKeyFile !== null) {
    let text: string;
    try {
      text = fs.readFileSync(flags.apiKeyFile, "utf8");
    } catch (e) {
      throw new UserError(
        "E_NOT_FOUND",
        `--api-key-file ${flags.apiKeyFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    key = text.split(/\r?\n/)[0].trim();
    if (key === "")
      throw new UserError("E_BAD_FLAG", `--api-key-file ${flags.apiKeyFile}: the first line is empty`, "write the key on its first line");
  }
  if (key === null && env.COLLOQUY_API_KEY) key = env.COLLOQUY_API_KEY.trim() || null;
  if (key !== null && /\s/.test(key)) throw new UserError("E_BAD_FLAG", "the API key contains white space", "a bearer token is one word");
  if (key === null && !isLoopback(flags.host))
    throw new UserError(
      "E_NO_API_KEY",
      `--host ${flags.host} lets other machines connect, and no API key is set`,
      "set $COLLOQUY_API_KEY or give --api-key-file <file> (or --api-key <key>); clients send 'Authorization: Bearer <key>'",
    );
  return key;
}

/** Loads the base model and every adapter into one backend and names them (runs in the engine's worker). */
export async function serveSetup(o: ServeOptions): Promise<ServeSetup> {
  const setup = await evalSetup({ ...defaults(MODEL_KEYS), ...o });
  const tokenizer = requireTokenizer(setup.loaded);
  const models: ServedModel[] = setup.systems.map((s) => ({ id: s.name, adapter: s.adapter }));
  const taken = (id: string) => models.some((m) => m.id === id);
  for (const [name, dir] of o.adapters) {
    if (taken(name))
      throw new UserError("E_BAD_FLAG", `two models are named "${name}"`, "give each --adapter its own name: --adapter name=dir");
    await setup.backend.importAdapter(name, readPeftAdapter(await resolveModelSource(dir, "adapter"), setup.loaded.config));
    models.push({ id: name, adapter: name });
  }
  const alias = path.basename(setup.loaded.path).replace(/\.bin$/, "");
  if (NAME.test(alias) && !taken(alias)) models.splice(1, 0, { id: alias, adapter: null });
  return {
    backend: setup.backend,
    tokenizer,
    tokenizerPath: setup.loaded.tokenizerPath,
    models,
    contextLength: setup.loaded.config.maxSeqLen,
  };
}

export default defineVerb({
  name: "serve",
  description:
    "An OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions with streaming and logprobs) over the base " +
    'model (model "base", also its folder\'s name) and each adapter (one model name each). Chat uses the chat template of ' +
    `tokenizer_config.json; a model without one gets the plain fallback: ${FALLBACK_TEMPLATE_DOC}. ` +
    "Requests that arrive together run as one batch; SIGINT/SIGTERM stop it cleanly.",
  keys: EVAL_MODEL_KEYS,
  flags: SERVE_FLAGS,
  async run({ keys, flags }) {
    const options: ServeOptions = { ...keys, run: flags.run, adapters: flags.adapter.map(parseAdapterFlag) };
    const limits: Partial<ServeLimits> = {
      maxBatch: flags.maxBatch,
      maxQueue: flags.maxQueue,
      maxBodyBytes: flags.maxBodyBytes,
      maxPromptTokens: flags.maxPromptTokens ?? Number.MAX_SAFE_INTEGER,
    };
    const { port, host, seed } = flags;
    const graceMs = 1000 * flags.grace;
    const apiKey = resolveApiKey(flags);
    const allowedHosts = parseAllowedHosts(flags.allowedHosts);

    const onBug = (e: unknown) => info(`colloquy serve: internal error (a bug, please report it)\n${(e as Error)?.stack ?? String(e)}`);
    const engine = await WorkerEngine.start(import.meta.url, "serveSetup", options);
    let svc: Service;
    let server: Awaited<ReturnType<typeof listen>>;
    let prompts: TokenizerThread | null = null;
    try {
      const tokenizer = loadTokenizerAt(engine.tokenizerPath!, engine.info.vocabSize);
      prompts = await TokenizerThread.start(engine.tokenizerPath!, engine.info.vocabSize);
      svc = new Service(engine, tokenizer, limits, seed, prompts);
      if (svc.chat.warning) info(`colloquy serve: ${svc.chat.warning}`);
      server = await listen(svc, { host, port, graceMs, onBug, allowedHosts, apiKey });
    } catch (e) {
      await Promise.all([engine.close(), prompts?.close()]);
      const err = e as NodeJS.ErrnoException;
      if (err?.code === "EADDRINUSE")
        throw new UserError("E_PORT_IN_USE", `port ${port} on ${host} is in use`, "pick another --port, or --port 0 for any free one");
      if (err?.code === "EADDRNOTAVAIL" || err?.code === "ENOTFOUND")
        throw new UserError("E_BAD_FLAG", `cannot listen on ${host}`, "--host takes a local address such as 127.0.0.1 or 0.0.0.0");
      throw e;
    }
    const names = engine.info.models.map((m) => m.id).join(", ");
    info(
      `colloquy serve: listening on ${server.url}/v1 (models: ${names}; chat: ${svc.chat.kind === "template" ? "the model's template" : "plain fallback template"}; ${apiKey ? "API key required" : "no API key"})`,
    );

    // a bug that escapes every handler is logged, and the server keeps serving the other requests
    process.on("uncaughtException", onBug);
    process.on("unhandledRejection", onBug);
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (why: string, code: number) => {
        if (stopping) {
          info("colloquy serve: stopping now");
          process.exit(code || 130);
        }
        stopping = true;
        info(`colloquy serve: ${why}, shutting down`);
        process.exitCode = code;
        void server.close().then(() => {
          process.off("SIGINT", onInt);
          process.off("SIGTERM", onTerm);
          process.off("uncaughtException", onBug);
          process.off("unhandledRejection", onBug);
          info("colloquy serve: stopped");
          resolve();
        });
      };
      const onInt = () => stop("SIGINT", 0);
      const onTerm = () => stop("SIGTERM", 0);
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
      engine.onDeath = (e) => {
        info(`colloquy serve: the engine stopped: ${e.message}`);
        stop("engine failure", 1);
      };
      prompts!.onDeath = (e) => {
        info(`colloquy serve: the tokenizer stopped: ${e.message}`);
        stop("tokenizer failure", 1);
      };
    });
  },
});
