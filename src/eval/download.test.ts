import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import zlib from "node:zlib";
import { after, before, test } from "node:test";
import { isUserError } from "../util/errors.ts";
import { tmpDir } from "../../test/support.ts";
import { HH_BASE_URL, checkJsonlGz, downloadJsonlGz, hhFile, isLfsPointer } from "./download.ts";

const RECORDS = [{ chosen: "\n\nHuman: hi\n\nAssistant: hello", rejected: "\n\nHuman: hi\n\nAssistant: go away" }];
const GZ = zlib.gzipSync(RECORDS.map((r) => JSON.stringify(r)).join("\n") + "\n");
const LFS = Buffer.from("version https://git-lfs.github.com/spec/v1\noid sha256:0b1d...\nsize 742801\n");
const ROUTES: Record<string, (res: http.ServerResponse) => void> = {
  "/harmless-base/test.jsonl.gz": (res) => res.end(GZ),
  "/lfs/harmless-base/test.jsonl.gz": (res) => res.end(LFS),
  "/html/harmless-base/test.jsonl.gz": (res) => res.end("<!doctype html><title>Sign in</title>"),
  "/cut/harmless-base/test.jsonl.gz": (res) => res.end(GZ.subarray(0, GZ.length - 9)),
  "/keys/harmless-base/test.jsonl.gz": (res) => res.end(zlib.gzipSync(JSON.stringify({ prompt: "x" }) + "\n")),
  "/redirect/harmless-base/test.jsonl.gz": (res) => res.writeHead(302, { location: "/harmless-base/test.jsonl.gz" }).end(),
};

let server: http.Server;
let base = "";

before(async () => {
  server = http.createServer((req, res) => {
    const route = ROUTES[req.url ?? ""];
    if (route) route(res);
    else res.writeHead(404).end("not found");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => server.close());

const keys = ["chosen", "rejected"];

test("hhFile and the default source", () => {
  assert.equal(hhFile("helpful-base", "train"), "helpful-base/train.jsonl.gz");
  assert.equal(hhFile("red-team-attempts", "test"), "red-team-attempts/red_team_attempts.jsonl.gz");
  assert.match(HH_BASE_URL, /^https:\/\/huggingface\.co\/datasets\/Anthropic\/hh-rlhf\//);
  assert.equal(isLfsPointer(LFS), true);
  assert.equal(isLfsPointer(GZ), false);
});

test("a download lands atomically with its sha256, following redirects, and leaves no temp file", async () => {
  const dir = tmpDir();
  const dest = path.join(dir, "harmless-base", "test.jsonl.gz");
  const seen: number[] = [];
  const r = await downloadJsonlGz(`${base}/redirect/harmless-base/test.jsonl.gz`, dest, {
    recordKeys: keys,
    onProgress: (b) => seen.push(b),
  });
  assert.equal(r.bytes, GZ.length);
  assert.equal(r.records, 1);
  assert.equal(r.sha256, crypto.createHash("sha256").update(GZ).digest("hex"));
  assert.deepEqual(fs.readFileSync(dest), GZ);
  assert.equal(seen[seen.length - 1], GZ.length);
  assert.deepEqual(fs.readdirSync(path.dirname(dest)), ["test.jsonl.gz"]);
  assert.equal(checkJsonlGz(dest, keys, dest), 1);
});

test("failures are one-line user errors and leave nothing behind", async () => {
  const cases: [string, string, RegExp][] = [
    ["lfs", "E_LFS_POINTER", /Git LFS pointer/],
    ["html", "E_NOT_GZIP", /did not return gzip data \(starts with "<!doctype html>/],
    ["cut", "E_BAD_GZIP", /not valid gzip/],
    ["keys", "E_BAD_DATA", /first record lacks "chosen", "rejected"/],
    ["missing", "E_DOWNLOAD", /HTTP 404/],
  ];
  for (const [prefix, code, message] of cases) {
    const dir = tmpDir();
    const dest = path.join(dir, "test.jsonl.gz");
    await assert.rejects(
      downloadJsonlGz(`${base}/${prefix}/harmless-base/test.jsonl.gz`, dest, { recordKeys: keys }),
      (e) => isUserError(e) && e.code === code && message.test(e.message),
      prefix,
    );
    assert.deepEqual(fs.readdirSync(dir), [], `${prefix}: leftovers`);
  }
  await assert.rejects(
    downloadJsonlGz("http://127.0.0.1:1/x.jsonl.gz", path.join(tmpDir(), "x")),
    (e) => isUserError(e) && e.code === "E_NETWORK",
  );
});
