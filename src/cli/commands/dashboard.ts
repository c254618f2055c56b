/**
 * `colloquy dashboard [runs/]`: a web page over a folder of run folders (or one run folder): the run list, live
 * curves of every metric, who talks to whom and the message-value matrix per iteration, and a transcript browser.
 * It follows running runs without a reload; SIGINT/SIGTERM stop it.
 */
import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import { hostPolicy, parseAllowedHosts } from "../../util/allowed-hosts.ts";
import { UserError } from "../../util/errors.ts";
import { createWebApp } from "../../web/app.ts";
import { RunsIndex } from "../../web/dashboard/runs.ts";
import { listenWeb, untilSignal } from "../../web/server.ts";
import { int, many, optStr, str } from "../args.ts";
import { info } from "../output.ts";

export const dashboardArgs = {
  runs: {
    type: "positional",
    description: "a folder of run folders, or one run folder (default runs/)",
    required: false,
    valueHint: "runs/",
  },
  port: { type: "string", description: "port (default 8080; 0 = any free port)", valueHint: "P" },
  host: {
    type: "string",
    description: "address to listen on (default 127.0.0.1; the page has no login: keep it local)",
    valueHint: "addr",
  },
  "allowed-hosts": {
    type: "string",
    description:
      "host names the server answers to besides those of --host (comma-separated; .example.com for a domain and its subdomains; * for any); other Host headers get 421",
    valueHint: "a,b",
  },
  "poll-ms": { type: "string", description: "how often live pages look for new lines, in milliseconds (default 1000)", valueHint: "ms" },
} as const;

export default defineCommand({
  meta: {
    name: "dashboard",
    description:
      "A web page over training runs: the run list (name, preset, status, iteration, best validation gain); curves of every " +
      "metric of metrics.jsonl, for one run or several overlaid, updated live while a run trains; who talks to whom and the " +
      "message-value matrix per iteration; and a transcript browser (filter by iteration, agent, round). Open the printed URL.",
  },
  args: dashboardArgs,
  async run({ args, rawArgs }) {
    const root = optStr(args.runs) ?? "runs";
    if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
      throw new UserError(
        "E_NOT_FOUND",
        `no folder ${root}`,
        "give the folder that holds run folders (colloquy train --out runs/<id>), or one run folder",
      );
    }
    const port = int(args.port, "port", 8080, { min: 0, max: 65535 });
    const host = str(args.host, "host", "127.0.0.1");
    const pollMs = int(args["poll-ms"], "poll-ms", 1000, { min: 50, max: 60_000 });
    const hosts = hostPolicy(host, parseAllowedHosts(many(rawArgs, "allowed-hosts")));
    const index = new RunsIndex(root);
    index.refresh();
    const streams = new AbortController();
    const onBug = (e: unknown) => info(`colloquy dashboard: internal error (a bug, please report it)\n${(e as Error)?.stack ?? String(e)}`);
    const app = createWebApp({ dashboard: { index, pollMs, signal: streams.signal }, hosts, onBug });
    const web = await listenWeb(app, { host, port, streams });
    const n = index.list().length;
    info(`colloquy dashboard: ${web.url}/dashboard (${n} run${n === 1 ? "" : "s"} under ${path.resolve(root)}; Ctrl-C stops)`);
    await untilSignal(web, "colloquy dashboard", info);
  },
});
