/**
 * The emulator's tokenizer and prefix cache. Tokens are words and punctuation hashed to ids,
 * which is enough for a stable count; the cache mirrors vLLM's automatic prefix caching: the
 * prompt is cut into full 16-token blocks, each block's hash chains the previous one (and the
 * request's cache_salt, which only affects the first block), and blocks live in an LRU of
 * num_gpu_blocks entries.
 */
import { createHash } from 'node:crypto';

const VOCAB = 32000;

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Splits text into token ids; `addBos` prepends id 1 like Llama tokenizers do. */
export function tokenize(text: string, addBos = true): number[] {
  const pieces = text.match(/[A-Za-z]+|\d|[^\sA-Za-z\d]/g) ?? [];
  const ids = pieces.map((p) => 3 + (fnv1a(p) % (VOCAB - 3)));
  return addBos ? [1, ...ids] : ids;
}

export class PrefixCache {
  private readonly blocks = new Map<string, true>(); // insertion order = LRU order

  constructor(
    readonly blockSize: number,
    readonly capacityBlocks: number,
    readonly enabled: boolean,
  ) {}

  get usedBlocks(): number {
    return this.blocks.size;
  }

  private hashes(tokens: number[], salt: string | undefined): string[] {
    const out: string[] = [];
    let parent = salt ?? '';
    for (let start = 0; start + this.blockSize <= tokens.length; start += this.blockSize) {
      const h = createHash('sha256').update(parent).update(tokens.slice(start, start + this.blockSize).join(',')).digest('hex').slice(0, 32);
      out.push(h);
      parent = h;
    }
    return out;
  }

  /**
   * Looks the prompt up and then stores its blocks. Returns how many prompt tokens were
   * cached; like vLLM, at least one token is always computed so a full hit leaves the last
   * block to recompute.
   */
  lookupAndInsert(tokens: number[], salt?: string): number {
    if (!this.enabled) return 0;
    const hashes = this.hashes(tokens, salt);
    let hit = 0;
    for (const h of hashes) {
      if (!this.blocks.has(h)) break;
      hit++;
    }
    if (hit * this.blockSize >= tokens.length) hit = Math.max(0, hit - 1);
    for (const h of hashes) {
      this.blocks.delete(h);
      this.blocks.set(h, true);
    }
    while (this.blocks.size > this.capacityBlocks) {
      const oldest = this.blocks.keys().next().value as string;
      this.blocks.delete(oldest);
    }
    return hit * this.blockSize;
  }

  clear(): void {
    this.blocks.clear();
  }
}
