/**
 * Downloading public evaluation data. HH-RLHF (Anthropic/hh-rlhf) lives on the Hugging Face Hub as
 * `<subset>/<split>.jsonl.gz` (and `red-team-attempts/red_team_attempts.jsonl.gz`); the same paths in the GitHub
 * repository anthropics/hh-rlhf are mostly Git LFS pointers (a 130-byte text file, not the data), which is detected
 * and reported. A download streams to a temporary file beside the target while hashing (sha256), checks that the
 * file is valid gzip whose first record is JSON of the expected shape, and only then renames it into place.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { UserError } from "../util/errors.ts";

export const HH_BASE_URL = "https://huggingface.co/datasets/Anthropic/hh-rlhf/resolve/main";
export const HH_GITHUB_MEDIA_URL = "https://media.githubusercontent.com/media/anthropics/hh-rlhf/master";
export const HH_SUBSETS = ["harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled", "red-team-attempts"] as const;
export const HH_SPLITS = ["train", "test"] as const;
export type HhSubset = (typeof HH_SUBSETS)[number];
export type HhSplit = (typeof HH_SPLITS)[number];

/** The file of a subset and split, relative to the dataset root (red-team-attempts has one file and no split). */
export function hhFile(subset: HhSubset, split: HhSplit): string {
  return subset === "red-team-attempts" ? "red-team-attempts/red_team_attempts.jsonl.gz" : `${subset}/${split}.jsonl.gz`;
}

/** Keys the first record of a subset must have. */
export function hhRecordKeys(subset: HhSubset): string[] {
  return subset === "red-team-attempts" ? ["transcript"] : ["chosen", "rejected"];
}

const LFS_PREFIX = "version https://git-lfs.github.com/spec/v1";

export function isLfsPointer(head: Buffer): boolean {
  return head.subarray(0, LFS_PREFIX.length).toString("latin1") === LFS_PREFIX;
}

export interface DownloadResult {
  url: string;
  path: string;
  bytes: number;
  sha256: string;
  records: number; // non-empty lines of the decompressed file
}

export interface DownloadOptions {
  recordKeys?: string[]; // keys the first JSON record must have
  onProgress?: (bytes: number, total: number | null) => void;
  fetchImpl?: typeof fetch;
}

/** Checks a .jsonl.gz file: gzip, UTF-8 JSON lines, the first record with `keys`; returns the number of records. */
export function checkJsonlGz(file: string, keys: readonly string[], url: string): number {
  const head = Buffer.alloc(64);
  const fd = fs.openSync(file, "r");
  const got = fs.readSync(fd, head, 0, 64, 0);
  fs.closeSync(fd);
  if (isLfsPointer(head.subarray(0, got))) {
    throw new UserError(
      "E_LFS_POINTER",
      `${url} is a Git LFS pointer, not the data (the repository stores the file in LFS)`,
      `download from the Hugging Face source (the default --url ${HH_BASE_URL}) or GitHub's LFS media host --url ${HH_GITHUB_MEDIA_URL}`,
    );
  }
  if (!(head[0] === 0x1f && head[1] === 0x8b)) {
    const preview = head
      .subarray(0, Math.min(got, 40))
      .toString("latin1")
      .replace(/[^\x20-\x7e]/g, ".");
    throw new UserError(
      "E_NOT_GZIP",
      `${url} did not return gzip data (starts with "${preview}")`,
      "check --url; the server may have answered with an HTML page",
    );
  }
  let text: string;
  try {
    text = zlib.gunzipSync(fs.readFileSync(file)).toString("utf8");
  } catch (e) {
    throw new UserError(
      "E_BAD_GZIP",
      `${url}: the download is not valid gzip (${(e as Error).message})`,
      "the transfer may have been cut; try again",
    );
  }
  const lines = text.split("\n").filter((l) => l.trim());
  if (lines.length === 0) throw new UserError("E_BAD_DATA", `${url}: the file holds no records`);
  let first: unknown;
  try {
    first = JSON.parse(lines[0]);
  } catch {
    throw new UserError("E_BAD_DATA", `${url}: the first line is not JSON`);
  }
  const missing = keys.filter((k) => !(typeof first === "object" && first !== null && k in first));
  if (missing.length) throw new UserError("E_BAD_DATA", `${url}: the first record lacks ${missing.map((k) => `"${k}"`).join(", ")}`);
  return lines.length;
}

/** Streams `url` to `dest` atomically (temp file + rename), hashing on the way; validates before the rename. */
export async function downloadJsonlGz(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const doFetch = opts.fetchImpl ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, { redirect: "follow" });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new UserError(
      "E_NETWORK",
      `cannot reach ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`,
      "check the network connection, or give --url of a reachable copy",
    );
  }
  if (!res.ok || !res.body) {
    throw new UserError(
      "E_DOWNLOAD",
      `${url}: HTTP ${res.status} ${res.statusText}`.trim(),
      res.status === 404 ? "check --subset and --split (and --url)" : undefined,
    );
  }
  const lengthHeader = res.headers.get("content-length");
  const total = lengthHeader !== null && Number.isFinite(Number(lengthHeader)) ? Number(lengthHeader) : null;
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}-${Date.now()}`;
  const hash = crypto.createHash("sha256");
  let bytes = 0;
  const fd = fs.openSync(tmp, "w");
  try {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        fs.writeSync(fd, chunk);
        bytes += chunk.length;
        opts.onProgress?.(bytes, total);
      }
    } catch (e) {
      throw new UserError("E_NETWORK", `${url}: the transfer broke off after ${bytes} bytes (${(e as Error).message})`, "try again");
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    if (total !== null && bytes !== total)
      throw new UserError("E_DOWNLOAD", `${url}: got ${bytes} bytes, the server announced ${total}`, "the transfer was cut; try again");
    const records = checkJsonlGz(tmp, opts.recordKeys ?? [], url);
    fs.renameSync(tmp, dest);
    return { url, path: dest, bytes, sha256: hash.digest("hex"), records };
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** sha256 of a file (hex). */
export function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}
