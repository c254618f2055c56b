/**
 * Listening on a port, and a clean shutdown: stop accepting connections, refuse new requests (503), let the
 * running batch finish (waiting requests get 503), let responses flush, close the connections and the engine.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { serve } from "@hono/node-server";
import { hostPolicy } from "../util/allowed-hosts.ts";
import { LOOP_SAMPLE_MS, createApp } from "./app.ts";
import type { Service } from "./service.ts";

export interface ListenOptions {
  host: string;
  port: number; // 0: any free port
  graceMs: number; // how long shutdown waits for the running batch before it gives up on it
  onBug?: (e: unknown) => void;
  allowedHosts?: readonly string[]; // Host names answered besides those of `host` (allowed-hosts.ts)
  apiKey?: string | null; // bearer key required on /v1
}

export interface RunningServer {
  url: string; // http://host:port (the API is under /v1)
  port: number;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export function listen(svc: Service, opts: ListenOptions): Promise<RunningServer> {
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
  loopDelay.enable();
  const app = createApp(svc, { onBug: opts.onBug, hosts: hostPolicy(opts.host, opts.allowedHosts), apiKey: opts.apiKey, loopDelay });
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: opts.host, port: opts.port }, (info: AddressInfo) => {
      server.off("error", onError);
      const host = info.address.includes(":") ? `[${info.address}]` : info.address;
      let closing: Promise<void> | null = null;
      resolve({
        url: `http://${host}:${info.port}`,
        port: info.port,
        close: () => (closing ??= shutdown(svc, server as Server, opts.graceMs).finally(() => loopDelay.disable())),
      });
    });
    const onError = (e: Error) => {
      loopDelay.disable();
      reject(e);
    };
    server.once("error", onError);
  });
}

async function shutdown(svc: Service, server: Server, graceMs: number): Promise<void> {
  svc.draining = true;
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeIdleConnections();
  await Promise.race([svc.queue.close(), sleep(graceMs)]);
  server.closeIdleConnections();
  await Promise.race([closed, sleep(1000)]); // responses of the last batch flush
  server.closeAllConnections();
  await closed;
  await Promise.all([svc.engine.close(), svc.prompts.close()]);
}
