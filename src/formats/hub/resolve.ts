/**
 * What a model or adapter name means where colloquy opens one: an existing path is itself; an `org/name[@revision]`
 * Hub id is its snapshot folder in the Hugging Face cache — used as it is when it has what `kind` needs (no network),
 * else downloaded first (the files a pull takes by default, its progress on stderr), or, with HF_HUB_OFFLINE=1, a
 * one-line error naming what is missing. Anything else is returned unchanged, for the loader to report as a missing
 * path.
 */
import fs from "node:fs";
import { UserError, isUserError } from "../../util/errors.ts";
import { type HubKind, cachedSnapshot, missingFiles } from "./cache.ts";
import { hubCache, hubEnv } from "./env.ts";
import { parseHubId } from "./id.ts";
import { notCached, offlineError, pullRepo } from "./pull.ts";

export type { HubKind } from "./cache.ts";

export async function resolveModelSource(spec: string, kind: HubKind, o: { quiet?: boolean } = {}): Promise<string> {
  if (fs.existsSync(spec)) return spec;
  const ref = parseHubId(spec);
  if (!ref) return spec;
  const { cacheDir, repoDir } = await hubCache(ref.repo);
  const snap = cachedSnapshot(repoDir, ref);
  const missing = snap ? missingFiles(snap.dir, kind) : [notCached(repoDir, ref)];
  if (snap && missing.length === 0) return snap.dir;
  try {
    if (hubEnv().offline) throw offlineError(ref, cacheDir, snap ? missing.map((m) => `snapshots/${snap.commit}/${m}`) : missing);
    return (await pullRepo(ref, { quiet: o.quiet })).path;
  } catch (e) {
    // a mistyped local path reads as a Hub id too: say that it was looked for on disk first
    if (isUserError(e) && ["E_HUB_OFFLINE", "E_HUB_NOT_FOUND", "E_HUB_CONNECTION"].includes(e.code) && !snap)
      throw new UserError(e.code, `no file or folder ${spec}, and ${e.message}`, e.hint);
    throw e;
  }
}
