import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isUserError } from "../../util/errors.ts";
import { type Pair, readPairs } from "./pairs.ts";
import crypto from "node:crypto";
import Database from "better-sqlite3";
import { EvalStore, winnerOf } from "./store.ts";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-store-"));
const pairs: Pair[] = Array.from({ length: 8 }, (_, i) => ({
  id: `q${i}`,
  prompt: `prompt ${i}`,
  a: { system: "base", response: `a${i}` },
  b: { system: "tuned", response: `b${i}` },
}));
const ids = pairs.map((p) => p.id);

test("winner from the click and the hidden order", () => {
  assert.equal(winnerOf("left", "a"), "a");
  assert.equal(winnerOf("left", "b"), "b");
  assert.equal(winnerOf("right", "a"), "b");
  assert.equal(winnerOf("right", "b"), "a");
  assert.equal(winnerOf("tie", "b"), "tie");
});

const tokenHash = (file: string, name: string) =>
  (
    new Database(file, { readonly: true }).prepare("SELECT token_hash FROM raters WHERE name = ?").get(name) as {
      token_hash: string | null;
    }
  ).token_hash;

test("raters: a token is kept only as a salted scrypt hash and is needed again; a name without one is taken", async () => {
  const file = path.join(tmp(), "eval.sqlite");
  const s = EvalStore.open(file);
  const ann = await s.login("ann", "correct horse");
  assert.ok(ann.ok && ann.created && ann.rater.hasToken);
  assert.deepEqual(await s.login("ann", "wrong"), { ok: false, code: "E_BAD_TOKEN", message: 'wrong token for rater "ann"' });
  assert.equal((await s.login("ann", null)).ok, false);
  assert.ok((await s.login("ann", "correct horse")).ok);
  const bob = await s.login("bob", null);
  assert.ok(bob.ok && bob.created);
  const again = await s.login("bob", null);
  assert.ok(!again.ok && again.code === "E_NAME_TAKEN", "nobody can sign in as a rater without a token by typing the name");
  assert.equal((await s.login("bob", "late token")).ok, false, "nor add a token to it");
  assert.equal((await s.login("cid", null, true)).ok, false, "--require-token");
  const [x, y] = await Promise.all([s.login("dee", "t1"), s.login("dee", "t1")]);
  assert.ok(x.ok && y.ok && x.rater.id === y.rater.id && x.created !== y.created, "two sign-ups at once make one rater");
  s.close();
  assert.match(tokenHash(file, "ann")!, /^scrypt\$16384\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
  for (const f of fs.readdirSync(path.dirname(file))) {
    assert.ok(!fs.readFileSync(path.join(path.dirname(file), f)).includes("correct horse"), `${f} holds the token in clear`);
    assert.equal(fs.statSync(path.join(path.dirname(file), f)).mode & 0o777, 0o600, `${f} is private to its owner`);
  }
});

test("a schema-1 database opens: sha256 hashes are wrapped in scrypt at once, then rehashed at sign-in; its cookie secret goes", async () => {
  const file = path.join(tmp(), "old.sqlite");
  // the layout colloquy wrote before scrypt: meta with a salt and a session secret, sha256(salt \0 token)
  const db = new Database(file);
  db.exec(`
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, prompt TEXT NOT NULL, a_system TEXT NOT NULL,
  a_response TEXT NOT NULL, b_system TEXT NOT NULL, b_response TEXT NOT NULL, added_at TEXT NOT NULL);
CREATE TABLE raters (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT, created_at TEXT NOT NULL);`);
  const salt = "00112233445566778899aabbccddeeff";
  const legacy = crypto.createHash("sha256").update(`${salt}\0old secret`).digest("hex");
  db.prepare("INSERT INTO meta VALUES (?, ?)").run("schema_version", "1");
  db.prepare("INSERT INTO meta VALUES (?, ?)").run("salt", salt);
  db.prepare("INSERT INTO meta VALUES (?, ?)").run("session_secret", "ab".repeat(32));
  db.prepare("INSERT INTO raters (name, token_hash, created_at) VALUES (?, ?, ?)").run("ann", legacy, "2024-01-01T00:00:00.000Z");
  db.close();
  fs.chmodSync(file, 0o644);

  const s = EvalStore.open(file);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const meta = Object.fromEntries(
    (s.db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]),
  );
  assert.equal(meta.schema_version, "2");
  assert.equal(meta.session_secret, undefined, "the cookie secret is gone");
  assert.equal(meta.salt, salt, "the salt (orders and sides) is kept");
  assert.match(tokenHash(file, "ann")!, /^scrypt-sha256\$/, "wrapped at open, before anyone signs in");
  assert.ok(!fs.readFileSync(file).includes(Buffer.from(legacy)), "the sha256 hash is not left in the file");
  assert.equal((await s.login("ann", "wrong")).ok, false);
  assert.ok((await s.login("ann", "old secret")).ok);
  assert.match(tokenHash(file, "ann")!, /^scrypt\$/, "rehashed from the token at sign-in");
  assert.ok((await s.login("ann", "old secret")).ok);
  s.close();
  assert.ok((await EvalStore.open(file).login("ann", "old secret")).ok, "reopens as schema 2");
});

test("order and sides: random-looking, different per rater, the same after a reopen; answers are committed", async () => {
  const file = path.join(tmp(), "eval.sqlite");
  let s = EvalStore.open(file);
  assert.deepEqual(s.importPairs(pairs), { added: 8, known: 0 });
  const ann = ((await s.login("ann", null)) as { rater: { id: number } }).rater.id;
  const bob = ((await s.login("bob", null)) as { rater: { id: number } }).rater.id;
  const orderOf = (store: EvalStore, rater: number) => {
    const seen: string[] = [];
    const sides: string[] = [];
    for (;;) {
      const next = store.next(rater, ids);
      if (!next) break;
      seen.push(next.pair.id);
      sides.push(next.leftIs);
      assert.deepEqual(store.answer(rater, next.pair.id, "left", null), { ok: true, duplicate: false, winner: next.leftIs });
    }
    return { seen, sides };
  };
  const first = s.next(ann, ids)!;
  assert.equal(s.next(ann, ids)!.pair.id, first.pair.id, "the same item until it is answered");
  s.close();
  s = EvalStore.open(file);
  assert.deepEqual(s.importPairs(pairs), { added: 0, known: 8 });
  const again = s.next(ann, ids)!;
  assert.deepEqual(
    [again.pair.id, again.leftIs, again.shownAt],
    [first.pair.id, first.leftIs, first.shownAt],
    "resumes with the same item and sides",
  );
  const a = orderOf(s, ann),
    b = orderOf(s, bob);
  assert.equal(new Set(a.seen).size, 8);
  assert.notDeepEqual(a.seen, b.seen, "raters see their own order");
  assert.ok(new Set([...a.sides, ...b.sides]).size === 2, "both sides appear on the left");
  assert.deepEqual(s.progress(ann, ids), { done: 8, total: 8 });
  assert.equal(s.answers().length, 16);
  s.close();
  assert.equal(EvalStore.open(file).answers().length, 16);
});

test("answers: duplicates accepted once more, changes and unknown or unseen items refused", async () => {
  const s = EvalStore.open(path.join(tmp(), "eval.sqlite"));
  s.importPairs(pairs);
  const ann = ((await s.login("ann", null)) as { rater: { id: number } }).rater.id;
  const item = s.next(ann, ids)!.pair.id;
  const unseen = ids.find((x) => x !== item)!;
  assert.equal(s.answer(ann, "nope", "left", null).ok, false);
  assert.deepEqual(s.answer(ann, unseen, "left", null), {
    ok: false,
    code: "E_NOT_SHOWN",
    message: `comparison "${unseen}" was not shown to you yet`,
  });
  assert.ok(s.answer(ann, item, "tie", "same").ok);
  assert.deepEqual(s.answer(ann, item, "tie", "same"), { ok: true, duplicate: true, winner: "tie" });
  const changed = s.answer(ann, item, "left", "same");
  assert.ok(!changed.ok && changed.code === "E_ALREADY_ANSWERED");
  assert.equal(s.answers().length, 1);
  assert.throws(
    () => s.importPairs([{ ...pairs[0], prompt: "changed" }]),
    (e) => isUserError(e) && e.code === "E_PAIRS_CONFLICT",
  );
});

test("sessions: random tokens kept as sha256, live until they expire or end, and after a reopen", async () => {
  const file = path.join(tmp(), "eval.sqlite");
  let s = EvalStore.open(file);
  const ann = ((await s.login("ann", null)) as { rater: { id: number } }).rater.id;
  const t0 = Date.now();
  const token = s.createSession(ann, 60_000, t0);
  assert.match(token, /^[\w-]{43}$/);
  assert.equal(s.sessionRater(token, t0 + 1000)?.name, "ann");
  assert.equal(
    s.sessionRater(
      token.replace(/^./, (c) => (c === "A" ? "B" : "A")),
      t0,
    ),
    null,
  );
  assert.equal(s.sessionRater(token, t0 + 60_000), null, "expired");
  const other = s.createSession(ann, 60_000, t0);
  s.close();
  s = EvalStore.open(file);
  assert.equal(s.sessionRater(other, t0 + 1000)?.name, "ann", "outlives a restart");
  s.endSession(other);
  assert.equal(s.sessionRater(other, t0 + 1000), null, "ended by signing out");
  s.close();
  assert.ok(!fs.readFileSync(file).includes(token) && !fs.readFileSync(file).includes(other), "no token in clear");
});

test("pairs file: strict shape, line numbers in errors", () => {
  const dir = tmp();
  const write = (name: string, lines: unknown[]) => {
    fs.writeFileSync(path.join(dir, name), lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
    return path.join(dir, name);
  };
  assert.equal(readPairs(write("ok.jsonl", [pairs[0], "", pairs[1]])).length, 2);
  const bad = (lines: unknown[], re: RegExp) =>
    assert.throws(
      () => readPairs(write("bad.jsonl", lines)),
      (e) => isUserError(e) && re.test(e.message),
      String(re),
    );
  bad(["{"], /line 1 is not valid JSON/);
  bad([pairs[0], { ...pairs[1], a: { system: "x" } }], /line 2: "a.response" must be a string/);
  bad([{ ...pairs[0], extra: 1 }], /unknown field "extra"/);
  bad([pairs[0], pairs[0]], /id "q0" appears twice/);
  bad([{ ...pairs[0], b: { system: "base", response: "" } }], /same system/);
  bad([], /holds no comparisons/);
  assert.throws(
    () => readPairs(path.join(dir, "missing.jsonl")),
    (e) => isUserError(e) && e.code === "E_NOT_FOUND",
  );
});
