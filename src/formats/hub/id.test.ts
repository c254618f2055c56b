import assert from "node:assert/strict";
import { test } from "node:test";
import { hubLabel, isSafeRepoPath, parseHubId } from "./id.ts";

test("org/name[@revision] is a Hub id; paths and other names are not", () => {
  assert.deepEqual(parseHubId("meta-llama/Llama-3.2-1B-Instruct"), { repo: "meta-llama/Llama-3.2-1B-Instruct", revision: "main" });
  assert.deepEqual(parseHubId("HuggingFaceTB/SmolLM2-135M@v1.0"), { repo: "HuggingFaceTB/SmolLM2-135M", revision: "v1.0" });
  assert.deepEqual(parseHubId("org/name@refs/pr/1"), { repo: "org/name", revision: "refs/pr/1" });
  const commit = "0123456789abcdef0123456789abcdef01234567";
  assert.deepEqual(parseHubId(`org/name@${commit}`), { repo: "org/name", revision: commit });
  for (const notId of [
    "name",
    "./org/name",
    "/org/name",
    "~/org/name",
    "runs/x/adapters/agent0",
    "org/",
    "/name",
    "org/na--me",
    "org/..",
    "org/name@",
    "org/name@../x",
    "org/name@a//b",
    ".org/name",
    "org/-x",
  ])
    assert.equal(parseHubId(notId), null, notId);
  assert.equal(hubLabel({ repo: "org/name", revision: "main" }), "org/name");
  assert.equal(hubLabel({ repo: "org/name", revision: "v2" }), "org/name@v2");
});

test("repo file paths that would leave the snapshot folder are refused", () => {
  for (const ok of ["config.json", "original/params.json", "a/b/c.safetensors"]) assert.ok(isSafeRepoPath(ok), ok);
  for (const bad of ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\..\\x", "C:x", "./a"]) assert.ok(!isSafeRepoPath(bad), bad);
});
