/**
 * Chat messages → prompt text. A model whose tokenizer_config.json has a `chat_template` uses it (Jinja, rendered
 * by @huggingface/jinja with messages, add_generation_prompt, bos_token and eos_token, as transformers'
 * apply_chat_template does); the text is then tokenized without adding special tokens, since the template writes
 * them. A model without one (a llama2.c story model, colloquy's own base) gets the plain fallback below, tokenized
 * with the tokenizer's own special tokens (BOS first), and generation stops where the model starts a new turn.
 */
import { Template } from "@huggingface/jinja";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { UserError } from "../util/errors.ts";

export interface ChatMessage {
  role: string; // system, developer, user, assistant, tool
  content: string;
  name?: string;
}

export interface ChatFormat {
  kind: "template" | "fallback";
  /** The prompt text for `messages`, ending where the assistant's reply begins. */
  render(messages: readonly ChatMessage[]): string;
  /** Whether to tokenize the rendered text with the tokenizer's special tokens (BOS) added. */
  addSpecial: boolean;
  /** Stop strings added to every chat request (the fallback's turn markers). */
  stop: string[];
  /** Why the model's own template is not used, when it has one that does not parse. */
  warning: string | null;
}

/** The fallback's speaker labels by role; other roles are capitalised. */
const LABELS: Record<string, string> = { system: "System", developer: "System", user: "User", assistant: "Assistant", tool: "Tool" };

/** The fallback template, as documented in `colloquy serve --help`. */
export const FALLBACK_TEMPLATE_DOC =
  'one line per message, "System: …", "User: …", "Assistant: …", then "Assistant:" (the reply follows; generation stops at "\\nUser:", "\\nAssistant:", "\\nSystem:" or "\\nTool:")';

export function fallbackLabel(role: string): string {
  return LABELS[role] ?? role.charAt(0).toUpperCase() + role.slice(1);
}

/** The plain fallback: "System: …\nUser: …\nAssistant: …\nAssistant:". */
export function renderFallback(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `${fallbackLabel(m.role)}: ${m.content}\n`).join("") + "Assistant:";
}

const FALLBACK_STOPS = ["\nUser:", "\nAssistant:", "\nSystem:", "\nTool:"];

function fallbackFormat(warning: string | null): ChatFormat {
  return { kind: "fallback", render: renderFallback, addSpecial: true, stop: FALLBACK_STOPS, warning };
}

/** The chat format of a tokenizer: its own template when it has one that parses, else the fallback. */
export function chatFormat(tok: Tokenizer): ChatFormat {
  const source = tok.chatTemplate;
  if (!source) return fallbackFormat(null);
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    return fallbackFormat(`the model's chat template does not parse (${(e as Error).message}); using the plain fallback template`);
  }
  const special = (id: number | null): string => (id === null ? "" : tok.decode([id], { skipSpecial: false }));
  const bos_token = special(tok.bosId);
  const eos_token = special(tok.eosId);
  return {
    kind: "template",
    addSpecial: false,
    stop: [],
    warning: null,
    render(messages: readonly ChatMessage[]): string {
      try {
        return template.render({ messages: messages.map((m) => ({ ...m })), add_generation_prompt: true, bos_token, eos_token });
      } catch (e) {
        throw new UserError("E_CHAT_TEMPLATE", `the model's chat template rejected the messages: ${(e as Error).message}`);
      }
    },
  };
}

/** Messages → prompt ids with the model's chat format. */
export function chatPromptIds(tok: Tokenizer, format: ChatFormat, messages: readonly ChatMessage[]): number[] {
  return tok.encode(format.render(messages), { addSpecial: format.addSpecial });
}
