/**
 * The model's dimensions. Letters used in shape comments everywhere in the engine:
 *   N  tokens in a packed batch (rows of different lengths laid end to end)
 *   C  model width (dim)             L   layers
 *   NH query heads                   KVH key/value heads (grouped-query attention when KVH < NH)
 *   HS head size                     Q   NH*HS (query width)      KV  KVH*HS (key/value width)
 *   F  MLP hidden width              V   vocabulary size          R   LoRA rank
 */
export type RopeStyle = "half" | "interleaved";

export type RopeScaling =
  | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { type: "linear"; factor: number };

export interface ModelConfig {
  dim: number; // C
  nLayers: number; // L
  nHeads: number; // NH
  nKvHeads: number; // KVH
  headDim: number; // HS
  hiddenDim: number; // F
  vocabSize: number; // V
  maxSeqLen: number; // positions the model was trained for (generation may not exceed it)
  normEps: number; // RMSNorm epsilon
  ropeTheta: number; // rotary base
  ropeStyle: RopeStyle; // "half": Hugging Face rotate-half; "interleaved": llama2.c adjacent pairs
  ropeScaling: RopeScaling | null;
  tiedEmbeddings: boolean; // LM head reuses the token embedding
  bosId: number | null;
  eosIds: number[];
}

export function qDim(c: ModelConfig): number {
  return c.nHeads * c.headDim;
}

export function kvDim(c: ModelConfig): number {
  return c.nKvHeads * c.headDim;
}

/** A short human description, as `colloquy inspect` prints it. */
export function describeConfig(c: ModelConfig): string {
  return (
    `dim ${c.dim}, ${c.nLayers} layers, ${c.nHeads} heads / ${c.nKvHeads} kv heads, head ${c.headDim}, ` +
    `mlp ${c.hiddenDim}, vocab ${c.vocabSize}, context ${c.maxSeqLen}, rope ${c.ropeStyle} θ=${c.ropeTheta}` +
    (c.ropeScaling ? ` (${c.ropeScaling.type} ×${c.ropeScaling.factor})` : "") +
    (c.tiedEmbeddings ? ", tied embeddings" : "")
  );
}
