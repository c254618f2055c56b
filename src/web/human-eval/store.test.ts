import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isUserError } from "../../util/errors.ts";
import { type Pair, readPairs } from "./pairs.ts";
import { verifySession, sessionValue } from "./session.ts";
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

test("raters: a token is kept only as a salted hash and is needed again", () => {
  const file = path.join(tmp(), "eval.sqlite");
  const s = EvalStore.open(file);
  const ann = s.login("ann", "correct horse");
  assert.ok(ann.ok && ann.created && ann.rater.hasToken);
  assert.deepEqual(s.login("ann", "wrong"), { ok: false, code: "E_BAD_TOKEN", message: 'wrong token for rater "ann"' });
  assert.equal(s.login("ann", null).ok, false);
  assert.ok(s.login("ann", "correct horse").ok);
  assert.ok(s.login("bob", null).ok);
  assert.equal(s.login("bob", "late token").ok, false, "a rater without a token cannot add one");
  assert.equal(s.login("cid", null, true).ok, false, "--require-token");
  s.close();
  for (const f of fs.readdirSync(path.dirname(file))) {
    assert.ok(!fs.readFileSync(path.join(path.dirname(file), f)).includes("correct horse"), `${f} holds the token in clear`);
  }
  const other = EvalStore.open(path.join(tmp(), "other.sqlite"));
  assert.notEqual(other.hashToken("correct horse"), EvalStore.open(file).hashToken("correct horse"), "salted per database");
});

test("order and sides: random-looking, different per rater, the same after a reopen; answers are committed", () => {
  const file = path.join(tmp(), "eval.sqlite");
  let s = EvalStore.open(file);
  assert.deepEqual(s.importPairs(pairs), { added: 8, known: 0 });
  const ann = (s.login("ann", null) as { rater: { id: number } }).rater.id;
  const bob = (s.login("bob", null) as { rater: { id: number } }).rater.id;
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

test("answers: duplicates accepted once more, changes and unknown or unseen items refused", () => {
  const s = EvalStore.open(path.join(tmp(), "eval.sqlite"));
  s.importPairs(pairs);
  const ann = (s.login("ann", null) as { rater: { id: number } }).rater.id;
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

test("sessions: signed with the database's secret", () => {
  const s = EvalStore.open(path.join(tmp(), "eval.sqlite"));
  const v = sessionValue(s.sessionSecret, 7);
  assert.equal(verifySession(s.sessionSecret, v), 7);
  assert.equal(verifySession(s.sessionSecret, v.replace(/^7/, "8")), null);
  assert.equal(verifySession(Buffer.alloc(32), v), null);
  assert.equal(verifySession(s.sessionSecret, undefined), null);
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
