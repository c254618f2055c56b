import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { cachedSnapshot, linkBlob, missingFiles, writeRef } from "./cache.ts";

const COMMIT = "a".repeat(40);

test("a snapshot is found through refs/<revision> or by commit, and its links point at blobs as Python's do", () => {
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-hub-cache-"));
  assert.equal(cachedSnapshot(repo, { repo: "o/n", revision: "main" }), null);
  fs.mkdirSync(path.join(repo, "blobs"));
  fs.writeFileSync(path.join(repo, "blobs", "b1"), "{}");
  const snap = path.join(repo, "snapshots", COMMIT);
  linkBlob(path.join(repo, "blobs", "b1"), path.join(snap, "config.json"));
  linkBlob(path.join(repo, "blobs", "b1"), path.join(snap, "original", "params.json"));
  assert.equal(fs.readlinkSync(path.join(snap, "config.json")), "../../blobs/b1");
  assert.equal(fs.readlinkSync(path.join(snap, "original", "params.json")), "../../../blobs/b1");
  writeRef(repo, "main", COMMIT);
  writeRef(repo, "refs/pr/1", COMMIT);
  assert.equal(fs.readFileSync(path.join(repo, "refs", "main"), "utf8"), COMMIT, "no newline, as Python writes it");
  for (const revision of ["main", "refs/pr/1", COMMIT])
    assert.deepEqual(cachedSnapshot(repo, { repo: "o/n", revision }), { commit: COMMIT, dir: snap });
  assert.equal(cachedSnapshot(repo, { repo: "o/n", revision: "b".repeat(40) }), null);
});

test("missingFiles names what a model (config, weights, every shard) or an adapter lacks", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-hub-snap-"));
  assert.deepEqual(missingFiles(dir, "model"), ["config.json", "model.safetensors"]);
  assert.deepEqual(missingFiles(dir, "adapter"), ["adapter_config.json", "adapter_model.safetensors"]);
  fs.writeFileSync(path.join(dir, "config.json"), "{}");
  fs.writeFileSync(
    path.join(dir, "model.safetensors.index.json"),
    JSON.stringify({ weight_map: { a: "m-1.safetensors", b: "m-2.safetensors", c: "m-1.safetensors" } }),
  );
  fs.writeFileSync(path.join(dir, "m-1.safetensors"), "");
  assert.deepEqual(missingFiles(dir, "model"), ["m-2.safetensors"]);
  fs.symlinkSync("../nowhere", path.join(dir, "m-2.safetensors"));
  assert.deepEqual(missingFiles(dir, "model"), ["m-2.safetensors"], "a dangling link is missing");
});
