/**
 * The torch worker's own unit tests (worker/tests, Python's unittest: the protocol, checkpoints, batching, the
 * optimizers, and transformers' references), run by `npm test` with the interpreter the torch backend uses.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { NO_TORCH, PYTHON, ROOT } from "./support.ts";

test("worker/tests pass (python -m unittest)", { skip: NO_TORCH }, () => {
  const r = spawnSync(PYTHON, ["-m", "unittest", "discover", "-s", "tests"], {
    cwd: path.join(ROOT, "worker"),
    encoding: "utf8",
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr.split("\n").slice(-40).join("\n"));
  assert.match(r.stderr, /^OK/m);
  const ran = Number(/Ran (\d+) tests?/.exec(r.stderr)?.[1] ?? 0);
  assert.ok(ran >= 30, `ran ${ran} tests`);
});
