/**
 * The facts world's vocabulary: people, and the attributes a person can have. Every attribute is stated in a
 * canonical sentence (the form honest agents use, the oracle state and claim checking read) and restated in
 * other forms in later excerpts; the value's words are what an agent can only predict if it knows the fact.
 */
export const NAMES = [
  "Ana",
  "Ben",
  "Cara",
  "Dan",
  "Eva",
  "Finn",
  "Gus",
  "Hana",
  "Ivy",
  "Jack",
  "Kim",
  "Leo",
  "Mia",
  "Ned",
  "Omar",
  "Pia",
  "Rosa",
  "Sam",
  "Tina",
  "Uma",
  "Vera",
  "Walt",
  "Yara",
  "Zack",
];

/** "a" or "an" before a word. */
export function article(word: string): string {
  return /^[aeiou]/i.test(word) ? "an" : "a";
}

export interface Relation {
  name: string; // also its noun, as in "Ben's place"
  values: readonly string[];
  /** canonical statement, e.g. "Ben is in the garden." */
  state: (person: string, value: string) => string;
  /** the question a later excerpt may ask before restating the fact */
  question: (person: string) => string;
  /** parses a canonical statement back: [person, value] or null */
  parse: RegExp;
}

/**
 * Later excerpts restate a fact as a lead-in followed by its canonical statement, verbatim: the words before the
 * value are predictable, the value is not, unless the reader holds the fact (in its state or inbox).
 */
export const RESTATE: readonly ((r: Relation, person: string, value: string) => string)[] = [
  (r, p, v) => `Later, ${r.state(p, v)}`,
  (r, p, v) => `${r.question(p)} ${r.state(p, v)}`,
  (r, p, v) => `Someone said that ${r.state(p, v)}`,
];

/**
 * Every value is two words, each unpredictable without the fact (48 places, 40 pets, 32 colours, 45 numbers):
 * a value carries more information than the person and the relation of a statement, so a statement with a false
 * value misleads more than its true names help.
 */
const product = (a: readonly string[], b: readonly string[]) => a.flatMap((x) => b.map((y) => `${x} ${y}`));
const PLACES = product(
  ["north", "south", "east", "west"],
  ["kitchen", "garden", "library", "market", "school", "park", "harbor", "bakery", "station", "museum", "forest", "river"],
);
const PETS = product(
  ["small", "big", "young", "lazy"],
  ["cat", "dog", "owl", "frog", "horse", "rabbit", "parrot", "goat", "turtle", "fox"],
);
const COLORS = product(["dark", "light", "bright", "pale"], ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"]);
const NUMBERS = product(
  ["twenty", "thirty", "forty", "fifty", "sixty"],
  ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
);

export const RELATIONS: readonly Relation[] = [
  {
    name: "place",
    values: PLACES,
    state: (p, v) => `${p} is in the ${v}.`,
    question: (p) => `Where is ${p}?`,
    parse: /^(\w+) is in the (\w+ \w+)\.$/,
  },
  {
    name: "pet",
    values: PETS,
    state: (p, v) => `${p} has ${article(v)} ${v}.`,
    question: (p) => `What pet does ${p} have?`,
    parse: /^(\w+) has an? (\w+ \w+)\.$/,
  },
  {
    name: "color",
    values: COLORS,
    state: (p, v) => `${p} likes ${v}.`,
    question: (p) => `Which color does ${p} like?`,
    parse: /^(\w+) likes (\w+ \w+)\.$/,
  },
  {
    name: "coins",
    values: NUMBERS,
    state: (p, v) => `${p} has ${v} coins.`,
    question: (p) => `How many coins does ${p} have?`,
    parse: /^(\w+) has (\w+ \w+) coins\.$/,
  },
];

/** Sentences that carry no fact: the same with or without a state. */
export const FILLER = [
  "The sun was warm.",
  "A bell rang far away.",
  "It was a quiet day.",
  "The wind moved the trees.",
  "Everyone was busy.",
  "A bird sang on the roof.",
  "The streets were calm.",
  "Clouds drifted by.",
];
