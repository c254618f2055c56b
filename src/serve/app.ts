/**
 * The HTTP API (hono): OpenAI's /v1/models, /v1/completions and /v1/chat/completions, and /health. Every error,
 * whatever its cause, leaves as an OpenAI-shaped body with a 4xx or 5xx status: a Host this server does not answer
 * to 421, a missing or wrong API key 401, bad JSON 400, unknown model 404, a body over the size limit 413 (found
 * while it streams in), a full queue 429, shutting down 503, a bug 500. A client that goes away mid-upload is no
 * bug (499, not logged). The server stays up.
 *
 * /health also reports the event loop's delay since the start (max, p99, mean): how long a request could have
 * waited for this thread at worst.
 *
 * Checks run in this order, each before any work that the next would cost: Host (every route), API key (/v1),
 * draining, the body's size, then the request itself.
 */
import crypto from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { IntervalHistogram } from "node:perf_hooks";
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { type HostPolicy, hostAllowed, hostPolicy } from "../util/allowed-hosts.ts";
import { BodyAborted, BodyTooLarge, readBody } from "../util/request-body.ts";
import { chatCompletions } from "./chat.ts";
import { completions } from "./completions.ts";
import { ApiError, toApiError } from "./errors.ts";
import { parseJson } from "./schema.ts";
import type { Service } from "./service.ts";

export interface AppOptions {
  /** Called with every 5xx error that is a bug (the server logs it). */
  onBug?: (e: unknown) => void;
  /** The Host names answered (default: those of a loopback address). */
  hosts?: HostPolicy;
  /** Requests to /v1 must carry `Authorization: Bearer <apiKey>` (null: no key). */
  apiKey?: string | null;
  /** The event loop's delay since the server started (perf_hooks.monitorEventLoopDelay, sampled every LOOP_SAMPLE_MS), reported by /health. */
  loopDelay?: IntervalHistogram;
}

/**
 * One step per turn of the event loop: each caller resolves in a later turn than the previous caller, after the
 * loop has polled for I/O in between. Requests that arrive together are then parsed and checked one per turn, so
 * that a burst of them cannot hold up the others (/health) for longer than one request's work.
 */
function turnTaker(): () => Promise<void> {
  let turns: Promise<void> = Promise.resolve();
  return () => {
    turns = turns.then(() => new Promise<void>((r) => setImmediate(r)));
    return turns;
  };
}

/** The sampling interval of the event loop's delay (ms). */
export const LOOP_SAMPLE_MS = 10;

function errorResponse(c: Context, e: ApiError): Response {
  const headers: Record<string, string> = {};
  if (e.status === 429) headers["retry-after"] = "1";
  if (e.status === 401) headers["www-authenticate"] = 'Bearer realm="colloquy"';
  return c.json(e.body(), e.status as 400, headers);
}

const digest = (s: string) => crypto.createHash("sha256").update(s).digest();

/** `Authorization: Bearer <key>`, compared in constant time (both sides hashed first, so lengths match too). */
function requireApiKey(apiKey: string): MiddlewareHandler {
  const want = digest(apiKey);
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) {
      throw new ApiError(
        401,
        "You didn't provide an API key: send the header 'Authorization: Bearer <key>' (the key colloquy serve was started with)",
        {
          code: "invalid_api_key",
        },
      );
    }
    if (!crypto.timingSafeEqual(digest(m[1]), want)) throw new ApiError(401, "Incorrect API key provided", { code: "invalid_api_key" });
    await next();
  };
}

export function createApp(svc: Service, opts: AppOptions = {}): Hono {
  const app = new Hono();
  const hosts = opts.hosts ?? hostPolicy("127.0.0.1");

  app.onError((e, c) => {
    const err = toApiError(e);
    if (err.status >= 500 && err.code === "internal_error") opts.onBug?.(e);
    return errorResponse(c, err);
  });
  app.notFound((c) => errorResponse(c, new ApiError(404, `unknown request URL: ${c.req.method} ${c.req.path}`, { code: "unknown_url" })));

  app.use("*", async (c, next) => {
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    if (!hostAllowed(hosts, host)) {
      throw new ApiError(
        421,
        `this server does not answer to the host name in the request (${JSON.stringify(host.slice(0, 100))}); if that name is meant to reach it, start colloquy serve with --allowed-hosts <name>`,
        { code: "host_not_allowed" },
      );
    }
    await next();
  });
  if (opts.apiKey) app.use("/v1/*", requireApiKey(opts.apiKey));

  // the histogram holds whole sampling intervals: the delay is what exceeds LOOP_SAMPLE_MS
  const ms = (ns: number) => Math.max(0, Math.round(ns / 1e4 - 100 * LOOP_SAMPLE_MS) / 100);
  app.get("/health", (c) => {
    const d = opts.loopDelay;
    return c.json({
      status: svc.draining ? "draining" : "ok",
      queued: svc.queue.queued,
      busy: svc.queue.busy,
      tokenizing: svc.prompts.pending,
      ...svc.queue.stats,
      ...(d ? { event_loop_delay_ms: { max: ms(d.max), p99: ms(d.percentile(99)), mean: ms(d.mean) } } : {}),
    });
  });

  const modelCard = (id: string) => ({
    id,
    object: "model",
    created: svc.created,
    owned_by: "colloquy",
    max_model_len: svc.engine.info.contextLength,
  });
  app.get("/v1/models", (c) => c.json({ object: "list", data: svc.modelList.map((m) => modelCard(m.id)) }));
  app.get("/v1/models/:id", (c) => c.json(modelCard(svc.model(c.req.param("id")).id)));

  const nextTurn = turnTaker();
  const readJson = async (c: Context): Promise<unknown> => {
    const max = svc.limits.maxBodyBytes;
    try {
      const bytes = await readBody(c.req.raw, max, (c.env as { incoming?: IncomingMessage } | undefined)?.incoming);
      await nextTurn(); // decoding, parsing and checking cost up to milliseconds a request: one request per turn
      return parseJson(new TextDecoder().decode(bytes));
    } catch (e) {
      if (e instanceof BodyTooLarge) throw new ApiError(413, `${e.message} (--max-body-bytes ${max})`, { code: "request_too_large" });
      if (e instanceof BodyAborted) throw new ApiError(499, e.message, { code: "client_closed_request" });
      throw e;
    }
  };
  const generation = (handler: (svc: Service, body: unknown, signal: AbortSignal) => Promise<Response>) => async (c: Context) => {
    if (svc.draining) throw new ApiError(503, "the server is shutting down", { code: "server_shutting_down" });
    const body = await readJson(c);
    return handler(svc, body, c.req.raw.signal);
  };
  app.post("/v1/completions", generation(completions));
  app.post("/v1/chat/completions", generation(chatCompletions));

  return app;
}
