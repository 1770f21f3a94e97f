/**
 * Readers for the deployment files (Dockerfile, compose, Kubernetes), shared by the tests in
 * test/deploy. Nothing here runs Docker or kubectl: the files are parsed and cross-checked.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, type ScalarTag } from 'yaml';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const repoPath = (...parts: string[]) => join(ROOT, ...parts);
export const readRepo = (...parts: string[]) => readFileSync(repoPath(...parts), 'utf8');

/** Compose's `!reset` tag (Compose 2.24.4+): the attribute is removed by the override. */
export const RESET = Symbol('compose !reset');
const composeTags: ScalarTag[] = [
  { tag: '!reset', resolve: () => RESET as unknown as string },
  { tag: '!override', resolve: (v: string) => v },
];
// `!reset {}` and `!reset []` are collection tags; the yaml package resolves them through
// `collection` tags. One definition per collection kind keeps the RESET marker.
const resetMap = { tag: '!reset', collection: 'map' as const, resolve: () => RESET as never };
const resetSeq = { tag: '!reset', collection: 'seq' as const, resolve: () => RESET as never };

export interface YamlFile {
  file: string;
  docs: unknown[];
  errors: string[];
}

/** Parses every document of a YAML file; errors and warnings (unknown tags…) are collected. */
export function parseYamlFile(file: string): YamlFile {
  const text = readFileSync(file, 'utf8');
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, customTags: [...composeTags, resetMap, resetSeq] as never });
  if (!Array.isArray(docs)) return { file, docs: [], errors: ['not a YAML stream'] };
  const errors = docs.flatMap((d) => [...d.errors, ...d.warnings].map((e) => e.message));
  return { file, docs: docs.map((d) => d.toJS({ maxAliasCount: 100 }) as unknown).filter((d) => d !== null && d !== undefined), errors };
}

/** Every *.yml / *.yaml under a directory, recursively, as absolute paths (sorted). */
export function yamlFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...yamlFilesUnder(full));
    else if (/\.ya?ml$/.test(name)) out.push(full);
  }
  return out.sort();
}

// ---------------------------------------------------------------------------------------
// Dockerfile

export interface DockerInstruction {
  keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  args: string;
  line: number;
}

/** Splits a Dockerfile into instructions (comments and blank lines dropped, `\` joined). */
export function parseDockerfile(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    const start = i + 1;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      i++;
      if (/^\s*#/.test(lines[i]!)) continue;
      line = `${line.replace(/\\\s*$/, '')} ${lines[i]!.trim()}`;
    }
    const m = /^\s*(\S+)\s*(.*)$/.exec(line)!;
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

/** The exec (JSON) form of CMD / ENTRYPOINT / HEALTHCHECK CMD; throws on the shell form. */
export function execForm(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return parsed as string[];
}

/** The stages of a multi-stage Dockerfile: base image, name, instructions. */
export function dockerStages(instructions: DockerInstruction[]) {
  const args = new Map<string, string>();
  const stages: Array<{ from: string; name?: string; instructions: DockerInstruction[] }> = [];
  for (const ins of instructions) {
    if (ins.keyword === 'ARG' && stages.length === 0) {
      const [k, v] = ins.args.split('=');
      if (k && v !== undefined) args.set(k, v);
    } else if (ins.keyword === 'FROM') {
      const [image, as, name] = ins.args.split(/\s+/);
      const from = image!.replace(/^\$\{?(\w+)\}?$/, (_, k: string) => args.get(k) ?? `\${${k}}`);
      stages.push({ from, ...(as?.toUpperCase() === 'AS' && name ? { name } : {}), instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return stages;
}

/**
 * Whether a path (relative to the build context, `/`-separated) is sent to the builder under
 * .dockerignore rules: patterns in order, the last match wins, `!` re-includes, `*` and `?`
 * stay within one path segment, `**` spans segments, and a pattern that matches a directory
 * matches everything below it (moby/patternmatcher semantics for these forms).
 */
export function inDockerContext(path: string, dockerignore: string): boolean {
  const rules = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      const re = pattern
        .split('/')
        .map((seg) => (seg === '**' ? '.*' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
        .join('/');
      return { negate, re: new RegExp(`^${re}(/.*)?$`) };
    });
  let included = true;
  for (const rule of rules) if (rule.re.test(path)) included = rule.negate;
  return included;
}

// ---------------------------------------------------------------------------------------
// Compose

export type ComposeService = Record<string, unknown> & {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[];
  pid?: string;
};
export interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

/**
 * Compose's merge of an override file onto a base, for the attributes these files use:
 * mappings merge key by key, `command`/`entrypoint`/`healthcheck.test` and other sequences are
 * replaced, `!reset` removes the attribute. (Compose appends some sequences such as `ports`;
 * the override here sets none of those.)
 */
export function mergeCompose(base: ComposeFile, override: ComposeFile): ComposeFile {
  const merge = (a: unknown, b: unknown): unknown => {
    if (b === RESET) return RESET;
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
      const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
      for (const [k, v] of Object.entries(b as Record<string, unknown>)) {
        const merged = merge(out[k], v);
        if (merged === RESET) delete out[k];
        else out[k] = merged;
      }
      return out;
    }
    return b;
  };
  return merge(base, override) as ComposeFile;
}

/** Compose's short volume syntax `SOURCE:TARGET[:MODE]`; bind sources are relative paths. */
export function parseVolume(spec: string): { source: string; target: string; readOnly: boolean; bind: boolean } {
  const [source, target, mode] = spec.split(':') as [string, string, string | undefined];
  return { source, target, readOnly: mode === 'ro', bind: source.startsWith('.') || source.startsWith('/') };
}

/** Maps a path inside a service's container to the host path of the bind mount that holds it. */
export function hostPathFor(service: ComposeService, containerPath: string, composeDir: string): string | undefined {
  for (const v of (service.volumes ?? []).map(parseVolume)) {
    if (!v.bind) continue;
    if (containerPath === v.target || containerPath.startsWith(`${v.target}/`)) {
      const source = isAbsolute(v.source) ? v.source : resolve(composeDir, v.source);
      return join(source, relative(v.target, containerPath));
    }
  }
  return undefined;
}

/** `HOST:CONTAINER` port mappings as numbers. */
export function publishedPorts(service: ComposeService): Array<{ host: number; container: number }> {
  return (service.ports ?? []).map((p) => {
    const parts = String(p).split(':');
    return { host: Number(parts.at(-2)), container: Number(parts.at(-1)) };
  });
}

/** Value of `--flag VALUE` (or `--flag=VALUE`) in an argument list. */
export function flagValue(args: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i]!.startsWith(`${flag}=`)) return args[i]!.slice(flag.length + 1);
  }
  return undefined;
}

export const toPosix = (p: string) => p.split(sep).join('/');
