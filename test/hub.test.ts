/**
 * Hub models end to end, against the tests' own fake Hub (test/fake-hub.ts): `colloquy pull` into an empty cache is
 * killed mid-file and resumes with a Range request (the bytes are counted); the cache is huggingface_hub's layout;
 * `inspect`, `generate` and make-pairs systems then name the model and an adapter by Hub id with HF_HUB_OFFLINE=1
 * and touch no network; a first use downloads; a bad or missing token, a missing repo, revision or file, a corrupted
 * file, a cut connection, a refused one and a full disk are one line each; none leaves a partial file but the
 * cut transfer (the next pull resumes it) and the full disk.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { createAdapter } from "../src/engine/lora.ts";
import { savePeftAdapter } from "../src/formats/peft.ts";
import { Rng } from "../src/util/rng.ts";
import { FakeHub, type FakeRepo, listTree } from "./fake-hub.ts";
import { type CliResult, ROOT, assertUserError, freePort, tmpDir } from "./support.ts";
import { saveTinyModel, tinyModel } from "./tiny.ts";

const dir = tmpDir("colloquy-hub-");
const MODEL = "tiny-org/tiny-llama";
const LORA = "tiny-org/tiny-lora";
const SECRET = "hf_thisTokenMustNeverBePrinted42";
let hub: FakeHub;
let model: FakeRepo;
let modelDir = "";
let loraDir = "";

before(async () => {
  hub = await FakeHub.start();
  modelDir = saveTinyModel(path.join(dir, "tiny"));
  fs.writeFileSync(path.join(modelDir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
  // what a real repo also holds, and a pull leaves on the Hub by default
  fs.writeFileSync(path.join(modelDir, "README.md"), "# tiny\n");
  fs.writeFileSync(path.join(modelDir, "pytorch_model.bin"), Buffer.alloc(1000, 7));
  fs.mkdirSync(path.join(modelDir, "original"));
  fs.writeFileSync(path.join(modelDir, "original", "params.json"), "{}");
  model = hub.addFolder(MODEL, modelDir);
  loraDir = path.join(dir, "lora");
  const a = createAdapter("kind", tinyModel().config, { rank: 4, alpha: 8, rslora: false, targets: ["q", "v"] });
  const rng = new Rng(3);
  for (let i = 0; i < a.weights.data.length; i++) a.weights.data[i] = 0.3 * rng.normal();
  savePeftAdapter(loraDir, a, MODEL);
  hub.addFolder(LORA, loraDir);
});

after(async () => {
  await hub.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The environment of a user with an empty Hugging Face home, the fake Hub as $HF_ENDPOINT and this cache. */
function hubEnv(cache: string, more: Record<string, string> = {}): Record<string, string> {
  return {
    HF_HUB_CACHE: cache,
    HF_HOME: path.join(dir, "hf-home"),
    HF_ENDPOINT: hub.url,
    HF_TOKEN: "",
    HUGGING_FACE_HUB_TOKEN: "",
    HF_TOKEN_PATH: "",
    HF_HUB_OFFLINE: "",
    ...more,
  };
}

/** `colloquy <args>` in a child process, without blocking this one (the fake Hub answers from here). */
function cli(
  args: string[],
  env: Record<string, string>,
  onSpawn?: (kill: () => void) => void,
): Promise<CliResult & { signal: string | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status, signal) => resolve({ status: status ?? -1, signal, stdout, stderr }));
    onSpawn?.(() => child.kill("SIGKILL"));
  });
}

const repoFolder = (repo: string) => `models--${repo.replace("/", "--")}`;
const file = (repo: FakeRepo, p: string) => repo.files.find((f) => f.path === p)!;
const blobOf = (repo: FakeRepo, p: string) => (file(repo, p).lfs ? file(repo, p).sha256 : file(repo, p).oid);
const DEFAULT_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

async function waitFor(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("pull into an empty cache, killed mid-file, resumes with Range; the cache is huggingface_hub's; inspect and generate work offline", async () => {
  const cache = path.join(dir, "cache-main");
  const env = hubEnv(cache);
  const weights = file(model, "model.safetensors");
  const half = Math.floor(weights.data.length / 2);
  const part = path.join(cache, repoFolder(MODEL), "blobs", `${weights.sha256}.incomplete`);

  // 1. the transfer of model.safetensors stops after half its bytes and the process is killed there
  hub.fault(MODEL, "model.safetensors", { kind: "stall", after: half });
  const stalled = hub.stalled();
  let kill = () => {};
  const killed = cli(["pull", MODEL], env, (k) => (kill = k));
  assert.equal(await stalled, "model.safetensors");
  await waitFor("half of model.safetensors on disk", () => fs.existsSync(part) && fs.statSync(part).size === half);
  kill();
  assert.equal((await killed).signal, "SIGKILL");
  assert.equal(fs.statSync(part).size, half, "the partial blob keeps the bytes received");
  assert.ok(!fs.existsSync(path.join(cache, repoFolder(MODEL), "refs", "main")), "no ref before the snapshot is complete");

  // 2. pulled again: the rest of the file only, asked for with a Range header
  const r = await cli(["pull", MODEL, "--json"], env);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const snapshot = path.join(cache, repoFolder(MODEL), "snapshots", model.commit);
  assert.equal(out.path, snapshot);
  assert.equal(out.commit, model.commit);
  assert.deepEqual(
    out.files.map((f: { path: string }) => f.path),
    DEFAULT_FILES,
  );
  const w = out.files.find((f: { path: string }) => f.path === "model.safetensors");
  assert.deepEqual([w.status, w.resumed_from], ["resumed", half]);
  const served = hub.served("model.safetensors");
  assert.deepEqual(
    served.requests.map((q) => [q.range, q.bytes]),
    [
      [null, half],
      [`bytes=${half}-`, weights.data.length - half],
    ],
  );
  assert.equal(served.bytes, weights.data.length, "resumed, not restarted: every byte was sent once");
  assert.match(r.stderr, /\d+(\.\d+)? kB \/ \d+(\.\d+)? kB .*B\/s/, "progress in bytes and speed");
  assert.ok(!hub.log.some((q) => /README|pytorch_model|original/.test(q.path)), "only the files a model needs");

  // 3. the layout is huggingface_hub's: blobs named by sha256 (LFS) or git sha1, relative symlinks, refs/main
  const layout = listTree(cache).filter((l) => !l.startsWith(".locks/"));
  const want = [
    ...DEFAULT_FILES.map((p) => `${repoFolder(MODEL)}/blobs/${blobOf(model, p)}`),
    `${repoFolder(MODEL)}/refs/main`,
    ...DEFAULT_FILES.map((p) => `${repoFolder(MODEL)}/snapshots/${model.commit}/${p} -> ../../blobs/${blobOf(model, p)}`),
  ].sort();
  assert.deepEqual(layout, want);
  assert.equal(fs.readFileSync(path.join(cache, repoFolder(MODEL), "refs", "main"), "utf8"), model.commit);
  for (const p of DEFAULT_FILES) assert.deepEqual(fs.readFileSync(path.join(snapshot, p)), file(model, p).data, p);
  const { scanCacheDir } = await import("@huggingface/hub");
  const scan = await scanCacheDir(cache);
  assert.deepEqual(scan.warnings, []);
  assert.deepEqual(
    scan.repos.map((x) => [x.id.name, x.filesCount, x.revisions.map((v) => [v.commitOid, v.refs])]),
    [[MODEL, DEFAULT_FILES.length, [[model.commit, ["main"]]]]],
  );

  // 4. offline: inspect and generate by Hub id, no request to the Hub; the same tokens as from the folder itself
  const requests = hub.log.length;
  const offline = hubEnv(cache, { HF_HUB_OFFLINE: "1" });
  const gen = ["generate", "--prompt", "Ana has", "--max-tokens", "6", "--seed", "5", "--json"];
  const [inspect, byId, byFolder, missing, pulled] = await Promise.all([
    cli(["inspect", MODEL, "--json"], offline),
    cli([...gen, "--model", MODEL], offline),
    cli([...gen, "--model", modelDir], offline),
    cli(["inspect", "tiny-org/not-pulled"], offline),
    cli(["pull", MODEL, "--json"], offline),
  ]);
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.deepEqual([JSON.parse(inspect.stdout).path, JSON.parse(inspect.stdout).parameters], [snapshot, 31392]);
  assert.equal(byId.status, 0, byId.stderr);
  assert.deepEqual(JSON.parse(byId.stdout), JSON.parse(byFolder.stdout));
  assertUserError(
    missing,
    /E_HUB_OFFLINE\]: no file or folder tiny-org\/not-pulled, and tiny-org\/not-pulled is not in the Hugging Face cache .*HF_HUB_OFFLINE=1.*missing: models--tiny-org--not-pulled\/refs\/main/,
  );
  assert.equal(pulled.status, 0, pulled.stderr);
  assert.deepEqual(
    [JSON.parse(pulled.stdout).offline, JSON.parse(pulled.stdout).path, JSON.parse(pulled.stdout).files.length],
    [true, snapshot, 5],
  );
  assert.equal(hub.log.length, requests, "HF_HUB_OFFLINE=1 touched the network");
});

test("first use of a Hub id downloads it (model and adapter); make-pairs systems take Hub ids", async () => {
  const cache = path.join(dir, "cache-first-use");
  const gen = ["generate", "--prompt", "Ana has", "--max-tokens", "6", "--seed", "5", "--json"];
  const [byId, byFolder] = await Promise.all([
    cli([...gen, "--model", MODEL, "--adapter", LORA], hubEnv(cache)),
    cli([...gen, "--model", modelDir, "--adapter", loraDir], hubEnv(cache)),
  ]);
  assert.equal(byId.status, 0, byId.stderr);
  assert.deepEqual(JSON.parse(byId.stdout), JSON.parse(byFolder.stdout));
  assert.match(byId.stderr, /downloading 5 file\(s\) of tiny-org\/tiny-llama \(134 kB\) from http:\/\/127\.0\.0\.1:\d+ into /);
  assert.match(byId.stderr, /downloading 2 file\(s\) of tiny-org\/tiny-lora/);
  assert.ok(fs.existsSync(path.join(cache, repoFolder(LORA), "refs", "main")));

  const prompts = path.join(dir, "prompts.txt");
  fs.writeFileSync(prompts, "Who has the coins?\nWhere is Ben?\n");
  const requests = hub.log.length;
  const pairs = path.join(dir, "pairs.jsonl");
  const mp = ["human-eval", "make-pairs", "--prompts", prompts, "--a", "base", "--b", LORA, "--max-tokens", "4", "--quiet", "--json"];
  const r = await cli([...mp, "--model", MODEL, "--out", pairs], hubEnv(cache, { HF_HUB_OFFLINE: "1" }));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual([JSON.parse(r.stdout).pairs, JSON.parse(r.stdout).b], [2, LORA]);
  assert.equal(hub.log.length, requests);
});

test("bad or missing token, missing repo / revision / file, corrupted file, cut and refused connections, full disk: one line each, nothing partial left", async () => {
  hub.addFolder("gated-org/secret", loraDir, { token: "hf_theRightToken", access: "gated" });
  hub.addFolder("private-org/secret", loraDir, { token: "hf_theRightToken", access: "private" });
  hub.addFolder("corrupt-org/tiny", modelDir);
  hub.addFolder("cut-org/tiny", modelDir);
  const weights = file(model, "model.safetensors");
  hub.fault("corrupt-org/tiny", "model.safetensors", { kind: "corrupt", after: 1000 });
  hub.fault("cut-org/tiny", "model.safetensors", { kind: "cut", after: 5000 });
  const closed = await freePort();
  const c = (name: string) => path.join(dir, `cache-${name}`);
  // a full disk: the partial blob the transfer appends to is /dev/full, where every write fails with ENOSPC
  const full = path.join(c("no-space"), repoFolder(MODEL), "blobs", `${weights.sha256}.incomplete`);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.symlinkSync("/dev/full", full);
  const [badToken, noToken, privateRepo, noRepo, noRevision, noFile, corrupt, cut, refused, noSpace, included] = await Promise.all([
    cli(["pull", "gated-org/secret"], hubEnv(c("bad-token"), { HF_TOKEN: SECRET })),
    cli(["pull", "gated-org/secret"], hubEnv(c("no-token"))),
    cli(["pull", "private-org/secret"], hubEnv(c("private"))),
    cli(["pull", "nobody/nothing"], hubEnv(c("no-repo"))),
    cli(["pull", `${MODEL}@v9`], hubEnv(c("no-revision"))),
    cli(["pull", MODEL, "--include", "*.gguf"], hubEnv(c("no-file"))),
    cli(["pull", "corrupt-org/tiny"], hubEnv(c("corrupt"))),
    cli(["pull", "cut-org/tiny"], hubEnv(c("cut"))),
    cli(["inspect", "tiny-org/tiny-llama"], hubEnv(c("refused"), { HF_ENDPOINT: `http://127.0.0.1:${closed}` })),
    cli(["pull", MODEL], hubEnv(c("no-space"))),
    cli(["pull", `${MODEL}@${model.commit}`, "--include", "original/", "--json", "--quiet"], hubEnv(c("include"))),
  ]);
  assertHubError(
    badToken,
    /E_HUB_ACCESS.*gated-org\/secret: access denied .*HTTP 401.*gated or private.*token from \$HF_TOKEN was sent: set HF_TOKEN/,
  );
  assertHubError(
    noToken,
    /E_HUB_ACCESS\]: gated-org\/secret file adapter_config\.json: access denied .*HTTP 401\): the model is gated .*no token was sent: set HF_TOKEN.*accept its terms/,
  );
  assertHubError(
    privateRepo,
    /E_HUB_NOT_FOUND\]: no model repo private-org\/secret on .*, or it is private or gated \(HTTP 401\).*set HF_TOKEN/,
  );
  assertHubError(noRepo, /E_HUB_NOT_FOUND.*no model repo nobody\/nothing on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404\)/);
  assertHubError(noRevision, /E_HUB_NOT_FOUND.*tiny-org\/tiny-llama has no revision "v9"/);
  assertHubError(noFile, /E_HUB_NOT_FOUND.*tiny-org\/tiny-llama has no file matching \*\.gguf/);
  assertHubError(corrupt, /E_HUB_CHECKSUM.*model\.safetensors of corrupt-org\/tiny does not match its sha256 .*nothing of it was kept/);
  assertHubError(cut, /E_HUB_CUT.*connection was cut after 5\.00 kB of 128 kB of model\.safetensors.*again: it resumes/);
  assertHubError(
    refused,
    /E_HUB_CONNECTION\]: no file or folder tiny-org\/tiny-llama, and cannot connect to http:\/\/127\.0\.0\.1:\d+ \(connection refused\)/,
  );
  assertHubError(noSpace, /E_HUB_NO_SPACE.*no space left on the device to write model\.safetensors \(128 kB\)/);
  for (const r of [badToken, noToken, privateRepo, noRepo, noRevision, noFile, corrupt, cut, refused, noSpace]) {
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), "the token never appears in output");
    assert.equal(r.stdout, "");
  }
  // nothing partial: no repo folder at all where nothing was downloaded; no .incomplete, blob or link of a bad file
  for (const name of ["bad-token", "no-token", "private", "no-repo", "no-revision", "no-file", "refused"])
    assert.deepEqual(fs.existsSync(c(name)) ? listTree(c(name)) : [], [], name);
  const corrupted = listTree(c("corrupt"));
  assert.ok(!corrupted.some((l) => l.includes(".incomplete") || l.includes(weights.sha256) || l.includes("refs/")), corrupted.join("\n"));
  assert.ok(!corrupted.some((l) => l.includes("model.safetensors")), corrupted.join("\n"));
  // --include globs as allow_patterns; a commit hash as revision needs no ref
  assert.equal(included.status, 0, included.stderr);
  assert.deepEqual(
    JSON.parse(included.stdout).files.map((f: { path: string }) => f.path),
    ["original/params.json"],
  );
  assert.deepEqual(listTree(c("include")), [
    `${repoFolder(MODEL)}/blobs/${blobOf(model, "original/params.json")}`,
    `${repoFolder(MODEL)}/snapshots/${model.commit}/original/params.json -> ../../../blobs/${blobOf(model, "original/params.json")}`,
  ]);
  // a cut transfer keeps its bytes for the next pull, which resumes from there
  const part = path.join(c("cut"), repoFolder("cut-org/tiny"), "blobs", `${weights.sha256}.incomplete`);
  assert.equal(fs.statSync(part).size, 5000);
  const again = await cli(["pull", "cut-org/tiny", "--json", "--quiet"], hubEnv(c("cut")));
  assert.equal(again.status, 0, again.stderr);
  const resumed = hub.log.filter((q) => q.server === "cdn" && q.path.includes("cut-org"));
  assert.deepEqual(
    resumed.map((q) => [q.range, q.bytes]),
    [
      [null, 5000],
      ["bytes=5000-", weights.data.length - 5000],
    ],
  );
  assert.ok(!fs.existsSync(part));
});

test("a gated repo with the right token: the token goes to the Hub and never to the CDN it redirects to", async () => {
  const cache = path.join(dir, "cache-token");
  const tokenFile = path.join(dir, "token");
  fs.writeFileSync(tokenFile, "hf_theRightToken\n"); // the file `huggingface-cli login` writes
  const before = hub.log.length;
  const r = await cli(["pull", "gated-org/secret", "--json"], hubEnv(cache, { HF_TOKEN_PATH: tokenFile }));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    JSON.parse(r.stdout).files.map((f: { path: string; status: string }) => [f.path, f.status]),
    [
      ["adapter_config.json", "downloaded"],
      ["adapter_model.safetensors", "downloaded"],
    ],
  );
  const sent = hub.log.slice(before);
  assert.ok(sent.filter((q) => q.server === "hub").every((q) => q.auth === "Bearer hf_theRightToken"));
  assert.ok(sent.some((q) => q.server === "cdn"));
  assert.ok(
    sent.filter((q) => q.server === "cdn").every((q) => q.auth === null),
    "the CDN got the token",
  );
  assert.ok(!r.stderr.includes("hf_theRightToken"));
});

/**
 * A one-line user error: exit 2, one error line, the last on stderr (after any progress lines of what was
 * downloaded before it), no stack trace.
 */
function assertHubError(r: CliResult, pattern: RegExp): void {
  assert.equal(r.status, 2, `exit status ${r.status}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.deepEqual(
    lines.filter((l) => l.startsWith("error")),
    [lines[lines.length - 1]],
    r.stderr,
  );
  assert.match(lines[lines.length - 1], /^error\[E_[A-Z_]+\]: /);
  assert.match(lines[lines.length - 1], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}
