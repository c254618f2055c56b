import fs from "node:fs";
import path from "node:path";
import { UserError } from "./errors.ts";

/** Writes a file so that readers see the old content or the new one, never half of it (temp file, fsync, rename). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, typeof data === "string" ? Buffer.from(data, "utf8") : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Fails with a one-line user error naming the file when it does not exist. */
export function requireFile(file: string, what: string, hint?: string): void {
  if (!fs.existsSync(file)) throw new UserError("E_NOT_FOUND", `${what} not found: ${file}`, hint);
  if (!fs.statSync(file).isFile()) throw new UserError("E_NOT_FILE", `${what} is not a file: ${file}`, hint);
}

/** Reads and parses a JSON file; a missing file or bad JSON is a user error that names the file. */
export function readJsonFile(file: string, what: string): unknown {
  requireFile(file, what);
  const text = fs.readFileSync(file, "utf8");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError("E_BAD_JSON", `${what} ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Whether a pid lock file (its owner's pid as text) is stale: its owner is gone, or it holds no pid and is older than 10 s. */
export function lockIsStale(lockPath: string): boolean {
  try {
    const owner = Number(fs.readFileSync(lockPath, "utf8"));
    if (!Number.isInteger(owner) || owner <= 0) return Date.now() - fs.statSync(lockPath).mtimeMs > 10_000;
    process.kill(owner, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "EPERM"; // ESRCH: the owner is gone; ENOENT: released meanwhile
  }
}
