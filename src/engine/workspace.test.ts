import assert from "node:assert/strict";
import { test } from "node:test";
import { Workspace } from "./workspace.ts";

test("the workspace hands a given-back buffer to the next request of its size class or of up to half its size", () => {
  const ws = new Workspace();
  const a = ws.take(10_000).fill(7);
  assert.equal(a.length, 10_000);
  ws.give(a);
  const same = ws.take(9_990); // the same size class
  assert.equal(same.buffer, a.buffer);
  assert.equal(same.length, 9_990);
  ws.give(same);
  const smaller = ws.take(6_000); // a few classes down: reuses the idle larger buffer instead of allocating
  assert.equal(smaller.buffer, a.buffer);
  assert.equal(smaller.length, 6_000);
  const fresh = ws.take(6_000); // nothing idle now
  assert.notEqual(fresh.buffer, a.buffer);
  ws.give(smaller, fresh);
  const tiny = ws.take(1_000); // under half the idle buffers' size: a fresh one, not a tenfold waste
  assert.notEqual(tiny.buffer, a.buffer);
  assert.notEqual(tiny.buffer, fresh.buffer);
  const larger = ws.take(20_000); // no idle buffer is large enough
  assert.notEqual(larger.buffer, a.buffer);
  const zeroed = ws.takeZeroed(10_000); // the idle buffer that held sevens, cleared
  assert.equal(zeroed.buffer, a.buffer);
  assert.ok(zeroed.every((x) => x === 0));
});
