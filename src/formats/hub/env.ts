/**
 * The Hub settings huggingface_hub reads from the environment, read the same way: the endpoint (`$HF_ENDPOINT`),
 * the token (`$HF_TOKEN`, else `$HUGGING_FACE_HUB_TOKEN`, else the file `huggingface-cli login` writes), offline
 * mode (`$HF_HUB_OFFLINE`) and the cache folder (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
 * `~/.cache/huggingface/hub`; computed by @huggingface/hub's own getHFHubCachePath).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

type HubModule = typeof import("@huggingface/hub");

let hubModule: Promise<HubModule> | null = null;

/** @huggingface/hub, loaded on first use (it takes a few hundred ms to import; most runs name no Hub id). */
export function loadHub(): Promise<HubModule> {
  hubModule ??= import("@huggingface/hub");
  return hubModule;
}

export const DEFAULT_ENDPOINT = "https://huggingface.co";

export interface HubEnv {
  endpoint: string; // no trailing slash
  token: string | null; // never printed: messages name only where it came from
  tokenFrom: string | null; // "$HF_TOKEN", or the token file's path
  offline: boolean;
}

/** huggingface_hub's `_is_true`: "1", "ON", "YES", "TRUE" in any case. */
function isTrue(v: string | undefined): boolean {
  return ["1", "ON", "YES", "TRUE"].includes((v ?? "").trim().toUpperCase());
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
function hfHome(env: NodeJS.ProcessEnv): string {
  return env.HF_HOME || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "huggingface");
}

export function hubEnv(env: NodeJS.ProcessEnv = process.env): HubEnv {
  const endpoint = (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, "");
  let token: string | null = null;
  let tokenFrom: string | null = null;
  for (const name of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]) {
    if (!token && env[name]?.trim()) [token, tokenFrom] = [env[name]!.trim(), `$${name}`];
  }
  if (!token) {
    const file = env.HF_TOKEN_PATH || path.join(hfHome(env), "token");
    try {
      const t = fs.readFileSync(file, "utf8").trim();
      if (t) [token, tokenFrom] = [t, file];
    } catch {
      // no token file: anonymous
    }
  }
  return { endpoint, token, tokenFrom, offline: isTrue(env.HF_HUB_OFFLINE) };
}

/** The endpoint as it may be printed: its origin and path, without any user:password. */
export function publicEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
  } catch {
    return "$HF_ENDPOINT";
  }
}

/** The Hub cache folder, and a repo's folder in it ("models--org--name"), as @huggingface/hub computes them. */
export async function hubCache(repo: string): Promise<{ cacheDir: string; repoDir: string }> {
  const hub = await loadHub();
  const cacheDir = hub.getHFHubCachePath();
  return { cacheDir, repoDir: path.join(cacheDir, hub.getRepoFolderName({ type: "model", name: repo })) };
}
