/**
 * The HTTP API (hono): OpenAI's /v1/models, /v1/completions and /v1/chat/completions, and /health. Every error,
 * whatever its cause, leaves as an OpenAI-shaped body with a 4xx or 5xx status: bad JSON 400, unknown model 404,
 * a body over the size limit 413, a full queue 429, shutting down 503, a bug 500. The server stays up.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { chatCompletions } from "./chat.ts";
import { completions } from "./completions.ts";
import { ApiError, toApiError } from "./errors.ts";
import { parseJson } from "./schema.ts";
import type { Service } from "./service.ts";

export interface AppOptions {
  /** Called with every 5xx error that is a bug (the server logs it). */
  onBug?: (e: unknown) => void;
}

function errorResponse(c: Context, e: ApiError): Response {
  return c.json(e.body(), e.status as 400, e.status === 429 ? { "retry-after": "1" } : undefined);
}

export function createApp(svc: Service, opts: AppOptions = {}): Hono {
  const app = new Hono();

  app.onError((e, c) => {
    const err = toApiError(e);
    if (err.status >= 500 && err.code === "internal_error") opts.onBug?.(e);
    return errorResponse(c, err);
  });
  app.notFound((c) => errorResponse(c, new ApiError(404, `unknown request URL: ${c.req.method} ${c.req.path}`, { code: "unknown_url" })));

  app.get("/health", (c) =>
    c.json({ status: svc.draining ? "draining" : "ok", queued: svc.queue.queued, busy: svc.queue.busy, ...svc.queue.stats }),
  );

  const modelCard = (id: string) => ({
    id,
    object: "model",
    created: svc.created,
    owned_by: "colloquy",
    max_model_len: svc.engine.info.contextLength,
  });
  app.get("/v1/models", (c) => c.json({ object: "list", data: svc.modelList.map((m) => modelCard(m.id)) }));
  app.get("/v1/models/:id", (c) => c.json(modelCard(svc.model(c.req.param("id")).id)));

  const limit = bodyLimit({
    maxSize: svc.limits.maxBodyBytes,
    onError: (c) =>
      errorResponse(
        c,
        new ApiError(413, `the request body is larger than ${svc.limits.maxBodyBytes} bytes (--max-body-bytes)`, {
          code: "request_too_large",
        }),
      ),
  });
  const generation = (handler: (svc: Service, body: unknown, signal: AbortSignal) => Promise<Response>) => async (c: Context) => {
    if (svc.draining) throw new ApiError(503, "the server is shutting down", { code: "server_shutting_down" });
    const body = parseJson(await c.req.text());
    return handler(svc, body, c.req.raw.signal);
  };
  app.post("/v1/completions", limit, generation(completions));
  app.post("/v1/chat/completions", limit, generation(chatCompletions));

  return app;
}
