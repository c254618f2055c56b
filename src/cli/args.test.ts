import assert from "node:assert/strict";
import test from "node:test";
import { parseArgs } from "citty";
import { many } from "./args.ts";

test("many: every value of a repeated flag, in both forms and in order (citty keeps only the last)", () => {
  const raw = ["--adapter=0=a", "--json", "--adapter", "1=b", "--adapters=x", "--adapter=2=c=d", "--", "--adapter=e"];
  assert.equal(parseArgs(raw, { adapter: { type: "string" } }).adapter, "2=c=d");
  assert.deepEqual(many(raw, "adapter"), ["0=a", "1=b", "2=c=d"]);
  assert.deepEqual(many(raw, "stop"), []);
  assert.deepEqual(many(["--stop"], "stop"), []);
});
