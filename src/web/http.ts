/**
 * What every page and API response of the web app shares: strict security headers (a Content-Security-Policy that
 * allows no inline script or style, no framing, no sniffing), and errors as one JSON shape
 * `{"error": {"code", "message", "hint"}}` with a 4xx status, so that a page can show them as one line.
 */
import type { Context, MiddlewareHandler } from "hono";
import { UserError } from "../util/errors.ts";

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
  readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 503;
  readonly code: string;
  readonly hint: string | undefined;

  constructor(status: HttpError["status"], code: string, message: string, hint?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
  }
}

export function errorBody(code: string, message: string, hint?: string): { error: { code: string; message: string; hint?: string } } {
  return { error: { code, message, ...(hint ? { hint } : {}) } };
}

/** The app's onError: client errors as JSON; anything else is a bug (500, logged through `onBug`). */
export function handleError(e: unknown, c: Context, onBug?: (e: unknown) => void): Response {
  if (e instanceof HttpError) return c.json(errorBody(e.code, e.message, e.hint), e.status);
  if (e instanceof UserError) return c.json(errorBody(e.code, e.message, e.hint), 400);
  onBug?.(e);
  return c.json(errorBody("E_INTERNAL", "internal error (a bug; the server log has the details)"), 500);
}

/** Reads a JSON object body: application/json, at most `maxBytes`, valid JSON, an object. */
export async function readJsonObject(c: Context, maxBytes: number): Promise<Record<string, unknown>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type))
    throw new HttpError(415, "E_BAD_CONTENT_TYPE", `expected a JSON body (content-type application/json), got "${type || "none"}"`);
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > maxBytes)
    throw new HttpError(413, "E_TOO_LARGE", `the request body has ${declared} bytes; at most ${maxBytes} are accepted`);
  const text = await c.req.text();
  if (Buffer.byteLength(text) > maxBytes) throw new HttpError(413, "E_TOO_LARGE", `the request body is larger than ${maxBytes} bytes`);
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
