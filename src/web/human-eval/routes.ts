/**
 * The human evaluation's HTTP API (JSON in, JSON out; a rater is known by a signed session cookie).
 *   GET  /api/eval/session   who is signed in, and their progress
 *   POST /api/eval/login     {"name", "token"?}: sign in (a new name signs up; a token, if chosen, is needed again;
 *                            a name that signed up without one is taken: only its own session continues it)
 *   POST /api/eval/logout    ends the session (its cookie is worth nothing after)
 *   GET  /api/eval/next      the rater's next comparison: {"item": {"id", "prompt", "left", "right"} | null, "done", "total"}
 *                            (which system wrote which side is never sent)
 *   POST /api/eval/answer    {"item", "choice": "left" | "right" | "tie", "reason"?}: committed before the reply
 * Malformed requests get 4xx with `{"error": {"code", "message", "hint"}}`; POSTs from another origin get 403.
 * Failed sign-ins are throttled per client address and per name (429 with Retry-After). Names are NFC-normalised
 * and may hold no control, format (bidi overrides, zero-width) or separator characters.
 */
import type { IncomingMessage } from "node:http";
import type { Context, Hono } from "hono";
import { getCookie } from "hono/cookie";
import { HttpError, onlyKeys, readJsonObject } from "../http.ts";
import { DEFAULT_SESSION_HOURS, SESSION_COOKIE, clearedCookie, isSessionToken, sessionCookie } from "./session.ts";
import type { Choice, EvalStore, Rater } from "./store.ts";
import { FailureThrottle } from "./throttle.ts";

export interface HumanEvalOptions {
  store: EvalStore;
  served: readonly string[]; // ids of the comparisons this server asks about (the --pairs file)
  requireToken?: boolean; // raters must choose a token
  secureCookies?: boolean; // add Secure to the cookie (behind HTTPS)
  sessionHours?: number; // how long a session lasts (default DEFAULT_SESSION_HOURS)
}

export const LIMITS = { name: 64, token: 200, reason: 2000, body: 16 * 1024 } as const;
/** Failed sign-ins allowed per client address, and per rater name, in SIGN_IN_WINDOW_MS. */
export const SIGN_IN_FAILURES = 10;
export const SIGN_IN_WINDOW_MS = 15 * 60 * 1000;
const CHOICES: readonly Choice[] = ["left", "right", "tie"];
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Bidi embeddings, overrides and isolates: they reorder how the text around them is shown. */
const BIDI = /[\u202a-\u202e\u2066-\u2069]/;
/** In a name: any control, format (bidi marks, zero-width), surrogate, private-use or unassigned character, or a line/paragraph separator. */
const NOT_IN_NAME = /[\p{C}\u2028\u2029]/u;

function text(
  body: Record<string, unknown>,
  key: string,
  max: number,
  o: { required: boolean; multiline?: boolean; name?: boolean },
): string | null {
  const v = body[key];
  if (v === undefined || v === null) {
    if (o.required) throw new HttpError(400, "E_BAD_REQUEST", `"${key}" is required`);
    return null;
  }
  if (typeof v !== "string")
    throw new HttpError(400, "E_BAD_REQUEST", `"${key}" must be a string, got ${Array.isArray(v) ? "an array" : typeof v}`);
  const s = o.name ? v.normalize("NFC").trim() : v.trim();
  if (s.length > max) throw new HttpError(400, "E_BAD_REQUEST", `"${key}" is ${s.length} characters long; at most ${max} are accepted`);
  const control = o.multiline ? /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/ : CONTROL;
  if (control.test(s)) throw new HttpError(400, "E_BAD_REQUEST", `"${key}" contains control characters`);
  if (BIDI.test(s)) throw new HttpError(400, "E_BAD_REQUEST", `"${key}" contains bidirectional override characters`);
  if (o.name && NOT_IN_NAME.test(s))
    throw new HttpError(
      400,
      "E_BAD_REQUEST",
      `"${key}" contains invisible or formatting characters`,
      "use letters, digits, spaces and punctuation",
    );
  if (s === "") {
    if (o.required) throw new HttpError(400, "E_BAD_REQUEST", `"${key}" must not be empty`);
    return null;
  }
  return s;
}

/** POSTs must come from the page itself: a browser's Origin header, when present, names this host. */
function sameOrigin(c: Context): void {
  const origin = c.req.header("origin");
  if (!origin) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    throw new HttpError(403, "E_BAD_ORIGIN", "the request's Origin header is not a URL");
  }
  if (host !== c.req.header("host"))
    throw new HttpError(
      403,
      "E_BAD_ORIGIN",
      `requests from ${origin.slice(0, 100)} are not accepted`,
      "open the evaluation page from this server",
    );
}

/** The client's address (for throttling); "local" for requests made in process (tests). */
function clientAddress(c: Context): string {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket?.remoteAddress ?? "local";
}

export function mountHumanEval(app: Hono, o: HumanEvalOptions): void {
  const { store, served } = o;
  const ttlMs = (o.sessionHours ?? DEFAULT_SESSION_HOURS) * 3600 * 1000;
  const secure = Boolean(o.secureCookies);
  const throttle = new FailureThrottle(SIGN_IN_FAILURES, SIGN_IN_WINDOW_MS);

  const sessionToken = (c: Context): string | null => {
    const v = getCookie(c, SESSION_COOKIE);
    return isSessionToken(v) ? v : null;
  };
  const currentRater = (c: Context): Rater | null => {
    const token = sessionToken(c);
    return token === null ? null : store.sessionRater(token);
  };
  const requireRater = (c: Context): Rater => {
    const r = currentRater(c);
    if (!r) throw new HttpError(401, "E_NOT_SIGNED_IN", "sign in with your rater name first");
    return r;
  };

  app.get("/api/eval/session", (c) => {
    const r = currentRater(c);
    return c.json({
      rater: r ? { name: r.name } : null,
      require_token: Boolean(o.requireToken),
      ...(r ? store.progress(r.id, served) : { done: 0, total: served.length }),
    });
  });

  app.post("/api/eval/login", async (c) => {
    sameOrigin(c);
    const body = await readJsonObject(c, LIMITS.body);
    onlyKeys(body, ["name", "token"]);
    const name = text(body, "name", LIMITS.name, { required: true, name: true })!;
    const token = text(body, "token", LIMITS.token, { required: false });
    const keys = [`address:${clientAddress(c)}`, `name:${name}`];
    const wait = throttle.wait(keys);
    if (wait > 0) {
      const s = Math.ceil(wait / 1000);
      throw new HttpError(429, "E_TOO_MANY_ATTEMPTS", `too many failed sign-ins; try again in ${s} s`, undefined, {
        "Retry-After": String(s),
      });
    }
    const at = Date.now();
    throttle.attempt(keys, at);
    const r = await store.login(name, token, Boolean(o.requireToken));
    if (!r.ok) throw new HttpError(r.code === "E_NAME_TAKEN" ? 409 : 401, r.code, r.message);
    throttle.forgive(keys, at);
    c.header("Set-Cookie", sessionCookie(store.createSession(r.rater.id, ttlMs), ttlMs / 1000, secure));
    return c.json({ rater: { name: r.rater.name, created: r.created }, ...store.progress(r.rater.id, served) });
  });

  app.post("/api/eval/logout", (c) => {
    sameOrigin(c);
    const token = sessionToken(c);
    if (token !== null) store.endSession(token);
    c.header("Set-Cookie", clearedCookie(secure));
    return c.json({ ok: true });
  });

  app.get("/api/eval/next", (c) => {
    const r = requireRater(c);
    const shown = store.next(r.id, served);
    const progress = store.progress(r.id, served);
    if (!shown) return c.json({ item: null, ...progress });
    const { pair, leftIs } = shown;
    const [left, right] = leftIs === "a" ? [pair.a, pair.b] : [pair.b, pair.a];
    return c.json({ item: { id: pair.id, prompt: pair.prompt, left: left.response, right: right.response }, ...progress });
  });

  app.post("/api/eval/answer", async (c) => {
    sameOrigin(c);
    const r = requireRater(c);
    const body = await readJsonObject(c, LIMITS.body);
    onlyKeys(body, ["item", "choice", "reason"]);
    const item = text(body, "item", 200, { required: true })!;
    const choice = body.choice;
    if (typeof choice !== "string" || !CHOICES.includes(choice as Choice)) {
      throw new HttpError(
        400,
        "E_BAD_CHOICE",
        `"choice" must be one of ${CHOICES.map((x) => `"${x}"`).join(", ")}, got ${JSON.stringify(choice ?? null)?.slice(0, 40)}`,
        '"left" is response A, "right" is response B',
      );
    }
    const reason = text(body, "reason", LIMITS.reason, { required: false, multiline: true });
    const res = store.answer(r.id, item, choice as Choice, reason);
    if (!res.ok) throw new HttpError(res.code === "E_NO_ITEM" ? 404 : 409, res.code, res.message);
    return c.json({ ok: true, duplicate: res.duplicate, ...store.progress(r.id, served) });
  });
}
