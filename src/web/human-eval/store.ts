/**
 * The human evaluation's SQLite database (better-sqlite3): the comparisons, the raters (a name, and a scrypt hash
 * of their token if they chose one: never the token itself; token-hash.ts), their sessions (the sha256 of each
 * session cookie, with an expiry), what each rater was shown (the hidden left/right order, fixed the first time an
 * item is shown) and their answers. Every answer is one INSERT, committed (WAL, synchronous=FULL) before the
 * server replies, so a killed server loses nothing that a rater saw acknowledged. The file and its WAL are made
 * readable by their owner only (0600), and deleted rows are overwritten (secure_delete).
 *
 * Schema 2 (this file); a schema-1 database (sha256 token hashes, a cookie-signing secret) is migrated when it is
 * opened: each token hash is wrapped in scrypt, the secret is deleted (old cookies stop working: raters sign in
 * again), sessions move into the database.
 *
 * Each rater sees the items in their own order and each item with its own sides: both come from sha256 of the
 * database's random salt, the rater and the item, so they are unpredictable to raters, differ between raters and
 * stay the same across restarts (a rater resumes where they stopped).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { UserError } from "../../util/errors.ts";
import type { Pair } from "./pairs.ts";
import { newSessionToken, sessionKey } from "./session.ts";
import { hashToken, isLegacyHash, verifyToken, wrapLegacyHash } from "./token-hash.ts";

export type Choice = "left" | "right" | "tie"; // what the rater clicked: the response shown left (A), right (B), or a tie
export type Winner = "a" | "b" | "tie"; // the same in the pairs file's terms
export type SideName = "a" | "b";

export interface Rater {
  id: number;
  name: string;
  hasToken: boolean;
}

export interface ShownItem {
  pair: Pair;
  leftIs: SideName; // which of the pair's responses is on the left
  shownAt: string;
}

export interface AnswerRow {
  id: number;
  rater: string;
  item_id: string;
  prompt: string;
  a_system: string;
  b_system: string;
  choice: Choice;
  winner: Winner;
  left_is: SideName;
  reason: string | null;
  shown_at: string;
  answered_at: string;
}

export type LoginResult =
  | { ok: true; rater: Rater; created: boolean }
  | { ok: false; code: "E_BAD_TOKEN" | "E_TOKEN_REQUIRED" | "E_NAME_TAKEN"; message: string };
export type AnswerResult =
  | { ok: true; duplicate: boolean; winner: Winner }
  | { ok: false; code: "E_NO_ITEM" | "E_NOT_SHOWN" | "E_ALREADY_ANSWERED"; message: string };

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL, prompt TEXT NOT NULL,
  a_system TEXT NOT NULL, a_response TEXT NOT NULL, b_system TEXT NOT NULL, b_response TEXT NOT NULL,
  added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shown (
  rater_id INTEGER NOT NULL REFERENCES raters(id), item_id TEXT NOT NULL REFERENCES items(id),
  left_is TEXT NOT NULL CHECK (left_is IN ('a', 'b')), shown_at TEXT NOT NULL,
  PRIMARY KEY (rater_id, item_id));
CREATE TABLE IF NOT EXISTS answers (
  id INTEGER PRIMARY KEY, rater_id INTEGER NOT NULL REFERENCES raters(id), item_id TEXT NOT NULL REFERENCES items(id),
  choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie')),
  winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie')),
  left_is TEXT NOT NULL CHECK (left_is IN ('a', 'b')),
  reason TEXT, shown_at TEXT NOT NULL, answered_at TEXT NOT NULL,
  UNIQUE (rater_id, item_id));
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, rater_id INTEGER NOT NULL REFERENCES raters(id), created_at TEXT NOT NULL,
  expires_ms INTEGER NOT NULL);
`;

const SCHEMA_VERSION = "2";

/** Makes the database and its WAL and shared-memory files private to their owner (where this user may). */
function restrictMode(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      fs.chmodSync(f, 0o600);
    } catch {
      // absent, or owned by someone else
    }
  }
}

export function winnerOf(choice: Choice, leftIs: SideName): Winner {
  if (choice === "tie") return "tie";
  const rightIs: SideName = leftIs === "a" ? "b" : "a";
  return choice === "left" ? leftIs : rightIs;
}

export class EvalStore {
  readonly file: string;
  readonly db: Database.Database;
  private readonly salt: string;
  private orders = new Map<number, string[]>(); // rater → the served items in their order

  private constructor(file: string, db: Database.Database) {
    this.file = file;
    this.db = db;
    const get = (key: string) => (db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as { value: string } | undefined)?.value;
    const version = get("schema_version");
    if (version !== undefined && version !== "1" && version !== SCHEMA_VERSION) {
      throw new UserError("E_BAD_DB", `${file} has schema version ${version}; this colloquy reads versions 1 and ${SCHEMA_VERSION}`);
    }
    const put = db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)");
    db.transaction(() => {
      put.run("schema_version", SCHEMA_VERSION);
      put.run("salt", crypto.randomBytes(16).toString("hex"));
      put.run("created_at", new Date().toISOString());
    })();
    this.salt = get("salt")!;
    if (version === "1") this.migrateFrom1();
    db.prepare("DELETE FROM sessions WHERE expires_ms <= ?").run(Date.now());
  }

  /** Schema 1 → 2: sha256 token hashes wrapped in scrypt, the cookie secret deleted (and overwritten on disk). */
  private migrateFrom1(): void {
    const legacy = this.db.prepare("SELECT id, token_hash FROM raters WHERE token_hash IS NOT NULL").all() as {
      id: number;
      token_hash: string;
    }[];
    const update = this.db.prepare("UPDATE raters SET token_hash = ? WHERE id = ?");
    this.db.transaction(() => {
      for (const r of legacy) if (isLegacyHash(r.token_hash)) update.run(wrapLegacyHash(r.token_hash), r.id);
      this.db.prepare("DELETE FROM meta WHERE key = 'session_secret'").run();
      this.db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(SCHEMA_VERSION);
    })();
    this.db.pragma("wal_checkpoint(TRUNCATE)");
  }

  /** Opens (or creates) the database; `mustExist` for reports, which must not create one. */
  static open(file: string, o: { mustExist?: boolean } = {}): EvalStore {
    if (o.mustExist && !fs.existsSync(file))
      throw new UserError("E_NOT_FOUND", `no evaluation database at ${file}`, "colloquy human-eval serve --db <file> creates it");
    if (!o.mustExist) {
      fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
      if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, "a", 0o600)); // private from its first byte
    }
    restrictMode(file);
    let db: Database.Database;
    try {
      db = new Database(file, { fileMustExist: Boolean(o.mustExist) });
      db.pragma("secure_delete = ON");
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      db.pragma("busy_timeout = 5000");
      db.exec(SCHEMA);
    } catch (e) {
      throw new UserError(
        "E_BAD_DB",
        `${file} is not a usable SQLite database: ${(e as Error).message}`,
        "give another --db, or remove the file",
      );
    }
    restrictMode(file);
    return new EvalStore(file, db);
  }

  close(): void {
    this.db.close();
  }

  /** Adds the pairs that are new; a known id with different content is an error (its answers would change meaning). */
  importPairs(pairs: readonly Pair[], now = new Date().toISOString()): { added: number; known: number } {
    const find = this.db.prepare("SELECT prompt, a_system, a_response, b_system, b_response FROM items WHERE id = ?");
    const insert = this.db.prepare(
      "INSERT INTO items (id, seq, prompt, a_system, a_response, b_system, b_response, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const next = (this.db.prepare("SELECT COALESCE(MAX(seq), -1) + 1 AS n FROM items").get() as { n: number }).n;
    let added = 0,
      known = 0;
    this.db.transaction(() => {
      for (const p of pairs) {
        const old = find.get(p.id) as
          | { prompt: string; a_system: string; a_response: string; b_system: string; b_response: string }
          | undefined;
        if (old) {
          if (
            old.prompt !== p.prompt ||
            old.a_system !== p.a.system ||
            old.a_response !== p.a.response ||
            old.b_system !== p.b.system ||
            old.b_response !== p.b.response
          ) {
            throw new UserError(
              "E_PAIRS_CONFLICT",
              `comparison "${p.id}" is already in ${this.file} with other content`,
              "give changed comparisons new ids, or use another --db",
            );
          }
          known++;
        } else {
          insert.run(p.id, next + added, p.prompt, p.a.system, p.a.response, p.b.system, p.b.response, now);
          added++;
        }
      }
    })();
    this.orders.clear();
    return { added, known };
  }

  /** The schema-1 hash of a token (sha256 with this database's salt), to check hashes written before scrypt. */
  private legacyHash(token: string): string {
    return crypto.createHash("sha256").update(`${this.salt}\0${token}`).digest("hex");
  }

  /**
   * Signs in a rater by name, creating them on first use. A rater who chose a token must give it again; one who
   * did not can continue only through their own session (store.sessionRater), never by name: anyone could type it.
   */
  async login(name: string, token: string | null, requireToken = false, now = new Date().toISOString()): Promise<LoginResult> {
    const find = () =>
      this.db.prepare("SELECT id, name, token_hash FROM raters WHERE name = ?").get(name) as
        | { id: number; name: string; token_hash: string | null }
        | undefined;
    const row = find();
    if (!row) {
      if (requireToken && !token)
        return { ok: false, code: "E_TOKEN_REQUIRED", message: "this evaluation needs a token next to your name" };
      const hash = token ? await hashToken(token) : null;
      const res = this.db.prepare("INSERT OR IGNORE INTO raters (name, token_hash, created_at) VALUES (?, ?, ?)").run(name, hash, now);
      if (res.changes === 1) return { ok: true, rater: { id: Number(res.lastInsertRowid), name, hasToken: Boolean(token) }, created: true };
      return this.login(name, token, requireToken, now); // signed up by another request meanwhile
    }
    if (row.token_hash === null) {
      return {
        ok: false,
        code: "E_NAME_TAKEN",
        message: `the name "${name}" is taken by a rater without a token, who can continue only in the browser they signed up in; choose another name`,
      };
    }
    const v = token ? await verifyToken(row.token_hash, token, (t) => this.legacyHash(t)) : { ok: false, rehash: false };
    if (!v.ok) return { ok: false, code: "E_BAD_TOKEN", message: `wrong token for rater "${name}"` };
    if (v.rehash) this.db.prepare("UPDATE raters SET token_hash = ? WHERE id = ?").run(await hashToken(token!), row.id);
    return { ok: true, rater: { id: row.id, name: row.name, hasToken: true }, created: false };
  }

  /** A new session of a rater for `ttlMs`: the token for its cookie (the database keeps only its sha256). */
  createSession(raterId: number, ttlMs: number, now = Date.now()): string {
    const token = newSessionToken();
    this.db.prepare("DELETE FROM sessions WHERE expires_ms <= ?").run(now);
    this.db
      .prepare("INSERT INTO sessions (id, rater_id, created_at, expires_ms) VALUES (?, ?, ?, ?)")
      .run(sessionKey(token), raterId, new Date(now).toISOString(), now + ttlMs);
    return token;
  }

  /** The rater of a live session, or null (unknown, ended or expired). */
  sessionRater(token: string, now = Date.now()): Rater | null {
    const row = this.db.prepare("SELECT rater_id, expires_ms FROM sessions WHERE id = ?").get(sessionKey(token)) as
      | { rater_id: number; expires_ms: number }
      | undefined;
    if (!row || row.expires_ms <= now) return null;
    return this.rater(row.rater_id);
  }

  /** Ends a session (signing out): its cookie is worth nothing from now on. */
  endSession(token: string): void {
    this.db.prepare("DELETE FROM sessions WHERE id = ?").run(sessionKey(token));
  }

  rater(id: number): Rater | null {
    const row = this.db.prepare("SELECT id, name, token_hash FROM raters WHERE id = ?").get(id) as
      | { id: number; name: string; token_hash: string | null }
      | undefined;
    return row ? { id: row.id, name: row.name, hasToken: row.token_hash !== null } : null;
  }

  private key(kind: string, raterId: number, itemId: string): string {
    return crypto.createHash("sha256").update(`${this.salt}\0${kind}\0${raterId}\0${itemId}`).digest("hex");
  }

  /** The served items in this rater's order. */
  private order(raterId: number, served: readonly string[]): string[] {
    let o = this.orders.get(raterId);
    if (!o) {
      o = served
        .map((id) => [this.key("order", raterId, id), id] as const)
        .sort((x, y) => (x[0] < y[0] ? -1 : 1))
        .map(([, id]) => id);
      this.orders.set(raterId, o);
    }
    return o;
  }

  private answered(raterId: number): Set<string> {
    return new Set(
      (this.db.prepare("SELECT item_id FROM answers WHERE rater_id = ?").all(raterId) as { item_id: string }[]).map((r) => r.item_id),
    );
  }

  progress(raterId: number, served: readonly string[]): { done: number; total: number } {
    const done = this.answered(raterId);
    return { done: served.filter((id) => done.has(id)).length, total: served.length };
  }

  /** The rater's next unanswered item (its sides fixed and its showing recorded on first call), or null when done. */
  next(raterId: number, served: readonly string[], now = new Date().toISOString()): ShownItem | null {
    const done = this.answered(raterId);
    const id = this.order(raterId, served).find((x) => !done.has(x));
    if (id === undefined) return null;
    const leftIs: SideName = parseInt(this.key("side", raterId, id).slice(0, 2), 16) & 1 ? "b" : "a";
    this.db.prepare("INSERT OR IGNORE INTO shown (rater_id, item_id, left_is, shown_at) VALUES (?, ?, ?, ?)").run(raterId, id, leftIs, now);
    const s = this.db.prepare("SELECT left_is, shown_at FROM shown WHERE rater_id = ? AND item_id = ?").get(raterId, id) as {
      left_is: SideName;
      shown_at: string;
    };
    return { pair: this.pair(id)!, leftIs: s.left_is, shownAt: s.shown_at };
  }

  pair(id: string): Pair | null {
    const r = this.db.prepare("SELECT id, prompt, a_system, a_response, b_system, b_response FROM items WHERE id = ?").get(id) as
      | { id: string; prompt: string; a_system: string; a_response: string; b_system: string; b_response: string }
      | undefined;
    return r
      ? { id: r.id, prompt: r.prompt, a: { system: r.a_system, response: r.a_response }, b: { system: r.b_system, response: r.b_response } }
      : null;
  }

  /** Records an answer to an item the rater was shown; the same answer again is accepted once more (a resent request). */
  answer(raterId: number, itemId: string, choice: Choice, reason: string | null, now = new Date().toISOString()): AnswerResult {
    if (!this.pair(itemId)) return { ok: false, code: "E_NO_ITEM", message: `no comparison "${itemId.slice(0, 200)}"` };
    const shown = this.db.prepare("SELECT left_is, shown_at FROM shown WHERE rater_id = ? AND item_id = ?").get(raterId, itemId) as
      | { left_is: SideName; shown_at: string }
      | undefined;
    if (!shown) return { ok: false, code: "E_NOT_SHOWN", message: `comparison "${itemId.slice(0, 200)}" was not shown to you yet` };
    const old = this.db.prepare("SELECT choice, reason, winner FROM answers WHERE rater_id = ? AND item_id = ?").get(raterId, itemId) as
      | { choice: Choice; reason: string | null; winner: Winner }
      | undefined;
    if (old) {
      if (old.choice === choice && (old.reason ?? null) === reason) return { ok: true, duplicate: true, winner: old.winner };
      return {
        ok: false,
        code: "E_ALREADY_ANSWERED",
        message: `you already answered comparison "${itemId.slice(0, 200)}"; answers cannot be changed`,
      };
    }
    const winner = winnerOf(choice, shown.left_is);
    this.db
      .prepare(
        "INSERT INTO answers (rater_id, item_id, choice, winner, left_is, reason, shown_at, answered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      )
      .run(raterId, itemId, choice, winner, shown.left_is, reason, shown.shown_at, now);
    return { ok: true, duplicate: false, winner };
  }

  answers(): AnswerRow[] {
    return this.db
      .prepare(`
      SELECT answers.id AS id, raters.name AS rater, answers.item_id AS item_id, items.prompt AS prompt,
             items.a_system AS a_system, items.b_system AS b_system, choice, winner, left_is, reason, shown_at, answered_at
      FROM answers JOIN raters ON raters.id = answers.rater_id JOIN items ON items.id = answers.item_id
      ORDER BY answers.id`)
      .all() as AnswerRow[];
  }

  counts(): { items: number; raters: number; answers: number } {
    const n = (table: string) => (this.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
    return { items: n("items"), raters: n("raters"), answers: n("answers") };
  }
}
