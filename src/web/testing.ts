/**
 * Helpers for the web app's end-to-end tests (test/web-*.test.ts): Debian's Chromium driven by playwright-core
 * (never a downloaded browser), a colloquy server started as a user would, and screenshots kept for CI's log.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type BrowserContext, type Page, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const ROOT = path.resolve(import.meta.dirname, "../..");
export const SCREENSHOTS = path.join(ROOT, "test-output", "screenshots");

/** A skip reason when Debian's Chromium is missing (CI installs it with apt), else false. */
export function chromiumSkip(): string | false {
  return fs.existsSync(CHROMIUM) ? false : `needs Debian's Chromium at ${CHROMIUM} (apt-get install -y chromium; .ci/run installs it)`;
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  problems: string[]; // console errors, page errors and CSP violations seen so far
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  return {
    context,
    page,
    problems,
    close: async () => {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export interface Server {
  url: string;
  proc: ChildProcess;
  stderr: () => string;
  /** Stops it with `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `colloquy <args>` (a server that prints its URL on stderr) and waits until it listens. */
export function startServer(args: string[], timeoutMs = 30_000): Promise<Server> {
  const proc = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`colloquy ${args.join(" ")} did not start in ${timeoutMs} ms:\n${err}`));
    }, timeoutMs);
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      err += chunk;
      const m = /(http:\/\/[^\s/]+)\/(?:dashboard|eval)\b/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          proc,
          stderr: () => err,
          stop: (signal = "SIGTERM") => {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
            return exited;
          },
        });
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`colloquy ${args.join(" ")} exited with ${code} before listening:\n${err}`));
    });
  });
}

/** Saves a full-page screenshot under test-output/screenshots/ and prints its path, size and what it shows. */
export async function screenshot(page: Page, name: string, description: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const size = fs.statSync(file).size;
  console.log(`screenshot ${path.relative(ROOT, file)} (${(size / 1024).toFixed(0)} KiB): ${description}`);
  return file;
}
