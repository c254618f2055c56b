/**
 * A Hugging Face Hub of the tests' own (node:http: the Hub on 127.0.0.1, its CDN on localhost): the endpoints @huggingface/hub and huggingface_hub
 * call to download a model, answering as the Hub does.
 *
 *   GET  /api/models/<org>/<name>/revision/<rev>   {_id, id, sha, siblings, ...}; 404 RepoNotFound / RevisionNotFound
 *   GET  /api/models/<org>/<name>/tree/<rev>       {type, oid, size, path, lfs?}[], paged with a Link: rel="next" header
 *   GET|HEAD /<org>/<name>/resolve/<rev>/<file>    an LFS file: 302 to the CDN (another host) with
 *                                                  X-Repo-Commit, X-Linked-Etag, X-Linked-Size; another file: 307 to
 *                                                  /api/resolve-cache/... (relative), which serves it with its ETag
 *   GET|HEAD <cdn>/blobs/<sha256>                  the bytes, with Range (206, Content-Range)
 *
 * A repo with a token is private (without it: 401 RepoNotFound, as the Hub hides private repos) or gated (its API
 * answers anyone, its files 401 GatedRepo without a token); another token is 401 everywhere. Faults, each for the
 * next request(s) of one file: "cut" (the socket is destroyed after `after` bytes), "stall" (`after` bytes, then
 * nothing until the client goes away) and "corrupt" (one byte flipped). Every request is logged with the body
 * bytes actually sent and the Authorization header it carried.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";

export interface FakeFile {
  path: string;
  data: Buffer;
  lfs: boolean;
  oid: string; // git blob sha1
  sha256: string;
}

export interface FakeRepo {
  id: string;
  commit: string;
  refs: Record<string, string>;
  files: FakeFile[];
  token: string | null;
  access: "private" | "gated"; // what a token protects: everything, or the files only
}

export interface Fault {
  kind: "cut" | "stall" | "corrupt";
  after: number; // bytes of the body sent before the fault (corrupt: the flipped byte's offset)
  times: number; // requests it applies to
}

export interface LoggedRequest {
  server: "hub" | "cdn";
  method: string;
  path: string;
  range: string | null;
  auth: string | null;
  status: number;
  file: string | null; // the repo file served (resolve-cache or CDN)
  bytes: number; // body bytes sent
}

const PAGE = 3; // tree entries per page, so listings page

export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly log: LoggedRequest[] = [];
  private readonly faults = new Map<string, Fault>(); // "<repo>:<file>" → fault
  private stallWaiters: ((file: string) => void)[] = [];

  private constructor(
    private readonly hub: http.Server,
    private readonly cdn: http.Server,
  ) {}

  static async start(): Promise<FakeHub> {
    const hub = http.createServer();
    const cdn = http.createServer();
    const fake = new FakeHub(hub, cdn);
    hub.on("request", (req, res) => fake.onHub(req, res));
    cdn.on("request", (req, res) => fake.onCdn(req, res));
    // the CDN on another host name, as the Hub's is: clients must not send it the token
    await Promise.all([new Promise<void>((r) => hub.listen(0, "127.0.0.1", r)), new Promise<void>((r) => cdn.listen(0, "localhost", r))]);
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
  }

  get cdnUrl(): string {
    return `http://localhost:${(this.cdn.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.hub.closeAllConnections();
    this.cdn.closeAllConnections();
    await Promise.all([this.hub, this.cdn].map((s) => new Promise((r) => s.close(r))));
  }

  /** A repo from files (LFS: *.safetensors, as the Hub stores them); its commit is a hash of its content. */
  addRepo(
    id: string,
    files: Record<string, Buffer | string>,
    o: { token?: string; access?: FakeRepo["access"]; refs?: string[] } = {},
  ): FakeRepo {
    const list = Object.entries(files)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([p, d]) => {
        const data = Buffer.isBuffer(d) ? d : Buffer.from(d);
        const oid = crypto.createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
        return { path: p, data, lfs: p.endsWith(".safetensors"), oid, sha256: crypto.createHash("sha256").update(data).digest("hex") };
      });
    const commit = crypto
      .createHash("sha1")
      .update(id + list.map((f) => f.path + f.oid).join())
      .digest("hex");
    const refs = Object.fromEntries(["main", ...(o.refs ?? [])].map((r) => [r, commit]));
    const repo = { id, commit, refs, files: list, token: o.token ?? null, access: o.access ?? "private" };
    this.repos.set(id, repo);
    return repo;
  }

  /** A repo from a folder's files (recursively). */
  addFolder(id: string, dir: string, o: { token?: string; access?: FakeRepo["access"] } = {}): FakeRepo {
    const files: Record<string, Buffer> = {};
    const walk = (rel: string) => {
      for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
        const p = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(p);
        else files[p] = fs.readFileSync(path.join(dir, p));
      }
    };
    walk("");
    return this.addRepo(id, files, o);
  }

  fault(repo: string, file: string, f: Omit<Fault, "times"> & { times?: number }): void {
    this.faults.set(`${repo}:${file}`, { times: 1, ...f });
  }

  /** Resolves with the file's name when a "stall" fault has sent its bytes and holds the connection. */
  stalled(): Promise<string> {
    return new Promise((r) => this.stallWaiters.push(r));
  }

  /** Body bytes sent of one file, over every request (and how many requests, with their Range headers). */
  served(file: string): { bytes: number; requests: LoggedRequest[] } {
    const requests = this.log.filter((l) => l.file === file && l.method === "GET");
    return { bytes: requests.reduce((s, l) => s + l.bytes, 0), requests };
  }

  /** Answers one request to the Hub (true: answered, for `return done(...)` in each branch). */
  private onHub(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const url = new URL(req.url ?? "/", this.url);
    const p = decodeURIComponent(url.pathname);
    const entry = this.entry("hub", req);
    const done = (status: number, body?: unknown, headers: Record<string, string> = {}): true => {
      entry.status = status;
      const text = body === undefined ? "" : JSON.stringify(body);
      res.writeHead(status, { ...(text ? { "Content-Type": "application/json" } : {}), ...headers });
      res.end(req.method === "HEAD" ? undefined : text);
      return true;
    };
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(p);
    if (m) {
      const repo = this.repoFor(m[1], m[3], req, done, "api");
      if (!repo) return true;
      if (m[2] === "revision") {
        return done(200, {
          _id: repo.commit.slice(0, 24),
          id: repo.id,
          sha: repo.commit,
          private: repo.token !== null && repo.access === "private",
          gated: repo.token !== null && repo.access === "gated" ? "manual" : false,
          lastModified: "2024-01-01T00:00:00.000Z",
          siblings: repo.files.map((f) => ({ rfilename: f.path })),
        });
      }
      const cursor = Number(url.searchParams.get("cursor") ?? 0);
      const page = repo.files.slice(cursor, cursor + PAGE).map((f) => ({
        type: "file",
        oid: f.oid,
        size: f.data.length,
        path: f.path,
        ...(f.lfs ? { lfs: { oid: f.sha256, size: f.data.length, pointerSize: 134 } } : {}),
      }));
      const next = new URL(url);
      next.searchParams.set("cursor", String(cursor + PAGE));
      return done(200, page, cursor + PAGE < repo.files.length ? { Link: `<${next.href}>; rel="next"` } : {});
    }
    m = /^\/(?:api\/resolve-cache\/models\/)?([^/]+\/[^/]+)\/(?:resolve\/)?([^/]+)\/(.+)$/.exec(p);
    if (m && (p.includes("/resolve/") || p.startsWith("/api/resolve-cache/"))) {
      const repo = this.repoFor(m[1], m[2], req, done, "file");
      if (!repo) return true;
      const file = repo.files.find((f) => f.path === m![3]);
      if (!file) return done(404, { error: "Entry not found" }, { "X-Error-Code": "EntryNotFound" });
      const commit = repo.refs[m[2]] ?? m[2];
      const meta = { "X-Repo-Commit": commit };
      if (file.lfs) {
        return done(302, undefined, {
          ...meta,
          Location: `${this.cdnUrl}/blobs/${file.sha256}?repo=${encodeURIComponent(repo.id)}&file=${encodeURIComponent(file.path)}`,
          "X-Linked-Etag": `"${file.sha256}"`,
          "X-Linked-Size": String(file.data.length),
          ETag: `"${file.oid}"`,
        });
      }
      if (p.includes("/resolve/"))
        return done(307, undefined, {
          ...meta,
          Location: `/api/resolve-cache/models/${repo.id}/${commit}/${file.path}`,
          ETag: `"${file.oid}"`,
        });
      this.serveBytes(req, res, entry, repo, file, { ...meta, ETag: `"${file.oid}"` });
      return true;
    }
    return done(404, { error: "Not found" });
  }

  private onCdn(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", this.cdnUrl);
    const entry = this.entry("cdn", req);
    const repo = this.repos.get(url.searchParams.get("repo") ?? "");
    const file = repo?.files.find((f) => f.path === url.searchParams.get("file") && url.pathname === `/blobs/${f.sha256}`);
    if (!repo || !file) {
      entry.status = 403;
      res.writeHead(403).end("AccessDenied");
      return;
    }
    this.serveBytes(req, res, entry, repo, file, { ETag: `"${file.sha256}"` });
  }

  private entry(server: "hub" | "cdn", req: http.IncomingMessage): LoggedRequest {
    const e: LoggedRequest = {
      server,
      method: req.method ?? "GET",
      path: req.url ?? "/",
      range: req.headers.range ?? null,
      auth: req.headers.authorization ?? null,
      status: 0,
      file: null,
      bytes: 0,
    };
    this.log.push(e);
    return e;
  }

  /** The repo a request names, or an answer as the Hub gives it (401 without the right token, 404s). */
  private repoFor(
    id: string,
    rev: string,
    req: http.IncomingMessage,
    done: (s: number, b?: unknown, h?: Record<string, string>) => true,
    asks: "api" | "file",
  ): FakeRepo | null {
    const repo = this.repos.get(id);
    const auth = req.headers.authorization;
    const locked = repo?.token != null && (repo.access === "private" || asks === "file");
    const refused = !repo
      ? done(404, { error: "Repository not found" }, { "X-Error-Code": "RepoNotFound" })
      : repo.token !== null && auth && auth !== `Bearer ${repo.token}`
        ? done(401, { error: "Invalid credentials in Authorization header" })
        : locked && !auth && repo.access === "private"
          ? done(401, { error: "Invalid username or password." }, { "X-Error-Code": "RepoNotFound" })
          : locked && !auth
            ? done(401, { error: `Access to model ${id} is restricted.` }, { "X-Error-Code": "GatedRepo" })
            : !repo.refs[rev] && rev !== repo.commit
              ? done(404, { error: `Invalid rev id: ${rev}` }, { "X-Error-Code": "RevisionNotFound" })
              : false;
    return refused ? null : (repo ?? null);
  }

  private serveBytes(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    entry: LoggedRequest,
    repo: FakeRepo,
    file: FakeFile,
    headers: Record<string, string>,
  ): void {
    entry.file = file.path;
    const size = file.data.length;
    let [start, end] = [0, size - 1];
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size) {
        entry.status = 416;
        res.writeHead(416, { "Content-Range": `bytes */${size}` }).end();
        return;
      }
    }
    let body = file.data.subarray(start, end + 1);
    const common = {
      ...headers,
      "Accept-Ranges": "bytes",
      "Content-Type": "application/octet-stream",
      "Content-Length": String(body.length),
    };
    entry.status = range ? 206 : 200;
    res.writeHead(entry.status, range ? { ...common, "Content-Range": `bytes ${start}-${end}/${size}` } : common);
    if (req.method === "HEAD") return void res.end();
    const key = `${repo.id}:${file.path}`;
    const fault = this.faults.get(key);
    if (fault && --fault.times <= 0) this.faults.delete(key);
    if (fault?.kind === "corrupt") {
      body = Buffer.from(body);
      const at = Math.min(Math.max(fault.after - start, 0), body.length - 1);
      body[at] ^= 0xff;
    }
    if (fault && fault.kind !== "corrupt") {
      const part = body.subarray(0, Math.max(0, fault.after - start));
      res.write(part, () => {
        entry.bytes += part.length;
        if (fault.kind === "cut") req.socket.destroy();
        else for (const w of this.stallWaiters.splice(0)) w(file.path);
      });
      return;
    }
    res.end(body, () => {
      entry.bytes += body.length;
    });
  }
}

/** Every file and symlink under `dir` as "rel/path" or "rel/path -> target", sorted (the cache's layout, as `ls -R` shows it). */
export function listTree(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isSymbolicLink()) out.push(`${p} -> ${fs.readlinkSync(path.join(dir, p))}`);
    else if (e.isDirectory()) out.push(...listTree(dir, p));
    else out.push(p);
  }
  return out.sort();
}
