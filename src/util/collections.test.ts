import assert from "node:assert/strict";
import { test } from "node:test";
import { groupBy } from "./collections.ts";

test("groupBy keeps the first-seen order of keys and the order of items within a group", () => {
  const g = groupBy(["b1", "a1", "b2", "c1", "a2"], (s) => s[0]);
  assert.deepEqual(
    [...g],
    [
      ["b", ["b1", "b2"]],
      ["a", ["a1", "a2"]],
      ["c", ["c1"]],
    ],
  );
  const n = groupBy([3, 1, 4, 1, 5, 9, 2, 6], (x) => x % 2);
  assert.deepEqual(
    [...n],
    [
      [1, [3, 1, 1, 5, 9]],
      [0, [4, 2, 6]],
    ],
  );
  assert.equal(groupBy([], (x: number) => x).size, 0);
});
