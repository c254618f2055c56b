/**
 * Listening on a port, and stopping: refuse new connections, end the live streams (their loops see the abort
 * signal), close every connection.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import { UserError } from "../util/errors.ts";

export interface RunningWeb {
  url: string; // http://host:port
  port: number;
  close(): Promise<void>;
}

export function listenWeb(app: Hono, o: { host: string; port: number; streams?: AbortController }): Promise<RunningWeb> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: o.host, port: o.port }, (info: AddressInfo) => {
      server.off("error", onError);
      const host = info.address.includes(":") ? `[${info.address}]` : info.address;
      let closing: Promise<void> | null = null;
      resolve({
        url: `http://${host}:${info.port}`,
        port: info.port,
        close: () =>
          (closing ??= new Promise<void>((done) => {
            o.streams?.abort();
            (server as Server).close(() => done());
            (server as Server).closeAllConnections();
          })),
      });
    });
    const onError = (e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE")
        reject(
          new UserError("E_PORT_IN_USE", `port ${o.port} on ${o.host} is in use`, "pick another --port, or --port 0 for any free one"),
        );
      else if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND")
        reject(new UserError("E_BAD_FLAG", `cannot listen on ${o.host}`, "--host takes a local address such as 127.0.0.1 or 0.0.0.0"));
      else reject(e);
    };
    server.once("error", onError);
  });
}

/** Waits for SIGINT or SIGTERM, then stops the server (a second signal exits at once). */
export function untilSignal(web: RunningWeb, name: string, log: (line: string) => void): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) process.exit(130);
      stopping = true;
      log(`${name}: ${sig}, stopping`);
      void web.close().then(() => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
        resolve();
      });
    };
    const onInt = () => stop("SIGINT");
    const onTerm = () => stop("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
  });
}
