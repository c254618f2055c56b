/**
 * What every page and API response of the web app shares: strict security headers (a Content-Security-Policy that
 * allows no inline script or style, no framing, no sniffing), the Host check (allowed-hosts.ts: a name the server
 * does not answer to gets 421, against DNS rebinding), a body limit enforced while the body streams in (on every
 * route), and errors as one JSON shape `{"error": {"code", "message", "hint"}}` with a 4xx status, so that a page
 * can show them as one line.
 */
import type { IncomingMessage } from "node:http";
import type { Context, MiddlewareHandler } from "hono";
import { type HostPolicy, hostAllowed } from "../util/allowed-hosts.ts";
import { UserError } from "../util/errors.ts";
import { BodyAborted, BodyTooLarge, readBody } from "../util/request-body.ts";

/** Scripts, styles, images and connections from this origin only; nothing inline, nothing embedded elsewhere. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  c.res.headers.set("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  c.res.headers.set("X-Content-Type-Options", "nosniff");
  c.res.headers.set("X-Frame-Options", "DENY");
  c.res.headers.set("Referrer-Policy", "no-referrer");
  c.res.headers.set("Cross-Origin-Opener-Policy", "same-origin");
  if (!c.res.headers.has("Cache-Control")) c.res.headers.set("Cache-Control", "no-store");
};

/** A request the client can fix: a status, a code (E_…), a one-line message and an optional hint. */
export class HttpError extends Error {
  readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 421 | 429 | 503;
  readonly code: string;
  readonly hint: string | undefined;

  readonly headers: Record<string, string>;

  constructor(status: HttpError["status"], code: string, message: string, hint?: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
    this.headers = headers;
  }
}

/** Refuses (421) a request whose Host header names a host this server does not answer to. */
export function checkHost(policy: HostPolicy, flag = "--allowed-hosts"): MiddlewareHandler {
  return async (c, next) => {
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    if (!hostAllowed(policy, host)) {
      throw new HttpError(
        421,
        "E_BAD_HOST",
        `this server does not answer to the host name in the request (${JSON.stringify(host.slice(0, 100))})`,
        `open it by the address it listens on, or start it with ${flag} <name>`,
      );
    }
    await next();
  };
}

/**
 * Reads the body of every request that may have one (not GET or HEAD), at most `maxBytes`, before any route runs:
 * a larger body is refused with 413 as soon as its Content-Length or its bytes pass the limit, and nothing over the
 * limit is ever held. Routes then read the buffered copy.
 */
export function limitBodies(maxBytes: number): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD" || !c.req.raw.body) return next();
    let body: Uint8Array;
    try {
      body = await readBody(c.req.raw, maxBytes, (c.env as { incoming?: IncomingMessage } | undefined)?.incoming);
    } catch (e) {
      if (e instanceof BodyTooLarge) throw new HttpError(413, "E_TOO_LARGE", e.message);
      if (e instanceof BodyAborted) throw new HttpError(400, "E_ABORTED", e.message);
      throw e;
    }
    c.req.raw = new Request(c.req.raw, { body });
    await next();
  };
}

export function errorBody(code: string, message: string, hint?: string): { error: { code: string; message: string; hint?: string } } {
  return { error: { code, message, ...(hint ? { hint } : {}) } };
}

/** The app's onError: client errors as JSON; anything else is a bug (500, logged through `onBug`). */
export function handleError(e: unknown, c: Context, onBug?: (e: unknown) => void): Response {
  if (e instanceof HttpError) return c.json(errorBody(e.code, e.message, e.hint), e.status, e.headers);
  if (e instanceof UserError) return c.json(errorBody(e.code, e.message, e.hint), 400);
  onBug?.(e);
  return c.json(errorBody("E_INTERNAL", "internal error (a bug; the server log has the details)"), 500);
}

/** Reads a JSON object body: application/json, at most `maxBytes` (enforced while it streams), valid JSON, an object. */
export async function readJsonObject(c: Context, maxBytes: number): Promise<Record<string, unknown>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type))
    throw new HttpError(415, "E_BAD_CONTENT_TYPE", `expected a JSON body (content-type application/json), got "${type || "none"}"`);
  let text: string;
  try {
    text = new TextDecoder().decode(await readBody(c.req.raw, maxBytes));
  } catch (e) {
    if (e instanceof BodyTooLarge) throw new HttpError(413, "E_TOO_LARGE", e.message);
    if (e instanceof BodyAborted) throw new HttpError(400, "E_ABORTED", e.message);
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, "E_BAD_JSON", `the request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new HttpError(400, "E_BAD_REQUEST", "the request body must be a JSON object");
  return value as Record<string, unknown>;
}

/** Rejects a body with keys other than `allowed` (a typo must not pass silently). */
export function onlyKeys(body: Record<string, unknown>, allowed: readonly string[]): void {
  const extra = Object.keys(body).filter((k) => !allowed.includes(k));
  if (extra.length)
    throw new HttpError(
      400,
      "E_BAD_REQUEST",
      `unknown field${extra.length > 1 ? "s" : ""} ${extra.map((k) => JSON.stringify(k)).join(", ")}`,
      `allowed: ${allowed.join(", ")}`,
    );
}
