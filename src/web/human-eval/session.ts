/**
 * A rater's session: a cookie `colloquy_rater=<rater id>.<HMAC-SHA256 of it>` keyed by the database's session
 * secret, HttpOnly and SameSite=Strict. It holds no password and outlives a server restart, so a rater who reloads
 * the page after a crash carries on as themselves.
 */
import crypto from "node:crypto";

export const SESSION_COOKIE = "colloquy_rater";
const MAX_AGE_S = 30 * 24 * 3600;

function mac(secret: Buffer, raterId: number): string {
  return crypto.createHmac("sha256", secret).update(`rater:${raterId}`).digest("base64url");
}

export function sessionValue(secret: Buffer, raterId: number): string {
  return `${raterId}.${mac(secret, raterId)}`;
}

/** The rater id in a cookie value, or null when it is missing, malformed or not signed with this secret. */
export function verifySession(secret: Buffer, value: string | undefined): number | null {
  const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value ?? "");
  if (!m) return null;
  const id = Number(m[1]);
  const want = Buffer.from(mac(secret, id));
  const got = Buffer.from(m[2]);
  return want.length === got.length && crypto.timingSafeEqual(want, got) ? id : null;
}

export function sessionCookie(value: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${MAX_AGE_S}${secure ? "; Secure" : ""}`;
}

export function clearedCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}
