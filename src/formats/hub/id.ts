/**
 * A model or adapter on the Hugging Face Hub, named as `org/name[@revision]` wherever colloquy takes a model or an
 * adapter. A name that is an existing path is a path (the caller checks that first); anything that is not exactly
 * one `org/name` pair (a path with more folders, "./x", "/x", "~/x", "x") is never an id.
 */

export interface HubRef {
  repo: string; // "org/name"
  revision: string; // a branch, a tag or a commit hash ("main" when none is given)
}

/** A Hub repo name part: letters, digits, "-", "_", "."; not starting with "-" or "."; no "--" or ".." (as the Hub). */
const PART = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,95}$/;
/** A revision: a branch or tag name (which may hold "/", e.g. "refs/pr/1") or a commit hash. */
const REVISION = /^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$/;

export const COMMIT_HASH = /^[0-9a-f]{40}$/;
export const DEFAULT_REVISION = "main";

/** `org/name[@revision]` → its parts; null when `spec` is not a Hub id. */
export function parseHubId(spec: string): HubRef | null {
  const at = spec.indexOf("@");
  const repo = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? DEFAULT_REVISION : spec.slice(at + 1);
  const parts = repo.split("/");
  if (parts.length !== 2 || !parts.every((p) => PART.test(p) && !p.includes("--") && !p.includes(".."))) return null;
  if (!REVISION.test(revision) || revision.includes("..") || revision.includes("//") || revision.endsWith("/")) return null;
  return { repo, revision };
}

/** As the user writes it: "org/name" for main, else "org/name@revision". */
export function hubLabel(ref: HubRef): string {
  return ref.revision === DEFAULT_REVISION ? ref.repo : `${ref.repo}@${ref.revision}`;
}

/**
 * A path from a repo's file listing, refused when joining it onto the cache could leave the snapshot folder
 * (as huggingface_hub's `_validate_relative_filename`): absolute, a drive or UNC path, a backslash, a ".." part.
 */
export function isSafeRepoPath(p: string): boolean {
  if (p === "" || p.startsWith("/") || p.includes("\\") || /^[A-Za-z]:/.test(p)) return false;
  return p.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}
