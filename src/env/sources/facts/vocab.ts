/**
 * The facts world's vocabulary: people, and the attributes a person can have. Every attribute is stated in a
 * canonical sentence (the form honest agents use, the oracle state and claim checking read) and restated in
 * other forms in later excerpts; the value's words are what an agent can only predict if it knows the fact.
 */
export const NAMES = [
  "Ana", "Ben", "Cara", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivy", "Jack", "Kim", "Leo",
  "Mia", "Ned", "Omar", "Pia", "Rosa", "Sam", "Tina", "Uma", "Vera", "Walt", "Yara", "Zack",
];

/** "a" or "an" before a word. */
export function article(word: string): string {
  return /^[aeiou]/i.test(word) ? "an" : "a";
}

export interface Relation {
  name: string;
  values: readonly string[];
  /** canonical statement, e.g. "Ben is in the garden." */
  state: (person: string, value: string) => string;
  /** later restatements: the value comes at the end, so the words before it are predictable without the fact */
  restate: readonly ((person: string, value: string) => string)[];
  /** parses a canonical statement back: [person, value] or null */
  parse: RegExp;
}

const PLACES = ["kitchen", "garden", "library", "market", "school", "park", "harbor", "bakery", "station", "museum", "forest", "river"];
const PETS = ["cat", "dog", "owl", "frog", "horse", "rabbit", "parrot", "goat", "turtle", "fox"];
const COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"];
const NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine"];

export const RELATIONS: readonly Relation[] = [
  {
    name: "place",
    values: PLACES,
    state: (p, v) => `${p} is in the ${v}.`,
    restate: [
      (p, v) => `Later, ${p} was still in the ${v}.`,
      (p, v) => `Where is ${p}? ${p} is in the ${v}.`,
      (p, v) => `Someone looked for ${p} in the ${v}.`,
    ],
    parse: /^(\w+) is in the (\w+)\.$/,
  },
  {
    name: "pet",
    values: PETS,
    state: (p, v) => `${p} has ${article(v)} ${v}.`,
    restate: [
      (p, v) => `${p} fed the ${v}.`,
      (p, v) => `What pet does ${p} have? ${p} has ${article(v)} ${v}.`,
      (p, v) => `${p} walked home with the ${v}.`,
    ],
    parse: /^(\w+) has an? (\w+)\.$/,
  },
  {
    name: "color",
    values: COLORS,
    state: (p, v) => `${p} likes ${v}.`,
    restate: [
      (p, v) => `${p} wore ${article(v)} ${v} coat.`,
      (p, v) => `Which color does ${p} like? ${p} likes ${v}.`,
      (p, v) => `${p} painted the door ${v}.`,
    ],
    parse: /^(\w+) likes (\w+)\.$/,
  },
  {
    name: "coins",
    values: NUMBERS,
    state: (p, v) => `${p} has ${v} coins.`,
    restate: [
      (p, v) => `${p} counted ${v} coins again.`,
      (p, v) => `How many coins does ${p} have? ${p} has ${v} coins.`,
      (p, v) => `${p} spent nothing and still had ${v} coins.`,
    ],
    parse: /^(\w+) has (\w+) coins\.$/,
  },
];

/** Sentences that carry no fact: the same with or without a state. */
export const FILLER = [
  "The sun was warm.", "A bell rang far away.", "It was a quiet day.", "The wind moved the trees.",
  "Everyone was busy.", "A bird sang on the roof.", "The streets were calm.", "Clouds drifted by.",
];
