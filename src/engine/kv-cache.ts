/**
 * A key/value cache for one sequence: for every layer, the rotated keys and the values of all positions so far.
 * Generation appends to it; a forward pass over new tokens of a row with a cache attends to everything in it.
 */
import { type ModelConfig, kvDim } from "./config.ts";
import { f32 } from "./tensor.ts";

export class KVCache {
  readonly capacity: number; // positions
  length = 0; // positions filled
  readonly k: Float32Array[]; // (L) × (capacity, KV)
  readonly v: Float32Array[]; // (L) × (capacity, KV)

  constructor(config: ModelConfig, capacity: number) {
    this.capacity = capacity;
    const per = capacity * kvDim(config);
    const buf = f32(2 * config.nLayers * per);
    this.k = [];
    this.v = [];
    for (let l = 0; l < config.nLayers; l++) {
      this.k.push(buf.subarray(2 * l * per, (2 * l + 1) * per));
      this.v.push(buf.subarray((2 * l + 1) * per, (2 * l + 2) * per));
    }
  }
}
