/**
 * `colloquy human-eval serve --pairs <file>`: the rating page. The pairs are added to the database (known ones are
 * checked to be unchanged); each answer is committed when submitted, so the server may be killed at any time and a
 * rater resumes where they stopped.
 */
import path from "node:path";
import { defineCommand } from "citty";
import { createWebApp } from "../../../web/app.ts";
import { hostPolicy, parseAllowedHosts } from "../../../util/allowed-hosts.ts";
import { readPairs } from "../../../web/human-eval/pairs.ts";
import { DEFAULT_SESSION_HOURS } from "../../../web/human-eval/session.ts";
import { EvalStore } from "../../../web/human-eval/store.ts";
import { listenWeb, untilSignal } from "../../../web/server.ts";
import { int, many, num, str } from "../../args.ts";
import { info } from "../../output.ts";

export const serveArgs = {
  pairs: {
    type: "string",
    description: "the comparisons: JSONL of {id, prompt, a: {system, response}, b: {system, response}} (human-eval make-pairs writes it)",
    valueHint: "file",
    required: true,
  },
  db: { type: "string", description: "SQLite database of raters and answers (default eval.sqlite; created if missing)", valueHint: "file" },
  port: { type: "string", description: "port (default 8081; 0 = any free port)", valueHint: "P" },
  host: { type: "string", description: "address to listen on (default 127.0.0.1; 0.0.0.0 lets other machines rate)", valueHint: "addr" },
  "allowed-hosts": {
    type: "string",
    description:
      "host names the server answers to besides those of --host (comma-separated; .example.com for a domain and its subdomains; * for any); other Host headers get 421",
    valueHint: "a,b",
  },
  "require-token": {
    type: "boolean",
    description:
      "raters must choose a token (a password-like word, stored only as a salted scrypt hash) next to their name; without one, a name can be continued only in the browser that signed up with it",
  },
  "session-hours": {
    type: "string",
    description: `how long a sign-in lasts, in hours (default ${DEFAULT_SESSION_HOURS}); signing out ends it at once`,
    valueHint: "h",
  },
} as const;

export default defineCommand({
  meta: {
    name: "serve",
    description:
      "The rating page: each rater signs in with a name (and, if they like, a token), then sees a prompt and two anonymous " +
      "responses in random left/right order and picks A, B or a tie, with an optional reason. Answers, with the rater, the time and " +
      "the hidden order, are committed to the SQLite database as they are given; a rater resumes where they stopped.",
  },
  args: serveArgs,
  async run({ args, rawArgs }) {
    const pairs = readPairs(str(args.pairs, "pairs"));
    const dbFile = str(args.db, "db", "eval.sqlite");
    const port = int(args.port, "port", 8081, { min: 0, max: 65535 });
    const host = str(args.host, "host", "127.0.0.1");
    const hosts = hostPolicy(host, parseAllowedHosts(many(rawArgs, "allowed-hosts")));
    const sessionHours = num(args["session-hours"], "session-hours", DEFAULT_SESSION_HOURS, { min: 0.01, max: 24 * 366 });
    const store = EvalStore.open(dbFile);
    try {
      const { added } = store.importPairs(pairs);
      const onBug = (e: unknown) =>
        info(`colloquy human-eval serve: internal error (a bug, please report it)\n${(e as Error)?.stack ?? String(e)}`);
      const app = createWebApp({
        humanEval: { store, served: pairs.map((p) => p.id), requireToken: Boolean(args["require-token"]), sessionHours },
        hosts,
        onBug,
      });
      const web = await listenWeb(app, { host, port });
      const c = store.counts();
      info(
        `colloquy human-eval serve: ${web.url}/eval (${pairs.length} comparisons, ${added} new; ${c.answers} answers by ${c.raters} raters so far in ${path.resolve(dbFile)}; Ctrl-C stops)`,
      );
      await untilSignal(web, "colloquy human-eval serve", info);
    } finally {
      store.close();
    }
  },
});
