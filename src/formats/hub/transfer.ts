/**
 * One file's bytes into its blob, what @huggingface/hub's downloadFileToCacheDir does not do: the bytes go to
 * `blobs/<etag>.incomplete`, and a later attempt asks for the rest with an HTTP Range header instead of starting
 * over; the whole file is then checked (LFS files: their sha256; others: their git blob sha1) and only a file that
 * matches is renamed into place, atomically. A mismatch deletes it. Redirects are followed by hand, so that the
 * token goes to the endpoint and never to the CDN a file redirects to.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import { UserError, isUserError } from "../../util/errors.ts";
import { formatBytes } from "./progress.ts";

export interface BlobTarget {
  file: string; // its path in the repo
  size: number;
  sha256: string | null; // an LFS file's oid
  gitOid: string | null; // another file's git blob sha1
}

export interface Transfer {
  fetch: typeof fetch; // the repo's hubFetch
  url: string; // the file's resolve URL
  blobPath: string;
  target: BlobTarget;
  label: string; // "org/name@rev", for messages
  onBytes(n: number): void;
}

/** Bytes received now, and how many were already on disk from an interrupted attempt (0: a fresh download). */
export interface TransferResult {
  received: number;
  resumedFrom: number;
}

const MAX_REDIRECTS = 10;

export async function transferBlob(t: Transfer): Promise<TransferResult> {
  const { target } = t;
  const part = `${t.blobPath}.incomplete`;
  let have = fs.existsSync(part) ? fs.statSync(part).size : 0;
  if (have > target.size) {
    fs.rmSync(part);
    have = 0;
  }
  let hash = hasher(target);
  if (have > 0) await hashFile(part, hash);
  const resumedFrom = have;
  let received = 0;
  if (have < target.size) {
    const res = await getFollowing(t.fetch, t.url, have);
    if (res.status !== 206 || rangeStart(res) !== have) {
      // a whole file (the server ignored the Range): start over
      have = 0;
      hash = hasher(target);
    }
    const fd = fs.openSync(part, have > 0 ? "a" : "w");
    try {
      for await (const chunk of (res.body ?? []) as unknown as AsyncIterable<Uint8Array>) {
        writeChunk(fd, chunk, part, target);
        hash.update(chunk);
        have += chunk.length;
        received += chunk.length;
        t.onBytes(chunk.length);
      }
      fs.fsyncSync(fd);
    } catch (e) {
      if (isUserError(e)) throw e;
      throw cutError(t, have);
    } finally {
      fs.closeSync(fd);
    }
    if (have < target.size) throw cutError(t, have);
  }
  if (target.size === 0) fs.writeFileSync(part, new Uint8Array(0));
  const want = target.sha256 ?? target.gitOid;
  const got = hash.digest("hex");
  if (have !== target.size || got !== want) {
    fs.rmSync(part, { force: true });
    const what = target.sha256 ? "sha256" : "git blob sha1";
    throw new UserError(
      "E_HUB_CHECKSUM",
      `${target.file} of ${t.label} does not match its ${what} (want ${want?.slice(0, 12)}…, got ${got.slice(0, 12)}… over ${have} of ${target.size} bytes): the download was damaged and nothing of it was kept in the cache`,
      "run the command again; if it fails the same way, the file on the server is damaged",
    );
  }
  fs.renameSync(part, t.blobPath);
  return { received, resumedFrom };
}

/** sha256 for LFS files; git's blob hash (sha1 of "blob <size>\0" + bytes) for the others. */
function hasher(target: BlobTarget): crypto.Hash {
  if (target.sha256) return crypto.createHash("sha256");
  return crypto.createHash("sha1").update(`blob ${target.size}\0`);
}

async function hashFile(file: string, hash: crypto.Hash): Promise<void> {
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
}

/** GET from byte `from` on, following redirects by hand (each hop through the repo's fetch, which adds the token). */
async function getFollowing(f: typeof fetch, url: string, from: number): Promise<Response> {
  let u = new URL(url);
  // identity: the bytes as stored, so that sizes, ranges and hashes are the file's (as huggingface_hub asks)
  const headers: Record<string, string> = { "Accept-Encoding": "identity", ...(from > 0 ? { Range: `bytes=${from}-` } : {}) };
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await f(u, { redirect: "manual", headers });
    if (res.status < 300 || res.status >= 400) return res;
    await res.body?.cancel().catch(() => {});
    const location = res.headers.get("Location");
    if (!location) throw new UserError("E_HUB_HTTP", `${u.origin} answered HTTP ${res.status} without a Location for ${u.pathname}`);
    u = new URL(location, u);
  }
  throw new UserError("E_HUB_HTTP", `more than ${MAX_REDIRECTS} redirects for ${url}`);
}

/** The first byte of a 206 answer ("Content-Range: bytes 100-199/200" → 100); null when absent. */
function rangeStart(res: Response): number | null {
  const m = /^bytes (\d+)-/.exec(res.headers.get("Content-Range") ?? "");
  return m ? Number(m[1]) : null;
}

function writeChunk(fd: number, chunk: Uint8Array, part: string, target: BlobTarget): void {
  try {
    fs.writeSync(fd, chunk);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOSPC" || code === "EDQUOT") {
      throw new UserError(
        "E_HUB_NO_SPACE",
        `no space left on the device to write ${target.file} (${formatBytes(target.size)}) to ${part}`,
        "free some space, or move the cache with HF_HUB_CACHE; the next pull resumes the partial file",
      );
    }
    throw new UserError(
      "E_HUB_WRITE",
      `cannot write ${part}: ${code ?? (e as Error).message}`,
      "check the cache folder's permissions (HF_HUB_CACHE)",
    );
  }
}

function cutError(t: Transfer, have: number): UserError {
  return new UserError(
    "E_HUB_CUT",
    `the connection was cut after ${formatBytes(have)} of ${formatBytes(t.target.size)} of ${t.target.file} (${t.label})`,
    "run the same command again: it resumes from there",
  );
}
