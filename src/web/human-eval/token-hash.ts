/**
 * Raters' tokens at rest: scrypt from node:crypto (memory-hard, ~50 ms a guess here), a random salt per token, the
 * parameters kept in the string so that they can be raised later:
 *   scrypt$<N>$<r>$<p>$<salt, base64url>$<hash, base64url>
 * Databases written before scrypt (schema 1) held sha256(db salt, NUL, token) as 64 hex digits; opening one wraps
 * each such hash in scrypt at once (`scrypt-sha256$…`: scrypt of that hex string), so no fast hash stays on disk,
 * and a rater's next sign-in replaces it with a plain scrypt hash of the token (`rehash`).
 * Hashing runs on libuv's thread pool (crypto.scrypt), never on the event loop, except the one-off wrapping at open.
 */
import crypto from "node:crypto";

export const SCRYPT = { N: 1 << 14, r: 8, p: 1, keylen: 32 } as const;
const MAXMEM = 64 * 1024 * 1024;
const LEGACY = /^[0-9a-f]{64}$/;

interface Params {
  N: number;
  r: number;
  p: number;
}

function scryptAsync(secret: string, salt: Buffer, keylen: number, params: Params): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    crypto.scrypt(secret, salt, keylen, { ...params, maxmem: MAXMEM }, (e, key) => (e ? reject(e) : resolve(key))),
  );
}

function format(kind: string, params: Params, salt: Buffer, hash: Buffer): string {
  return `${kind}$${params.N}$${params.r}$${params.p}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

/** A new token's hash. */
export async function hashToken(token: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  return format("scrypt", SCRYPT, salt, await scryptAsync(token, salt, SCRYPT.keylen, SCRYPT));
}

/** Whether a stored hash is the old fast one (schema 1). */
export function isLegacyHash(stored: string): boolean {
  return LEGACY.test(stored);
}

/** An old sha256 hash wrapped in scrypt (synchronous: runs once per rater when an old database is opened). */
export function wrapLegacyHash(legacyHex: string): string {
  const salt = crypto.randomBytes(16);
  return format("scrypt-sha256", SCRYPT, salt, crypto.scryptSync(legacyHex, salt, SCRYPT.keylen, { ...SCRYPT, maxmem: MAXMEM }));
}

/**
 * Whether `token` matches `stored` (compared in constant time); `rehash` when the stored form is older than a plain
 * scrypt hash with today's parameters. `legacy(token)` is the old sha256 hex of a token (it needs the database's salt).
 */
export async function verifyToken(
  stored: string,
  token: string,
  legacy: (token: string) => string,
): Promise<{ ok: boolean; rehash: boolean }> {
  if (isLegacyHash(stored)) {
    const ok = crypto.timingSafeEqual(Buffer.from(legacy(token), "hex"), Buffer.from(stored, "hex"));
    return { ok, rehash: ok };
  }
  const parts = stored.split("$");
  const [kind, N, r, p, salt, hash] = parts;
  if (parts.length !== 6 || (kind !== "scrypt" && kind !== "scrypt-sha256")) return { ok: false, rehash: false };
  const params = { N: Number(N), r: Number(r), p: Number(p) };
  const want = Buffer.from(hash, "base64url");
  const got = await scryptAsync(kind === "scrypt" ? token : legacy(token), Buffer.from(salt, "base64url"), want.length, params);
  const ok = got.length === want.length && crypto.timingSafeEqual(got, want);
  const current = kind === "scrypt" && params.N === SCRYPT.N && params.r === SCRYPT.r && params.p === SCRYPT.p;
  return { ok, rehash: ok && !current };
}
