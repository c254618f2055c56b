/**
 * Every request to the Hub goes through one fetch: @huggingface/hub's calls (it takes a `fetch` parameter) and
 * colloquy's own transfers. It adds the token as a bearer header to requests to the endpoint only (a redirect to a
 * CDN on another origin never carries it), and turns what fails into one-line user errors that say what to do and
 * never contain the token: 401/403 (gated or private), 404 (repo, revision or file), other HTTP statuses, and
 * connections refused or cut.
 */
import { UserError } from "../../util/errors.ts";
import { type HubEnv, publicEndpoint } from "./env.ts";
import { DEFAULT_REVISION, type HubRef, hubLabel } from "./id.ts";

/** A fetch for one repo's requests; 3xx answers come back as they are when the request asked for `redirect: "manual"`. */
export function hubFetch(env: HubEnv, ref: HubRef): typeof fetch {
  const origin = new URL(env.endpoint).origin;
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    headers.delete("Authorization");
    if (env.token && url.origin === origin) headers.set("Authorization", `Bearer ${env.token}`);
    let res: Response;
    try {
      res = await fetch(url, { ...init, headers });
    } catch (e) {
      throw connectionError(e, url);
    }
    const redirect = res.status >= 300 && res.status < 400 && init?.redirect === "manual";
    if (!res.ok && !redirect) {
      await res.body?.cancel().catch(() => {});
      throw httpError(env, ref, res, url);
    }
    return res;
  };
}

/** What a URL asks for, for messages: the repo (its revision API), its file listing, or one of its files. */
function requested(url: URL, ref: HubRef): { kind: "repo" | "listing" | "file"; file: string | null } {
  const p = decodeURIComponent(url.pathname);
  if (p.includes(`/api/models/${ref.repo}/revision/`)) return { kind: "repo", file: null };
  if (p.includes(`/api/models/${ref.repo}/tree/`)) return { kind: "listing", file: null };
  const m = /\/resolve\/[^/]+\/(.+)$/.exec(p);
  return { kind: "file", file: m ? m[1] : null };
}

export function httpError(env: HubEnv, ref: HubRef, res: Response, url: URL): UserError {
  const where = publicEndpoint(env.endpoint);
  const label = hubLabel(ref);
  const code = res.headers.get("X-Error-Code");
  const asked = requested(url, ref);
  const file = asked.file ? ` file ${asked.file}` : "";
  const tokenHint = env.token
    ? `the token from ${env.tokenFrom} was sent: set HF_TOKEN to a token that can read ${ref.repo}`
    : `no token was sent: set HF_TOKEN to a Hugging Face token that can read ${ref.repo}`;
  if (res.status === 401 && code === "RepoNotFound") {
    return new UserError(
      "E_HUB_NOT_FOUND",
      `no model repo ${ref.repo} on ${where}, or it is private or gated (HTTP 401)`,
      `check the name; for a private or gated model, ${tokenHint}`,
    );
  }
  if (res.status === 401 || res.status === 403) {
    const why = code === "GatedRepo" ? "the model is gated" : "the model is gated or private, or the token is not valid";
    const accept = code === "GatedRepo" || res.status === 403 ? ` (and accept its terms on ${where}/${ref.repo})` : "";
    return new UserError(
      "E_HUB_ACCESS",
      `${label}${file}: access denied by ${where} (HTTP ${res.status}): ${why}`,
      `${tokenHint}${accept}`,
    );
  }
  if (res.status === 404) {
    const missing =
      code === "RepoNotFound" || code === "RevisionNotFound" || code === "EntryNotFound"
        ? code
        : asked.kind === "file"
          ? "EntryNotFound"
          : asked.kind === "repo" && ref.revision === DEFAULT_REVISION
            ? "RepoNotFound"
            : "RevisionNotFound";
    if (missing === "RepoNotFound")
      return new UserError("E_HUB_NOT_FOUND", `no model repo ${ref.repo} on ${where} (HTTP 404)`, "check the org/name spelling");
    if (missing === "RevisionNotFound")
      return new UserError(
        "E_HUB_NOT_FOUND",
        `${ref.repo} has no revision "${ref.revision}" on ${where} (HTTP 404)`,
        "name a branch, a tag or a commit",
      );
    return new UserError(
      "E_HUB_NOT_FOUND",
      `${label} has no${file || " such file"} on ${where} (HTTP 404)`,
      "check --include and the revision",
    );
  }
  const later = res.status === 429 || res.status >= 500 ? "try again later" : undefined;
  return new UserError("E_HUB_HTTP", `${where} answered HTTP ${res.status} for ${label}${file || ` (${asked.kind})`}`, later);
}

/** A network failure before any answer: refused, unknown host, reset, timed out. */
function connectionError(e: unknown, url: URL): UserError {
  const cause = (e as { cause?: { code?: string } }).cause;
  const code = cause?.code ?? (e as { code?: string }).code;
  const why =
    code === "ECONNREFUSED"
      ? "connection refused"
      : code === "ENOTFOUND" || code === "EAI_AGAIN"
        ? "unknown host"
        : code
          ? code
          : ((e as Error).message ?? "network error");
  return new UserError(
    "E_HUB_CONNECTION",
    `cannot connect to ${url.origin} (${why})`,
    "check $HF_ENDPOINT and the network, or set HF_HUB_OFFLINE=1 to use the Hugging Face cache only",
  );
}
