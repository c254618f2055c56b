/**
 * A worker thread running a TypeScript module: the bootstrap registers tsx's loader in the worker (bin/colloquy.mjs
 * registers it for the main thread only; registering it again under `node --import tsx` is harmless), then imports
 * the module.
 */
import { Worker } from "node:worker_threads";

export function startTsWorker(moduleUrl: string, workerData: unknown): Worker {
  const tsx = import.meta.resolve("tsx/esm/api");
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(moduleUrl)}); });`;
  return new Worker(code, { eval: true, workerData });
}
