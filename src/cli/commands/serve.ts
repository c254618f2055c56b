/**
 * `colloquy serve`: an OpenAI-compatible HTTP API over the base model and LoRA adapters, each adapter a model name.
 * The model is loaded in a worker thread (this file's `serveSetup`, also the worker's loader); this thread runs
 * the HTTP side. SIGINT/SIGTERM shut it down cleanly (exit 0).
 */
import path from "node:path";
import { defineCommand } from "citty";
import { loadTokenizerAt, requireTokenizer } from "../../formats/load-model.ts";
import { loadPeftAdapter } from "../../formats/peft.ts";
import { FALLBACK_TEMPLATE_DOC } from "../../serve/chat-template.ts";
import type { ServeSetup, ServedModel } from "../../serve/engine.ts";
import { listen } from "../../serve/server.ts";
import { Service, type ServeLimits } from "../../serve/service.ts";
import { WorkerEngine } from "../../serve/worker-engine.ts";
import { UserError } from "../../util/errors.ts";
import { int, many, optStr, str } from "../args.ts";
import { evalModelArgs, evalSetup } from "../eval-args.ts";
import { info } from "../output.ts";

export const serveArgs = {
  model: evalModelArgs.model,
  tokenizer: evalModelArgs.tokenizer,
  adapter: { type: "string", description: "serve this PEFT adapter as model NAME (repeatable; NAME defaults to the folder's name)", valueHint: "name=dir" },
  run: { type: "string", description: "serve every agent adapter of this run (models agent0, agent1, …)", valueHint: "runs/<id>" },
  host: { type: "string", description: "address to listen on (default 127.0.0.1)", valueHint: "addr" },
  port: { type: "string", description: "port (default 8000; 0 = any free port)", valueHint: "P" },
  "max-batch": { type: "string", description: "most completions in one engine call, and in one request (prompts × n) (default 16)", valueHint: "N" },
  "max-queue": { type: "string", description: "requests that may wait for the engine; more get 429 (default 64)", valueHint: "N" },
  "max-body-bytes": { type: "string", description: "largest request body; larger gets 413 (default 1048576)", valueHint: "B" },
  "max-prompt-tokens": { type: "string", description: "longest prompt; longer gets 400 (default: the model's context)", valueHint: "N" },
  seed: { type: "string", description: "seed of the server's generator, for requests without a seed (default 0)", valueHint: "S" },
  grace: { type: "string", description: "seconds shutdown waits for the running batch (default 30)", valueHint: "S" },
} as const;

/** What the worker is told to load. */
export interface ServeOptions {
  model: string | null;
  tokenizer: string | null;
  run: string | null;
  adapters: [name: string, dir: string][];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

/** `name=dir` or `dir` (the folder's name). */
export function parseAdapterFlag(v: string): [string, string] {
  const eq = v.indexOf("=");
  const [name, dir] = eq > 0 ? [v.slice(0, eq), v.slice(eq + 1)] : [path.basename(path.resolve(v)), v];
  if (!NAME.test(name)) throw new UserError("E_BAD_FLAG", `--adapter ${v}: "${name}" is not a usable model name`, "names are letters, digits and . _ : - (e.g. --adapter kind=runs/x/adapters/agent0)");
  if (!dir) throw new UserError("E_BAD_FLAG", `--adapter ${v}: no folder after "="`);
  return [name, dir];
}

/** Loads the base model and every adapter into one backend and names them (runs in the engine's worker). */
export function serveSetup(o: ServeOptions): ServeSetup {
  const setup = evalSetup({ model: o.model ?? undefined, tokenizer: o.tokenizer ?? undefined, run: o.run ?? undefined });
  const tokenizer = requireTokenizer(setup.loaded);
  const models: ServedModel[] = setup.systems.map((s) => ({ id: s.name, adapter: s.adapter }));
  const taken = (id: string) => models.some((m) => m.id === id);
  for (const [name, dir] of o.adapters) {
    if (taken(name)) throw new UserError("E_BAD_FLAG", `two models are named "${name}"`, "give each --adapter its own name: --adapter name=dir");
    setup.backend.addAdapter(loadPeftAdapter(dir, setup.loaded.config, name));
    models.push({ id: name, adapter: name });
  }
  const alias = path.basename(setup.loaded.path).replace(/\.bin$/, "");
  if (NAME.test(alias) && !taken(alias)) models.splice(1, 0, { id: alias, adapter: null });
  return { backend: setup.backend, tokenizer, tokenizerPath: setup.loaded.tokenizerPath, models, contextLength: setup.loaded.config.maxSeqLen };
}

export default defineCommand({
  meta: {
    name: "serve",
    description: "An OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions with streaming and logprobs) over the base " +
      'model (model "base", also its folder\'s name) and each adapter (one model name each). Chat uses the chat template of ' +
      `tokenizer_config.json; a model without one gets the plain fallback: ${FALLBACK_TEMPLATE_DOC}. ` +
      "Requests that arrive together run as one batch; SIGINT/SIGTERM stop it cleanly.",
  },
  args: serveArgs,
  async run({ args, rawArgs }) {
    const options: ServeOptions = {
      model: optStr(args.model) ?? null, tokenizer: optStr(args.tokenizer) ?? null, run: optStr(args.run) ?? null,
      adapters: many(rawArgs, "adapter").map(parseAdapterFlag),
    };
    const limits: Partial<ServeLimits> = {
      maxBatch: int(args["max-batch"], "max-batch", 16, { min: 1 }),
      maxQueue: int(args["max-queue"], "max-queue", 64, { min: 0 }),
      maxBodyBytes: int(args["max-body-bytes"], "max-body-bytes", 1 << 20, { min: 1 }),
      maxPromptTokens: int(args["max-prompt-tokens"], "max-prompt-tokens", Number.MAX_SAFE_INTEGER, { min: 1 }),
    };
    const port = int(args.port, "port", 8000, { min: 0, max: 65535 });
    const host = str(args.host, "host", "127.0.0.1");
    const seed = int(args.seed, "seed", 0);
    const graceMs = 1000 * int(args.grace, "grace", 30, { min: 0 });

    const onBug = (e: unknown) => info(`colloquy serve: internal error (a bug, please report it)\n${(e as Error)?.stack ?? String(e)}`);
    const engine = await WorkerEngine.start(import.meta.url, "serveSetup", options);
    let svc: Service;
    let server: Awaited<ReturnType<typeof listen>>;
    try {
      const tokenizer = loadTokenizerAt(engine.tokenizerPath!, engine.info.vocabSize);
      svc = new Service(engine, tokenizer, limits, seed);
      if (svc.chat.warning) info(`colloquy serve: ${svc.chat.warning}`);
      server = await listen(svc, { host, port, graceMs, onBug });
    } catch (e) {
      await engine.close();
      const err = e as NodeJS.ErrnoException;
      if (err?.code === "EADDRINUSE") throw new UserError("E_PORT_IN_USE", `port ${port} on ${host} is in use`, "pick another --port, or --port 0 for any free one");
      if (err?.code === "EADDRNOTAVAIL" || err?.code === "ENOTFOUND") throw new UserError("E_BAD_FLAG", `cannot listen on ${host}`, "--host takes a local address such as 127.0.0.1 or 0.0.0.0");
      throw e;
    }
    const names = engine.info.models.map((m) => m.id).join(", ");
    info(`colloquy serve: listening on ${server.url}/v1 (models: ${names}; chat: ${svc.chat.kind === "template" ? "the model's template" : "plain fallback template"})`);

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
    });
  },
});
