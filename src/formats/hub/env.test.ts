import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { hubEnv, publicEndpoint } from "./env.ts";

test("the endpoint, token and offline mode come from the environment as huggingface_hub reads them", () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-hf-home-"));
  fs.writeFileSync(path.join(home, "token"), "hf_fromTheFile\n");
  assert.deepEqual(hubEnv({ HF_HOME: home }), {
    endpoint: "https://huggingface.co",
    token: "hf_fromTheFile",
    tokenFrom: path.join(home, "token"),
    offline: false,
  });
  assert.deepEqual(hubEnv({ HF_HOME: home, HF_TOKEN: " hf_env ", HF_ENDPOINT: "http://mirror:8080/" }), {
    endpoint: "http://mirror:8080",
    token: "hf_env",
    tokenFrom: "$HF_TOKEN",
    offline: false,
  });
  assert.equal(hubEnv({ HF_HOME: home, HUGGING_FACE_HUB_TOKEN: "hf_legacy" }).token, "hf_legacy");
  assert.equal(hubEnv({ HF_HOME: path.join(home, "none") }).token, null);
  assert.equal(hubEnv({ HF_HOME: path.join(home, "none"), XDG_CACHE_HOME: path.dirname(home) }).token, null);
  for (const v of ["1", "true", "YES", "on"]) assert.equal(hubEnv({ HF_HUB_OFFLINE: v }).offline, true, v);
  for (const v of ["0", "", "false", "no"]) assert.equal(hubEnv({ HF_HUB_OFFLINE: v }).offline, false, v);
  assert.equal(publicEndpoint("https://user:secret@mirror.example/hub/"), "https://mirror.example/hub");
});
