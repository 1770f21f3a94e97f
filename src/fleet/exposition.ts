/**
 * Merges Prometheus text expositions (prom-client's `registry.metrics()` output) into one:
 * each family's HELP and TYPE once, from the first text that has it, followed by the samples
 * of every text in order. The central daemon's /metrics is the daemon's own registry plus one
 * registry per static target (each with its `target` default label), and a family may appear
 * in each; two HELP lines for one family would make the scrape fail. Pure.
 */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, { head: string[]; samples: string[] }>();
  for (const text of texts) {
    let current: { head: string[]; samples: string[] } | undefined;
    for (const line of text.split('\n')) {
      if (!line) continue;
      const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (meta) {
        const name = meta[2]!;
        let family = families.get(name);
        const fresh = !family;
        if (!family) families.set(name, (family = { head: [], samples: [] }));
        current = family;
        if (fresh || !family.head.some((h) => h.startsWith(`# ${meta[1]} `))) family.head.push(line);
        continue;
      }
      if (line.startsWith('#')) continue;
      if (!current) {
        // A sample without a HELP/TYPE header (not something prom-client writes): its own family.
        const name = /^[^{\s]+/.exec(line)![0];
        if (!families.has(name)) families.set(name, { head: [], samples: [] });
        current = families.get(name)!;
      }
      current.samples.push(line);
    }
  }
  let out = '';
  for (const { head, samples } of families.values()) out += `${[...head, ...samples].join('\n')}\n\n`;
  return out;
}
