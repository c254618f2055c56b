/**
 * The prompt tokenizer's worker thread: it loads the model's tokenizer from its file, then renders, bounds and
 * tokenizes the prompts the main thread sends, one at a time (prompt-tokenizer.ts's `encodePrompt`). Protocol:
 *   ← {type: "ready"} | {type: "fatal", error}                 once, at start
 *   → {id, job}   ← {id, result} | {id, error}
 */
import { parentPort, workerData } from "node:worker_threads";
import { loadTokenizerAt } from "../formats/load-model.ts";
import { chatFormat } from "../formats/chat-template.ts";
import { type PromptJob, encodePrompt } from "./prompt-tokenizer.ts";
import { workerError } from "./worker-error.ts";

export interface TokenizerWorkerData {
  tokenizerPath: string;
  vocabSize: number;
}

function main(): void {
  const port = parentPort!;
  const data = workerData as TokenizerWorkerData;
  let run: (job: PromptJob) => ReturnType<typeof encodePrompt>;
  try {
    const tok = loadTokenizerAt(data.tokenizerPath, data.vocabSize);
    const chat = chatFormat(tok);
    run = (job) => encodePrompt(tok, chat, job);
  } catch (e) {
    port.postMessage({ type: "fatal", error: workerError(e) });
    return;
  }
  port.on("message", (msg: { id: number; job: PromptJob }) => {
    try {
      port.postMessage({ id: msg.id, result: run(msg.job) });
    } catch (e) {
      port.postMessage({ id: msg.id, error: workerError(e) });
    }
  });
  port.postMessage({ type: "ready" });
}

if (parentPort) main();
