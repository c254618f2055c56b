/**
 * A rater's session cookie: `colloquy_rater=<32 random bytes, base64url>`, HttpOnly and SameSite=Strict. The
 * database keeps only the sha256 of that token, with the rater and an expiry (store.ts), so a session outlives a
 * server restart (a rater who reloads the page after a crash carries on as themselves), ends when the rater signs
 * out (the row is deleted: the old cookie is worth nothing), and expires after `--session-hours`.
 */
import crypto from "node:crypto";

export const SESSION_COOKIE = "colloquy_rater";
export const DEFAULT_SESSION_HOURS = 7 * 24;

/** A new session token (what the cookie holds). */
export function newSessionToken(): string {
  return crypto.randomBytes(32).toString("base64url");
}

/** Whether a cookie value has the shape of a session token (anything else is not even looked up). */
export function isSessionToken(value: string | undefined): value is string {
  return value !== undefined && /^[A-Za-z0-9_-]{43}$/.test(value);
}

/** What the database keeps of a token: its sha256 (the token is 256 random bits, so no slow hash is needed). */
export function sessionKey(token: string): string {
  return crypto.createHash("sha256").update(token).digest("hex");
}

export function sessionCookie(token: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(maxAgeS)}${secure ? "; Secure" : ""}`;
}

export function clearedCookie(secure = false): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? "; Secure" : ""}`;
}
