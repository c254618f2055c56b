import assert from "node:assert/strict";
import { test } from "node:test";
import { FailureThrottle } from "./throttle.ts";

test("failed sign-ins: a sliding window per key; an attempt counts until it is forgiven", () => {
  const t = new FailureThrottle(3, 1000);
  const keys = ["address:a", "name:ann"];
  for (let k = 0; k < 3; k++) {
    assert.equal(t.wait(keys, 100 * k), 0);
    t.attempt(keys, 100 * k);
  }
  assert.equal(t.wait(keys, 300), 700, "until the oldest failure leaves the window");
  assert.equal(t.wait(["address:b", "name:ann"], 300), 700, "the name is limited from any address");
  assert.equal(t.wait(["address:b", "name:bob"], 300), 0);
  assert.equal(t.wait(keys, 999), 1);
  assert.equal(t.wait(keys, 1000), 0);
  const u = new FailureThrottle(2, 1000);
  u.attempt(["x"], 5);
  u.forgive(["x"], 5);
  u.attempt(["x"], 6);
  assert.equal(u.wait(["x"], 7), 0, "a forgiven attempt does not count");
  const small = new FailureThrottle(1, 1000, 2);
  for (const k of ["a", "b", "c"]) small.attempt([k], 0);
  assert.equal(small.wait(["a"], 1), 0, "past maxKeys the oldest key is dropped");
  assert.ok(small.wait(["c"], 1) > 0);
});
