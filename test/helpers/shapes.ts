/** Structure-only views of vLLM responses, for comparing the emulator with real captures. */
import { parseExposition } from '../../src/vllm/exposition.js';

/** vllm:* family → "type: sorted label names" (values aside; `le` dropped from histograms). */
export function familyShape(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of parseExposition(text).values()) {
    if (!f.name.startsWith('vllm:') || f.samples.length === 0) continue;
    const labels = new Set<string>();
    for (const s of f.samples) for (const k of Object.keys(s.labels)) if (k !== 'le') labels.add(k);
    out[f.name] = `${f.type}: ${[...labels].sort().join(',')}`;
  }
  return out;
}

/** The type skeleton of a JSON value: keys and value types, arrays by their first element. */
export function jsonShape(v: unknown): unknown {
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.length ? [jsonShape(v[0])] : [];
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, jsonShape(x)]));
  return typeof v;
}

/**
 * An SSE transcript as a run-length list of chunk shapes, so 16 identical content chunks
 * compare equal to 16 of the same shape and the finishing/usage chunks stand out.
 */
export function sseShape(text: string): Array<{ shape: string; count: number }> {
  const events = text.split('\n\n').filter((e) => e.trim() !== '');
  const shapes = events.map((e) => {
    if (!e.startsWith('data: ')) return `non-data: ${e.slice(0, 20)}`;
    const data = e.slice(6);
    if (data === '[DONE]') return '[DONE]';
    const obj = JSON.parse(data) as Record<string, unknown>;
    const shape = jsonShape(obj) as Record<string, unknown>;
    // finish_reason value distinguishes the finishing chunk; ids and text are data
    const fr = (obj.choices as Array<{ finish_reason?: unknown }> | undefined)?.[0]?.finish_reason;
    return JSON.stringify({ ...shape, finish: fr ?? null });
  });
  const out: Array<{ shape: string; count: number }> = [];
  for (const s of shapes) {
    const last = out[out.length - 1];
    if (last && last.shape === s) last.count++;
    else out.push({ shape: s, count: 1 });
  }
  return out;
}
