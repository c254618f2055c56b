/**
 * PEFT's `target_modules` regex, matched in linear time. PEFT full-matches a string `target_modules` against each
 * module name with Python's `re.fullmatch`; a backtracking engine (Python's or JavaScript's) takes exponential time on
 * a pattern such as `(.*.*)*y`, so a hostile adapter_config.json could hang every verb that loads the adapter. Here
 * the pattern is parsed (Python's syntax, without the features that are not regular: backreferences, lookaround,
 * inline flags, possessive quantifiers — those are refused) and compiled to a Thompson NFA, which is simulated over
 * the name: time O(pattern × name) whatever the pattern. For a full match, greedy and lazy quantifiers accept the
 * same names, so the NFA gives exactly `re.fullmatch`'s answer.
 */

/** A pattern colloquy cannot read: invalid in Python, not regular, or too large. */
export class PatternError extends Error {}

/** Longest pattern accepted, and most NFA states it may expand to (counted repeats multiply). */
const MAX_PATTERN_CHARS = 2000;
const MAX_STATES = 5000;
const MAX_REPEAT = 1000;

type CharTest = (c: string) => boolean;

type Node =
  | { t: "char"; test: CharTest }
  | { t: "assert"; at: "start" | "end" }
  | { t: "seq"; items: Node[] }
  | { t: "alt"; options: Node[] }
  | { t: "repeat"; node: Node; min: number; max: number }; // max Infinity: unbounded

const ANY_BUT_NEWLINE: CharTest = (c) => c !== "\n";
const DIGIT = /^\p{Nd}$/u;
const WORD = /^[\p{L}\p{N}_]$/u; // Python 3's \w on str patterns: alphanumeric (Unicode) or underscore
const SPACE = /^\s$/u;
const CLASS_ESCAPES: Record<string, CharTest> = {
  d: (c) => DIGIT.test(c),
  D: (c) => !DIGIT.test(c),
  w: (c) => WORD.test(c),
  W: (c) => !WORD.test(c),
  s: (c) => SPACE.test(c),
  S: (c) => !SPACE.test(c),
};
const CHAR_ESCAPES: Record<string, string> = { n: "\n", t: "\t", r: "\r", f: "\f", v: "\v", a: "\x07" };

class Parser {
  private i = 0;
  private readonly s: string[];

  constructor(src: string) {
    this.s = Array.from(src); // code points, as Python's str
  }

  parse(): Node {
    const node = this.alternation();
    if (this.i < this.s.length) throw new PatternError(`unbalanced parenthesis at position ${this.i}`);
    return node;
  }

  private peek(): string | undefined {
    return this.s[this.i];
  }

  private alternation(): Node {
    const options = [this.sequence()];
    while (this.peek() === "|") {
      this.i++;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0] : { t: "alt", options };
  }

  private sequence(): Node {
    const items: Node[] = [];
    for (let c = this.peek(); c !== undefined && c !== "|" && c !== ")"; c = this.peek()) {
      const atom = this.atom();
      items.push(this.quantified(atom));
    }
    return { t: "seq", items };
  }

  private quantified(atom: Node): Node {
    const q = this.quantifier();
    if (!q) return atom;
    if (atom.t === "assert") throw new PatternError(`nothing to repeat at position ${this.i}`);
    const lazyOrPossessive = this.peek();
    if (lazyOrPossessive === "?") this.i++;
    else if (lazyOrPossessive === "+") throw new PatternError("possessive quantifiers are not supported");
    if (this.quantifierAhead()) throw new PatternError(`multiple repeat at position ${this.i}`);
    return { t: "repeat", node: atom, ...q };
  }

  /** The quantifier at the cursor (consumed), or null; `{` that is not a valid quantifier is a literal, as in Python. */
  private quantifier(): { min: number; max: number } | null {
    const c = this.peek();
    if (c === "*" || c === "+" || c === "?") {
      this.i++;
      return c === "*" ? { min: 0, max: Infinity } : c === "+" ? { min: 1, max: Infinity } : { min: 0, max: 1 };
    }
    if (c !== "{") return null;
    const m = /^\{(\d*)(,?)(\d*)\}/.exec(this.s.slice(this.i, this.i + 24).join(""));
    if (!m || (m[1] === "" && m[2] === "")) return null;
    const min = m[1] === "" ? 0 : Number(m[1]);
    const max = m[2] === "" ? min : m[3] === "" ? Infinity : Number(m[3]);
    if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw new PatternError(`repeat count above ${MAX_REPEAT}`);
    if (max < min) throw new PatternError(`min repeat greater than max repeat at position ${this.i}`);
    this.i += m[0].length;
    return { min, max };
  }

  private quantifierAhead(): boolean {
    const save = this.i;
    const q = this.quantifier();
    this.i = save;
    return q !== null;
  }

  private atom(): Node {
    const c = this.s[this.i++];
    switch (c) {
      case "(":
        return this.group();
      case "[":
        return { t: "char", test: this.charClass() };
      case ".":
        return { t: "char", test: ANY_BUT_NEWLINE };
      case "^":
        return { t: "assert", at: "start" };
      case "$":
        return { t: "assert", at: "end" };
      case "\\":
        return this.escape();
      case "*":
      case "+":
      case "?":
        throw new PatternError(`nothing to repeat at position ${this.i - 1}`);
      case "{":
        if (this.quantifierAhead2()) throw new PatternError(`nothing to repeat at position ${this.i - 1}`);
        return literal(c);
      default:
        return literal(c!);
    }
  }

  /** `{m,n}` at the start of a sequence (the `{` already consumed): Python's "nothing to repeat". */
  private quantifierAhead2(): boolean {
    this.i--;
    const ahead = this.quantifierAhead();
    this.i++;
    return ahead;
  }

  private group(): Node {
    if (this.peek() === "?") {
      const next = this.s[this.i + 1];
      if (next === ":") this.i += 2;
      else if (next === "P" && this.s[this.i + 2] === "<") {
        const close = this.s.indexOf(">", this.i + 3);
        const name = this.s.slice(this.i + 3, close).join("");
        if (close < 0 || !/^[A-Za-z_]\w*$/.test(name)) throw new PatternError(`bad group name at position ${this.i}`);
        this.i = close + 1;
      } else {
        throw new PatternError(
          `"(?${next ?? ""}" at position ${this.i - 1} is not supported (lookaround, backreferences and inline flags are not regular)`,
        );
      }
    }
    const node = this.alternation();
    if (this.s[this.i++] !== ")") throw new PatternError("missing ), unterminated subpattern");
    return node;
  }

  private escape(): Node {
    const c = this.s[this.i++];
    if (c === undefined) throw new PatternError("bad escape (end of pattern)");
    if (c === "A") return { t: "assert", at: "start" };
    if (c === "Z") return { t: "assert", at: "end" };
    if (CLASS_ESCAPES[c]) return { t: "char", test: CLASS_ESCAPES[c] };
    return literal(this.escapedChar(c));
  }

  /** The character an escape inside or outside a class stands for (`c` follows the backslash). */
  private escapedChar(c: string): string {
    if (CHAR_ESCAPES[c]) return CHAR_ESCAPES[c];
    if (c === "x") return this.hex(2);
    if (c === "u") return this.hex(4);
    if (c === "U") return this.hex(8);
    if (/^[0-9]$/.test(c)) throw new PatternError("backreferences and octal escapes are not supported");
    if (/^[A-Za-z]$/.test(c)) throw new PatternError(`bad escape \\${c}`);
    return c; // an escaped punctuation mark or other character stands for itself
  }

  private hex(n: number): string {
    const digits = this.s.slice(this.i, this.i + n).join("");
    if (!new RegExp(`^[0-9A-Fa-f]{${n}}$`).test(digits)) throw new PatternError(`incomplete escape at position ${this.i}`);
    this.i += n;
    const code = Number.parseInt(digits, 16);
    if (code > 0x10ffff) throw new PatternError(`bad escape at position ${this.i - n}`);
    return String.fromCodePoint(code);
  }

  /** `[...]` after the `[`: items, ranges, class escapes, a leading `^` negates, a leading `]` is literal. */
  private charClass(): CharTest {
    const start = this.i - 1;
    const negate = this.peek() === "^";
    if (negate) this.i++;
    const tests: CharTest[] = [];
    let first = true;
    for (;;) {
      const c = this.s[this.i++];
      if (c === undefined) throw new PatternError(`unterminated character set at position ${start}`);
      if (c === "]" && !first) break;
      first = false;
      let lo: string;
      if (c === "\\") {
        const e = this.s[this.i++];
        if (e === undefined) throw new PatternError(`unterminated character set at position ${start}`);
        if (CLASS_ESCAPES[e]) {
          tests.push(CLASS_ESCAPES[e]);
          continue;
        }
        lo = e === "b" ? "\b" : this.escapedChar(e);
      } else lo = c;
      if (this.peek() === "-" && this.s[this.i + 1] !== undefined && this.s[this.i + 1] !== "]") {
        this.i++;
        let hi = this.s[this.i++]!;
        if (hi === "\\") {
          const e = this.s[this.i++];
          if (e === undefined || CLASS_ESCAPES[e]) throw new PatternError(`bad character range at position ${this.i}`);
          hi = this.escapedChar(e);
        }
        const [a, b] = [lo.codePointAt(0)!, hi.codePointAt(0)!];
        if (b < a) throw new PatternError(`bad character range ${lo}-${hi}`);
        tests.push((x) => {
          const p = x.codePointAt(0)!;
          return p >= a && p <= b;
        });
      } else {
        tests.push((x) => x === lo);
      }
    }
    return (x) => tests.some((t) => t(x)) !== negate;
  }
}

function literal(c: string): Node {
  return { t: "char", test: (x) => x === c };
}

/** States the NFA of `n` needs (counted repeats expand into copies). */
function stateCount(n: Node): number {
  switch (n.t) {
    case "char":
    case "assert":
      return 1;
    case "seq":
      return n.items.reduce((a, m) => a + stateCount(m), 0);
    case "alt":
      return n.options.reduce((a, m) => a + stateCount(m) + 1, 0);
    case "repeat":
      return (stateCount(n.node) + 1) * Math.max(1, n.max === Infinity ? n.min + 1 : n.max);
  }
}

// NFA: each state is a character test, an assertion, a split (two epsilon edges) or the accepting state
type State =
  | { k: "char"; test: CharTest; out: number }
  | { k: "assert"; at: "start" | "end"; out: number }
  | { k: "split"; a: number; b: number }
  | { k: "match" };

class Nfa {
  readonly states: State[] = [];

  /** Adds the states of `n`, which continue to `next`; returns the entry state. */
  build(n: Node, next: number): number {
    switch (n.t) {
      case "char":
        return this.add({ k: "char", test: n.test, out: next });
      case "assert":
        return this.add({ k: "assert", at: n.at, out: next });
      case "seq": {
        let entry = next;
        for (let i = n.items.length - 1; i >= 0; i--) entry = this.build(n.items[i], entry);
        return entry;
      }
      case "alt": {
        let entry = this.build(n.options[n.options.length - 1], next);
        for (let i = n.options.length - 2; i >= 0; i--) entry = this.add({ k: "split", a: this.build(n.options[i], next), b: entry });
        return entry;
      }
      case "repeat": {
        let entry = next;
        if (n.max === Infinity) {
          // x* : loop ← split(x → loop, next)
          const loop = this.add({ k: "split", a: -1, b: next });
          const body = this.build(n.node, loop);
          (this.states[loop] as { a: number }).a = body;
          entry = loop;
        } else {
          // optional copies: split(x → …, next) for each of max − min
          for (let i = 0; i < n.max - n.min; i++) entry = this.add({ k: "split", a: this.build(n.node, entry), b: next });
        }
        for (let i = 0; i < n.min; i++) entry = this.build(n.node, entry);
        return entry;
      }
    }
  }

  add(s: State): number {
    this.states.push(s);
    return this.states.length - 1;
  }
}

/** Compiles a Python regex for full matching; throws PatternError when it is invalid, not regular or too large. */
export function compileFullMatch(pattern: string): (name: string) => boolean {
  if (pattern.length > MAX_PATTERN_CHARS) throw new PatternError(`the pattern is longer than ${MAX_PATTERN_CHARS} characters`);
  const ast = new Parser(pattern).parse();
  if (stateCount(ast) > MAX_STATES) throw new PatternError(`the pattern expands to more than ${MAX_STATES} states`);
  const nfa = new Nfa();
  const accept = nfa.add({ k: "match" });
  const start = nfa.build(ast, accept);
  const states = nfa.states;
  return (name: string) => {
    const chars = Array.from(name);
    const seen = new Int32Array(states.length).fill(-1);
    let current: number[] = [];
    // the epsilon closure of state s at position pos, added to `into` (each state once per position)
    const close = (s: number, pos: number, into: number[]) => {
      const stack = [s];
      while (stack.length) {
        const x = stack.pop()!;
        if (seen[x] === pos) continue;
        seen[x] = pos;
        const st = states[x];
        if (st.k === "split") stack.push(st.b, st.a);
        else if (st.k === "assert") {
          if (st.at === "start" ? pos === 0 : pos === chars.length) stack.push(st.out);
        } else into.push(x);
      }
    };
    close(start, 0, current);
    for (let pos = 0; pos < chars.length && current.length; pos++) {
      const next: number[] = [];
      for (const x of current) {
        const st = states[x];
        if (st.k === "char" && st.test(chars[pos])) close(st.out, pos + 1, next);
      }
      current = next;
    }
    return current.some((x) => states[x].k === "match");
  };
}
