/**
 * Strict parsing of an agent's completion (the text generated after "STATE:"):
 *   line 1:              the new state (one line)
 *   following lines:     <sender>:<recipient>:<message>    sender = the agent's own index; recipient an index or *
 * The completion ends at the first empty line. Anything that does not parse is dropped and counted as a protocol
 * violation; nothing here throws, whatever the input.
 */

export type Recipient = number | "*";

export interface OutgoingMessage {
  from: number;
  to: Recipient;
  text: string;
}

export type ViolationKind =
  | "malformed_line" // not sender:recipient:message
  | "impersonation" // sender is not the agent's own index
  | "bad_recipient" // no such agent, or the agent itself
  | "empty_message"
  | "message_too_long"
  | "too_many_messages"
  | "state_too_long"; // the state was cut to the cap

export interface ParsedCompletion {
  state: string;
  messages: OutgoingMessage[];
  violations: ViolationKind[];
}

export interface ProtocolLimits {
  stateTokens: number;
  messageTokens: number;
  messagesPerRound: number;
}

export interface TokenCounter {
  count(text: string): number;
  /** The longest prefix of `text` with at most n tokens. */
  truncate(text: string, n: number): string;
}

const LINE = /^(\d{1,6}):(\d{1,6}|\*):(.*)$/;

/** Removes characters that could break the line-based protocol or a terminal (controls, line separators). */
export function sanitizeLine(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " ").trim();
}

export function parseCompletion(
  completion: string,
  self: number,
  agents: number,
  limits: ProtocolLimits,
  tokens: TokenCounter,
): ParsedCompletion {
  const violations: ViolationKind[] = [];
  const lines = completion.replace(/\r\n?/g, "\n").split("\n");
  const end = lines.findIndex((l, i) => i > 0 && l.trim() === "");
  const body = end < 0 ? lines : lines.slice(0, end);

  let state = sanitizeLine(body[0] ?? "");
  if (tokens.count(state) > limits.stateTokens) {
    violations.push("state_too_long");
    state = tokens.truncate(state, limits.stateTokens).trim();
  }

  const messages: OutgoingMessage[] = [];
  for (const raw of body.slice(1)) {
    const m = LINE.exec(raw.trim());
    if (!m) {
      violations.push("malformed_line");
      continue;
    }
    const from = Number(m[1]);
    const to: Recipient = m[2] === "*" ? "*" : Number(m[2]);
    const text = sanitizeLine(m[3]);
    if (from !== self) violations.push("impersonation");
    else if (to !== "*" && (to < 0 || to >= agents || to === self)) violations.push("bad_recipient");
    else if (text === "") violations.push("empty_message");
    else if (tokens.count(text) > limits.messageTokens) violations.push("message_too_long");
    else if (messages.length >= limits.messagesPerRound) violations.push("too_many_messages");
    else messages.push({ from, to, text });
  }
  return { state, messages, violations };
}

/** Delivers messages to next round's inboxes: inboxes[r] lists what r receives, in sender order. */
export function route(messages: readonly OutgoingMessage[], agents: number): { from: number; text: string; to: Recipient }[][] {
  const inboxes: { from: number; text: string; to: Recipient }[][] = Array.from({ length: agents }, () => []);
  const sorted = [...messages].sort((a, b) => a.from - b.from);
  for (const m of sorted) {
    for (let r = 0; r < agents; r++) {
      if (r !== m.from && (m.to === "*" || m.to === r)) inboxes[r].push({ from: m.from, text: m.text, to: m.to });
    }
  }
  return inboxes;
}
