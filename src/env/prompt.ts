/**
 * What an agent reads, and what the scorer reads.
 *
 * Agent prompt, plain (generation continues after the final "STATE:"):
 *   {system prompt}
 *   MEMORY: {previous state}
 *   EXCERPT: {c_t}
 *   INBOX:
 *   {sender}: {message}            (one line per delivered message; "(empty)" when none)
 *   STATE:
 * Agent prompt, chat (a model whose tokenizer has a chat template, rendered as `serve` renders chats):
 *   system turn: {system prompt};  user turn: MEMORY … INBOX lines as above;  then the assistant turn, opened by
 *   the template, begins with "STATE:".
 *
 * Scorer text (rewards and message values; the scored tokens are the excerpt after "NEXT:"):
 *   CONTEXT: {last `window` tokens of the agent's past excerpts}     (only when window > 0)
 *   STATE: {state}
 *   INBOX: ... (only for message values)
 *   NEXT: {c_{t+1}}
 */
import { chatFormat } from "../formats/chat-template.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { UserError } from "../util/errors.ts";

export const SYSTEM_PROMPTS: Record<string, string> = {
  proposal:
    "Imagine you are a language model in a learning network, working together to explore the universe, knowledge, and kindness. " +
    "In each round, follow these steps: 1. Periodically, a random text excerpt is provided for fine-tuning. 2. Displays actions from " +
    "the previous round directed at you. 3. Reflect and plan based on received messages. 4. Summarize the history to carry forward. " +
    '5. Communicate with fellow models concisely using "Sender index:recipient index:message". Promote growth, curiosity, and ' +
    "collaboration. Your index is {i}, and the other models' indices are {others}.",
  short: "You are agent {i}. Other agents: {others}. Keep a one-line state. Send messages as {i}:recipient:message.",
};

export function systemPrompt(template: string, agent: number, agents: number): string {
  const text = SYSTEM_PROMPTS[template] ?? template;
  const others = Array.from({ length: agents }, (_, j) => j)
    .filter((j) => j !== agent)
    .join(", ");
  return text.replaceAll("{i}", String(agent)).replaceAll("{others}", others);
}

export interface InboxEntry {
  from: number;
  text: string;
}

export function renderInbox(inbox: readonly InboxEntry[]): string {
  return inbox.length ? inbox.map((m) => `${m.from}: ${m.text}`).join("\n") : "(empty)";
}

function observation(memory: string, excerpt: string, inbox: readonly InboxEntry[]): string {
  return `MEMORY: ${memory}\nEXCERPT: ${excerpt}\nINBOX:\n${renderInbox(inbox)}`;
}

export function agentPrompt(system: string, memory: string, excerpt: string, inbox: readonly InboxEntry[]): string {
  return `${system}\n${observation(memory, excerpt, inbox)}\nSTATE:`;
}

export type PromptFormatKind = "chat" | "plain";

/** How an agent's round becomes prompt ids. */
export interface AgentPromptFormat {
  kind: PromptFormatKind;
  /** The prompt's text, ending with "STATE:" (special tokens spelled out, as the chat template writes them). */
  text(system: string, memory: string, excerpt: string, inbox: readonly InboxEntry[]): string;
  /** A prompt's ids: the text tokenized with the tokenizer's own special tokens (plain) or as the template wrote them (chat). */
  encode(text: string): number[];
}

/** The format the `promptFormat` key chooses: auto is chat when the tokenizer has a chat template that parses. */
export function agentPromptFormat(choice: "auto" | PromptFormatKind, tok: Tokenizer): AgentPromptFormat {
  const chat = choice === "plain" ? null : chatFormat(tok);
  if (choice === "chat" && chat?.kind !== "template")
    throw new UserError(
      "E_BAD_CONFIG",
      `promptFormat chat: ${chat?.warning ?? "the tokenizer has no chat template"}`,
      "use promptFormat plain or auto, or a model whose tokenizer_config.json has a chat_template",
    );
  if (chat?.kind !== "template") {
    return { kind: "plain", text: agentPrompt, encode: (t) => tok.encode(t, { addSpecial: true }) };
  }
  const text = (system: string, memory: string, excerpt: string, inbox: readonly InboxEntry[]) =>
    chat.render([
      { role: "system", content: system },
      { role: "user", content: observation(memory, excerpt, inbox) },
    ]) + "STATE:";
  return { kind: "chat", text, encode: (t) => tok.encode(t, { addSpecial: false }) };
}

/** A completion as the protocol wants it: " state\nmsg lines". */
export function renderCompletion(state: string, messages: readonly { from: number; to: number | "*"; text: string }[]): string {
  return ` ${state}` + messages.map((m) => `\n${m.from}:${m.to}:${m.text}`).join("");
}

export interface ScorerInput {
  context: number[]; // ids of the last `window` tokens of the agent's past excerpts ([] for window 0)
  state: string;
  inbox: readonly InboxEntry[] | null; // null: no INBOX section
  next: string; // the excerpt whose tokens are scored
}

/** Token ids of the scorer text and the index of the first scored token. */
export function scorerTokens(tok: Tokenizer, s: ScorerInput): { tokens: number[]; from: number } {
  const ids: number[] = tok.bosId !== null ? [tok.bosId] : [];
  if (s.context.length)
    ids.push(...tok.encode("CONTEXT:", { addSpecial: false }), ...s.context, ...tok.encode("\n", { addSpecial: false }));
  let head = `STATE: ${s.state}\n`;
  if (s.inbox) head += `INBOX:\n${renderInbox(s.inbox)}\n`;
  ids.push(...tok.encode(head + "NEXT:", { addSpecial: false }));
  const from = ids.length;
  ids.push(...tok.encode(` ${s.next}`, { addSpecial: false }));
  return { tokens: ids, from };
}
