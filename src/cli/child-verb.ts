/**
 * A verb run in its own process (`node bin/colloquy.mjs <args>`), its stdout dropped and its stderr written to a
 * log file: for commands that run several verbs at once (experiments --jobs), since the engine computes on the
 * thread that calls it and one process uses one core.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.ts";

const BIN = path.resolve(import.meta.dirname, "../../bin", "colloquy.mjs");

export function runVerbInChild(args: string[], logFile: string): Promise<void> {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const log = fs.openSync(logFile, "w");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "ignore", log] });
    child.on("error", (err) => {
      fs.closeSync(log);
      reject(err);
    });
    child.on("close", (code, signal) => {
      fs.closeSync(log);
      if (code === 0) return resolve();
      const last = fs.readFileSync(logFile, "utf8").trim().split("\n").at(-1) ?? "";
      reject(
        new UserError(
          "E_CHILD_FAILED",
          `colloquy ${args.slice(0, 2).join(" ")} … ${signal ? `was killed (${signal})` : `exited with ${code}`}: ${last}`,
          `its whole log is ${logFile}; rerun the same command to resume`,
        ),
      );
    });
  });
}

/** Runs tasks with at most `jobs` of them at once; the first failure is thrown after the running ones end. */
export async function runAtMost(jobs: number, tasks: readonly (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const lane = async () => {
    while (next < tasks.length && failure === null) {
      const task = tasks[next++];
      try {
        await task();
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, tasks.length)) }, lane));
  if (failure !== null) throw failure;
}
