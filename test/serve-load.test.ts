/**
 * The `serve` load test in small (bench/serve-load.ts; `npm run bench:serve` runs the full one): `colloquy serve` on
 * the tiny model takes 200 requests of every kind, good and hostile, 20 at a time, with two 1 MB prompts alongside
 * and /health asked all along. The process must not crash, every answer must be well-formed for its kind, no bug
 * may be logged, and SIGTERM must stop it cleanly. /health latency and the server's peak memory are printed (not
 * asserted: on a busy machine they measure the machine).
 */
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { serveLoad } from "../bench/serve-load.ts";
import { tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

test("serve under load: 200 mixed requests at concurrency 20 and two 1 MB prompts; no crash, every answer well-formed", {
  timeout: 300_000,
}, async () => {
  const model = saveTinyModel(path.join(tmpDir("colloquy-serve-load-"), "tiny"));
  const r = await serveLoad({ model, requests: 200, concurrency: 20, big: 2, bigBytes: 1_000_000, seed: 1 });
  console.log(
    `serve-load: ${r.requests} requests + ${r.big_prompts} big in ${r.duration_s} s; statuses ${JSON.stringify(r.by_status)}; ` +
      `/health max ${r.health.max_ms} ms, p99 ${r.health.p99_ms} ms (${r.health.samples} samples); server event loop delay ` +
      `${JSON.stringify(r.server_event_loop_delay_ms)}; big prompts answered in ${r.big_prompt_ms.join(", ")} ms; ` +
      `peak RSS ${r.server_peak_rss_mb} MB; load average ${r.machine.load_average_before} on ${r.machine.cpus} CPUs`,
  );
  assert.equal(r.crashes, 0);
  assert.deepEqual(r.malformed_examples, [], "every answer is what its kind allows");
  assert.equal(r.bugs_logged, 0);
  assert.ok(r.clean_exit, "SIGTERM stops it with exit status 0");
  assert.equal(r.health.failed, 0);
  assert.ok(r.health.samples > 0);
  for (const status of ["200", "400", "401", "404", "413", "421"]) assert.ok((r.by_status[status] ?? 0) > 0, `some answers are ${status}`);
  assert.equal(
    Object.values(r.by_kind["big-prompt"] ?? {}).reduce((a, b) => a + b, 0),
    1,
  );
  assert.deepEqual(Object.keys(r.by_kind["big-prompt"]), ["400"], "a 1 MB prompt is refused as too long");
});
