/**
 * A repo's files into the Hugging Face cache (`colloquy pull`, and the download on first use of an id). Built on
 * @huggingface/hub, as its snapshotDownload is: modelInfo resolves the revision to its commit, listFiles lists the
 * commit's files (paged), and the cache's paths are its getHFHubCachePath and getRepoFolderName. What it lacks is
 * added here: the choice of files (files.ts), transfers that resume and are checked before they are renamed into
 * place (transfer.ts), a progress bar, offline mode and one-line errors (http.ts). The ref (`refs/<revision>`) is
 * written last, once every file is in place, so an interrupted pull is never taken for a complete one.
 */
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../../util/errors.ts";
import { type HubKind, cachedSnapshot, linkBlob, missingFiles, withBlobLock, writeRef } from "./cache.ts";
import { type HubEnv, hubCache, hubEnv, loadHub, publicEndpoint } from "./env.ts";
import { fileSelector } from "./files.ts";
import { httpError, hubFetch } from "./http.ts";
import { COMMIT_HASH, type HubRef, hubLabel, isSafeRepoPath } from "./id.ts";
import { byteProgress, formatBytes } from "./progress.ts";
import { type BlobTarget, transferBlob } from "./transfer.ts";

export interface PullOptions {
  include?: readonly string[]; // globs; empty: the default files
  quiet?: boolean; // no progress on stderr
}

export interface PulledFile {
  path: string; // in the repo (and in the snapshot folder)
  size: number;
  blob: string; // blobs/<etag>
  status: "downloaded" | "resumed" | "cached"; // cached: already in the cache (this snapshot, or the blob of another)
  resumed_from?: number; // bytes already on disk from an interrupted attempt
}

export interface PullResult {
  repo: string;
  revision: string;
  commit: string;
  path: string; // the snapshot folder
  cache: string;
  files: PulledFile[];
  bytes_downloaded: number;
  seconds: number;
  offline: boolean;
}

export async function pullRepo(ref: HubRef, o: PullOptions = {}): Promise<PullResult> {
  const env = hubEnv();
  const { cacheDir, repoDir } = await hubCache(ref.repo);
  if (env.offline) return offlinePull(ref, cacheDir, repoDir, o);
  const t0 = Date.now();
  const f = hubFetch(env, ref);
  const hub = await loadHub();
  const hubUrl = env.endpoint;
  const commit = await hubCall(env, ref, async () => {
    const info = await hub.modelInfo({ name: ref.repo, revision: ref.revision, additionalFields: ["sha"], hubUrl, fetch: f });
    return info.sha;
  });
  if (typeof commit !== "string" || !COMMIT_HASH.test(commit))
    throw new UserError(
      "E_HUB_HTTP",
      `${publicEndpoint(hubUrl)} gave no commit for ${hubLabel(ref)}`,
      "is $HF_ENDPOINT a Hugging Face Hub?",
    );
  const wanted = fileSelector(o.include ?? []);
  const listed = await hubCall(env, ref, async () => {
    const out: { path: string; size: number; target: BlobTarget; blob: string }[] = [];
    for await (const e of hub.listFiles({ repo: { type: "model", name: ref.repo }, recursive: true, revision: commit, hubUrl, fetch: f })) {
      if (e.type !== "file" || !wanted(e.path)) continue;
      if (!isSafeRepoPath(e.path))
        throw new UserError("E_HUB_HTTP", `${hubLabel(ref)} lists a file outside its folder: ${JSON.stringify(e.path)}`);
      const target = { file: e.path, size: e.lfs?.size ?? e.size, sha256: e.lfs?.oid ?? null, gitOid: e.lfs ? null : (e.oid ?? null) };
      const blob = target.sha256 ?? target.gitOid;
      if (!blob || !/^[0-9a-f]{40,64}$/.test(blob)) throw new UserError("E_HUB_HTTP", `${hubLabel(ref)} lists ${e.path} without its hash`);
      out.push({ path: e.path, size: target.size, target, blob });
    }
    return out;
  });
  if (listed.length === 0) {
    throw new UserError(
      "E_HUB_NOT_FOUND",
      `${hubLabel(ref)} has no file ${o.include?.length ? `matching ${o.include.join(", ")}` : "colloquy loads (config.json, *.safetensors, tokenizer files)"}`,
      o.include?.length ? "check the --include globs" : "pick files with --include",
    );
  }

  const snapshot = path.join(repoDir, "snapshots", commit);
  const blobPath = (name: string) => path.join(repoDir, "blobs", name);
  const files: PulledFile[] = [];
  const todo: typeof listed = [];
  for (const e of listed) {
    const pointer = path.join(snapshot, e.path);
    if (!fs.existsSync(pointer) && fs.existsSync(blobPath(e.blob))) linkBlob(blobPath(e.blob), pointer);
    if (fs.existsSync(pointer)) files.push({ path: e.path, size: e.size, blob: `blobs/${e.blob}`, status: "cached" });
    else todo.push(e);
  }
  const partial = (e: (typeof listed)[number]) => {
    const p = `${blobPath(e.blob)}.incomplete`;
    return fs.existsSync(p) ? Math.min(fs.statSync(p).size, e.size) : 0;
  };
  const total = todo.reduce((s, e) => s + e.size, 0);
  const label = hubLabel(ref);
  if (todo.length && !o.quiet)
    process.stderr.write(
      `colloquy: downloading ${todo.length} file(s) of ${label} (${formatBytes(total)}) from ${publicEndpoint(hubUrl)} into ${cacheDir}\n`,
    );
  const bar = byteProgress(
    label,
    total,
    todo.reduce((s, e) => s + partial(e), 0),
    o,
  );
  let downloaded = 0;
  try {
    for (const e of todo) {
      fs.mkdirSync(path.join(repoDir, "blobs"), { recursive: true });
      bar.file(e.path);
      const lock = path.join(cacheDir, ".locks", path.basename(repoDir), `${e.blob}.colloquy-lock`);
      const r = await withBlobLock(lock, async () => {
        if (fs.existsSync(blobPath(e.blob))) return { received: 0, resumedFrom: -1 }; // another process finished it
        return transferBlob({
          fetch: f,
          url: `${hubUrl}/${ref.repo}/resolve/${commit}/${e.path.split("/").map(encodeURIComponent).join("/")}`,
          blobPath: blobPath(e.blob),
          target: e.target,
          label,
          onBytes: (n) => bar.add(n),
        });
      });
      linkBlob(blobPath(e.blob), path.join(snapshot, e.path));
      bar.done(e.path);
      downloaded += r.received;
      const status = r.resumedFrom < 0 ? "cached" : r.resumedFrom > 0 ? "resumed" : "downloaded";
      files.push({
        path: e.path,
        size: e.size,
        blob: `blobs/${e.blob}`,
        status,
        ...(r.resumedFrom > 0 ? { resumed_from: r.resumedFrom } : {}),
      });
    }
  } finally {
    bar.stop();
  }
  writeRef(repoDir, ref.revision, commit);
  files.sort((a, b) => (a.path < b.path ? -1 : 1));
  return {
    repo: ref.repo,
    revision: ref.revision,
    commit,
    path: snapshot,
    cache: cacheDir,
    files,
    bytes_downloaded: downloaded,
    seconds: (Date.now() - t0) / 1000,
    offline: false,
  };
}

/** With HF_HUB_OFFLINE=1: what the cache holds, or a one-line error naming what it lacks. Nothing is fetched. */
function offlinePull(ref: HubRef, cacheDir: string, repoDir: string, o: PullOptions): PullResult {
  const snap = cachedSnapshot(repoDir, ref);
  if (!snap) throw offlineError(ref, cacheDir, [notCached(repoDir, ref)]);
  const wanted = fileSelector(o.include ?? []);
  const files = listSnapshot(snap.dir).filter(wanted);
  const lacking = o.include?.length ? (files.length ? [] : o.include) : missingFiles(snap.dir, guessKind(snap.dir));
  if (lacking.length)
    throw offlineError(
      ref,
      cacheDir,
      lacking.map((m) => `snapshots/${snap.commit}/${m}`),
    );
  return {
    repo: ref.repo,
    revision: ref.revision,
    commit: snap.commit,
    path: snap.dir,
    cache: cacheDir,
    files: files.map((p) => {
      const full = path.join(snap.dir, p);
      return { path: p, size: fs.statSync(full).size, blob: path.relative(repoDir, fs.realpathSync(full)), status: "cached" as const };
    }),
    bytes_downloaded: 0,
    seconds: 0,
    offline: true,
  };
}

/** What the cache lacks before a reference's snapshot can even be found: its ref, or its snapshot folder. */
export function notCached(repoDir: string, ref: HubRef): string {
  const name = path.basename(repoDir);
  if (COMMIT_HASH.test(ref.revision) || fs.existsSync(path.join(repoDir, "refs", ref.revision))) {
    const commit = COMMIT_HASH.test(ref.revision) ? ref.revision : fs.readFileSync(path.join(repoDir, "refs", ref.revision), "utf8").trim();
    return `${name}/snapshots/${commit}/`;
  }
  return `${name}/refs/${ref.revision}`;
}

export function offlineError(ref: HubRef, cacheDir: string, missing: readonly string[]): UserError {
  return new UserError(
    "E_HUB_OFFLINE",
    `${hubLabel(ref)} is not in the Hugging Face cache ${cacheDir} and HF_HUB_OFFLINE=1 forbids downloading it (missing: ${missing.join(", ")})`,
    `unset HF_HUB_OFFLINE and run colloquy pull ${hubLabel(ref)}, or point HF_HUB_CACHE at a cache that has it`,
  );
}

/** An adapter's snapshot has adapter_config.json; anything else is read as a model. */
export function guessKind(dir: string): HubKind {
  return fs.existsSync(path.join(dir, "adapter_config.json")) ? "adapter" : "model";
}

function listSnapshot(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listSnapshot(dir, p));
    else out.push(p);
  }
  return out.sort();
}

/** Runs a call into @huggingface/hub; an answer it cannot read becomes a one-line error (ours pass through). */
async function hubCall<T>(env: HubEnv, ref: HubRef, fn: () => Promise<T>): Promise<T> {
  const hub = await loadHub();
  try {
    return await fn();
  } catch (e) {
    if (e instanceof hub.HubApiError)
      throw httpError(env, ref, new Response(null, { status: e.statusCode }), new URL(e.url || env.endpoint));
    if (e instanceof hub.InvalidApiResponseFormatError || e instanceof SyntaxError)
      throw new UserError(
        "E_HUB_HTTP",
        `${publicEndpoint(env.endpoint)} gave an answer that is not the Hub's for ${hubLabel(ref)}`,
        "is $HF_ENDPOINT a Hugging Face Hub?",
      );
    throw e;
  }
}
