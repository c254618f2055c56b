/**
 * huggingface_hub's cache, read and written exactly as Python lays it out, so that either side uses what the
 * other downloaded:
 *
 *   <cache>/models--org--name/
 *     refs/<revision>              the commit hash a branch or tag pointed to (no newline)
 *     blobs/<etag>                 each file's bytes once: named by its sha256 (LFS files) or git blob sha1
 *     snapshots/<commit>/<path>    relative symlinks to ../../blobs/<etag> (deeper paths: one more ../ per folder)
 *
 * Downloads in progress are `blobs/<etag>.incomplete` (as Python names them); colloquy's own lock beside Python's
 * in `.locks/` keeps two colloquy processes from writing one blob at once.
 */
import fs from "node:fs";
import path from "node:path";
import { lockIsStale, writeFileAtomic } from "../../util/fs.ts";
import { COMMIT_HASH, type HubRef } from "./id.ts";

export type HubKind = "model" | "adapter";

/** The snapshot a reference points to in the cache: its commit and folder; null when the cache has none. */
export function cachedSnapshot(repoDir: string, ref: HubRef): { commit: string; dir: string } | null {
  let commit: string | null = null;
  if (COMMIT_HASH.test(ref.revision)) commit = ref.revision;
  else {
    try {
      commit = fs.readFileSync(path.join(repoDir, "refs", ref.revision), "utf8").trim();
    } catch {
      return null;
    }
  }
  const dir = path.join(repoDir, "snapshots", commit);
  return fs.existsSync(dir) ? { commit, dir } : null;
}

/** What colloquy needs of a snapshot to load it as `kind`, relative to the snapshot, that it lacks (empty: complete). */
export function missingFiles(dir: string, kind: HubKind): string[] {
  const has = (f: string) => fs.existsSync(path.join(dir, f)); // follows the symlink: a dangling one is missing
  if (kind === "adapter") return ["adapter_config.json", "adapter_model.safetensors"].filter((f) => !has(f));
  const missing = has("config.json") ? [] : ["config.json"];
  const index = "model.safetensors.index.json";
  if (has(index)) {
    let shards: string[] = [];
    try {
      const map = (JSON.parse(fs.readFileSync(path.join(dir, index), "utf8")) as { weight_map?: Record<string, string> }).weight_map;
      shards = [...new Set(Object.values(map ?? {}))];
    } catch {
      return [...missing, `${index} (unreadable)`];
    }
    return [...missing, ...shards.filter((s) => !has(s))];
  }
  return has("model.safetensors") ? missing : [...missing, "model.safetensors"];
}

/** Points `snapshots/<commit>/<file>` at its blob with a relative symlink, as huggingface_hub does (a copy where links fail). */
export function linkBlob(blobPath: string, pointerPath: string): void {
  fs.mkdirSync(path.dirname(pointerPath), { recursive: true });
  fs.rmSync(pointerPath, { force: true });
  try {
    fs.symlinkSync(path.relative(path.dirname(pointerPath), blobPath), pointerPath);
  } catch {
    fs.copyFileSync(blobPath, pointerPath);
  }
}

/** Records that `revision` (a branch or tag) is at `commit`, as Python writes refs: the hash alone, no newline. */
export function writeRef(repoDir: string, revision: string, commit: string): void {
  if (revision === commit) return;
  writeFileAtomic(path.join(repoDir, "refs", revision), commit);
}

/**
 * Runs `fn` holding colloquy's lock on one blob (another colloquy process writing it waits, then finds it done).
 * A lock whose owner process is gone is taken over.
 */
export async function withBlobLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  for (;;) {
    try {
      fs.writeFileSync(lockPath, String(process.pid), { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (lockIsStale(lockPath)) fs.rmSync(lockPath, { force: true });
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}
