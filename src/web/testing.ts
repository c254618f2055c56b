/**
 * Helpers for the web app's end-to-end tests (test/web-*.test.ts, test/serve.test.ts): Debian's Chromium driven by
 * playwright-core (never a downloaded browser), a colloquy server started as a user would, screenshots kept for
 * CI's log, raw HTTP exchanges a well-behaved client would not make, and a process's memory.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
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

/**
 * A raw HTTP/1.1 exchange on a socket of its own: `write` sends what it likes (the socket is open); resolves with
 * what the server sent once a whole JSON error body has come (or the connection ended), and how many bytes the
 * client had written by then.
 */
export function rawExchange(url: string, write: (socket: net.Socket) => void): Promise<{ response: string; written: number }> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname.replace(/^\[|\]$/g, ""));
  let got = "";
  return new Promise((resolve) => {
    const done = () => {
      resolve({ response: got, written: socket.bytesWritten });
      socket.destroy();
    };
    socket.on("connect", () => write(socket));
    socket.on("data", (d) => {
      got += d.toString("latin1");
      if (/\r\n\r\n[\s\S]*\}/.test(got)) done();
    });
    socket.on("error", done);
    socket.on("close", done);
  });
}

/**
 * Writes a chunked body of 1 KiB chunks to `socket` until it closes or `maxBytes` are sent (then its last chunk).
 * It yields to the event loop every 64 KiB, as a real client does, so that it reads an early response (a 413): a
 * server that drains the rest fast keeps every write accepted, and a loop that never yields would see only the
 * connection's end.
 */
export function pumpChunks(socket: net.Socket, maxBytes = Number.POSITIVE_INFINITY): void {
  const chunk = `400\r\n${"x".repeat(0x400)}\r\n`;
  let sent = 0;
  const pump = () => {
    for (let burst = 0; !socket.destroyed; burst++) {
      if (sent >= maxBytes) return void socket.write("0\r\n\r\n");
      if (burst === 64) return void setImmediate(pump);
      sent += 0x400;
      if (!socket.write(chunk)) return void socket.once("drain", pump);
    }
  };
  pump();
}

/** A process's resident memory now and at its peak (VmRSS, VmHWM), in MiB; null where /proc is not there. */
export function memoryOf(pid: number): { rss: number; peak: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
    return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
  } catch {
    return null;
  }
}
