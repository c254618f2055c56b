/**
 * The Hugging Face cache is shared with Python: what `colloquy pull` writes, huggingface_hub reads as its own
 * (scan_cache_dir, hf_hub_download and snapshot_download with local_files_only), and what huggingface_hub downloads
 * from the fake Hub, colloquy opens offline. Needs a Python with huggingface_hub ($COLLOQUY_HF_PYTHON, else the
 * torch tests' Python); skipped without one.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { FakeHub, type FakeRepo } from "./fake-hub.ts";
import { PYTHON, ROOT, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const HF_PYTHON = process.env.COLLOQUY_HF_PYTHON || PYTHON;
const skip =
  spawnSync(HF_PYTHON, ["-c", "import huggingface_hub"]).status === 0
    ? false
    : `needs a Python with huggingface_hub (${HF_PYTHON} cannot import it; set $COLLOQUY_HF_PYTHON)`;

const dir = tmpDir("colloquy-hub-python-");
const MODEL = "tiny-org/tiny-llama";
let hub: FakeHub;
let repo: FakeRepo;

before(async () => {
  if (skip) return;
  hub = await FakeHub.start();
  const model = saveTinyModel(path.join(dir, "tiny"));
  fs.writeFileSync(path.join(model, "README.md"), "# tiny\n");
  repo = hub.addFolder(MODEL, model);
});

after(async () => {
  await hub?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function env(cache: string, more: Record<string, string> = {}): Record<string, string> {
  return {
    ...process.env,
    HF_HUB_CACHE: cache,
    HF_HOME: path.join(dir, "hf-home"),
    HF_ENDPOINT: hub.url,
    HF_TOKEN: "",
    HF_HUB_OFFLINE: "",
    HF_HUB_DISABLE_TELEMETRY: "1",
    HF_HUB_DISABLE_XET: "1",
    ...more,
  } as Record<string, string>;
}

function run(cmd: string, args: string[], e: Record<string, string>): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: e });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status: status ?? -1, stdout, stderr }));
  });
}

const colloquy = (args: string[], e: Record<string, string>) => run(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...args], e);

test("huggingface_hub reads what colloquy pull wrote as its own cache", { skip }, async () => {
  const cache = path.join(dir, "cache-colloquy");
  const pulled = await colloquy(["pull", MODEL, "--json", "--quiet"], env(cache));
  assert.equal(pulled.status, 0, pulled.stderr);
  const snapshot = JSON.parse(pulled.stdout).path;
  const py = `
import json, huggingface_hub as h
info = h.scan_cache_dir()
r = info.repos
out = {
  "repos": [[x.repo_id, x.repo_type, x.nb_files, sorted((rev.commit_hash, sorted(rev.refs)) for rev in x.revisions)] for x in r],
  "warnings": [str(w) for w in info.warnings],
  "config": h.hf_hub_download("${MODEL}", "config.json", local_files_only=True),
  "snapshot": h.snapshot_download("${MODEL}", local_files_only=True),
}
print(json.dumps(out))`;
  const r = await run(HF_PYTHON, ["-c", py], env(cache, { HF_HUB_OFFLINE: "1" }));
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.warnings, []);
  assert.deepEqual(out.repos, [[MODEL, "model", 4, [[repo.commit, ["main"]]]]]);
  assert.equal(out.config, path.join(snapshot, "config.json"));
  assert.equal(out.snapshot, snapshot);
});

test("colloquy opens offline what huggingface_hub downloaded from the Hub", { skip }, async () => {
  const cache = path.join(dir, "cache-python");
  const py = `import huggingface_hub as h; print(h.snapshot_download("${MODEL}", allow_patterns=["*.json", "*.safetensors"]))`;
  const r = await run(HF_PYTHON, ["-c", py], env(cache));
  assert.equal(r.status, 0, r.stderr);
  const snapshot = r.stdout.trim().split("\n").pop();
  const requests = hub.log.length;
  const inspect = await colloquy(["inspect", MODEL, "--json"], env(cache, { HF_HUB_OFFLINE: "1" }));
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.equal(JSON.parse(inspect.stdout).path, snapshot);
  assert.equal(hub.log.length, requests);
});
