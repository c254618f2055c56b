/**
 * The engine's worker thread. It imports the module named in workerData, calls its setup function to load the
 * model and adapters (the CLI passes its own loader, so this file knows nothing of flags), then runs the batches
 * the main thread sends, posting each streaming row's text as it grows. Protocol (all plain objects):
 *   → {type: "run", id, rows}
 *   ← {type: "ready", info, tokenizerPath} | {type: "fatal", error}       once, at start
 *   ← {type: "text", id, row, text} … then {type: "done", id, results} | {type: "failed", id, error}
 */
import { parentPort, workerData } from "node:worker_threads";
import { EngineCore, type EngineRow, type ServeSetup } from "./engine.ts";
import { workerError } from "./worker-error.ts";

export interface WorkerData {
  setupModule: string; // URL of a module
  setupExport: string; // its function (options) => ServeSetup
  options: unknown;
}

async function main(): Promise<void> {
  const port = parentPort!;
  const data = workerData as WorkerData;
  let core: EngineCore;
  try {
    const mod = (await import(data.setupModule)) as Record<string, (options: unknown) => ServeSetup | Promise<ServeSetup>>;
    const setup = await mod[data.setupExport](data.options);
    core = new EngineCore(setup);
    port.postMessage({ type: "ready", info: core.info, tokenizerPath: setup.tokenizerPath });
  } catch (e) {
    port.postMessage({ type: "fatal", error: workerError(e) });
    return;
  }
  // batches run one at a time, in the order they come
  let chain: Promise<void> = Promise.resolve();
  port.on("message", (msg: { type: string; id: number; rows: EngineRow[] }) => {
    if (msg.type !== "run") return;
    chain = chain.then(async () => {
      try {
        const results = await core.run(msg.rows, (row, text) => port.postMessage({ type: "text", id: msg.id, row, text }));
        port.postMessage({ type: "done", id: msg.id, results });
      } catch (e) {
        port.postMessage({ type: "failed", id: msg.id, error: workerError(e) });
      }
    });
  });
}

if (parentPort) await main();
