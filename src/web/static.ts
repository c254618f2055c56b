/**
 * Static files: the pages under public/ (plain HTML, ES modules and CSS, no bundler) and uPlot, read from its
 * npm package (node_modules/uplot/dist) at runtime. Only names that exist in those folders are served; each file is
 * read once and kept.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Hono } from "hono";

const PUBLIC = path.join(import.meta.dirname, "public");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/** The folder of uPlot's built files. */
export function uplotDist(): string {
  return path.dirname(createRequire(import.meta.url).resolve("uplot"));
}

/** URL path → file on disk: every file of public/, and uPlot's ES module and stylesheet under /vendor/. */
export function staticFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of fs.readdirSync(PUBLIC)) {
    if (TYPES[path.extname(name)] && fs.statSync(path.join(PUBLIC, name)).isFile()) files.set(`/${name}`, path.join(PUBLIC, name));
  }
  const dist = uplotDist();
  files.set("/vendor/uPlot.esm.js", path.join(dist, "uPlot.esm.js"));
  files.set("/vendor/uPlot.min.css", path.join(dist, "uPlot.min.css"));
  return files;
}

export function mountStatic(app: Hono): void {
  const files = staticFiles();
  const cache = new Map<string, Buffer>();
  app.get("*", async (c, next) => {
    const file = files.get(c.req.path);
    if (!file) return next();
    let body = cache.get(file);
    if (!body) cache.set(file, (body = fs.readFileSync(file)));
    return c.body(new Uint8Array(body), 200, { "Content-Type": TYPES[path.extname(file)], "Cache-Control": "no-cache" });
  });
}
