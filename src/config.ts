/**
 * The config file: `loadConfig(file)` reads YAML (syntax errors with their line, duplicate keys,
 * aliases), validates it with the schema (./config-schema.ts, re-exported here so importers have
 * one module) and checks that the key files it names can be read; `readApiKey` reads the key.
 * Every expected failure is a ConfigError naming the file and the field.
 */
import { isScalar, LineCounter, parseDocument, visit } from 'yaml';
import { ConfigError, parseConfig, type Config } from './config-schema.js';
import { FileReadError } from './errors.js';
import { readSmallFile } from './files.js';
import type { Overrides } from './config-runtime.js';

export * from './config-schema.js';

/**
 * Reads a YAML file into plain data. Throws ConfigError naming the file for an unreadable file,
 * a syntax error (with its line) or a document the YAML library cannot resolve. Shared by the
 * daemon config and the web config.
 */
export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readSmallFile(file).toString('utf8');
  } catch (err) {
    throw new ConfigError(file, [`(file): cannot read: ${err instanceof FileReadError ? err.message.replace(/^cannot read: /, '') : String(err)}`]);
  }
  const lineCounter = new LineCounter();
  // uniqueKeys off: the library's check is quadratic in the keys of a map (a 0.26 MB file took
  // seconds and blocked /healthz during a reload); the same check, linear, follows.
  const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: true, lineCounter });
  if (doc.errors.length) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `(yaml) line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`),
    );
  }
  const duplicates: string[] = [];
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        if (seen.has(key)) {
          const line = isScalar(pair.key) && pair.key.range ? lineCounter.linePos(pair.key.range[0]).line : '?';
          duplicates.push(`(yaml) line ${line}: duplicate key ${JSON.stringify(key.slice(0, 80))}`);
        }
        seen.add(key);
      }
    },
  });
  if (duplicates.length) throw new ConfigError(file, duplicates.slice(0, 20));
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // e.g. an alias whose anchor is missing: found by the property-based loader test
    throw new ConfigError(file, [`(yaml): ${(err as Error).message}`]);
  }
}

/** Reads and validates a YAML config file. Throws ConfigError for every expected failure. */
export function loadConfig(file: string): Config {
  const raw = readYamlFile(file);
  const config = parseConfig(raw, file);
  if (config.target.api_key_file) {
    try {
      readSmallFile(config.target.api_key_file, 64 * 1024);
    } catch (err) {
      throw new ConfigError(file, [
        `target.api_key_file: expected a readable file, got ${JSON.stringify(config.target.api_key_file)} (${err instanceof FileReadError ? (err.code === 'ENOTREG' || err.code === 'EFBIG' ? err.message : err.code) : 'unreadable'})`,
      ]);
    }
  }
  for (const [name, m] of Object.entries(config.modules)) {
    if (!m.api_key_file) continue;
    try {
      readSmallFile(m.api_key_file, 64 * 1024);
    } catch (err) {
      const why = err instanceof FileReadError ? (err.code === 'ENOTREG' || err.code === 'EFBIG' ? err.message : err.code) : 'unreadable';
      throw new ConfigError(file, [`modules.${name}.api_key_file: expected a readable file, got ${JSON.stringify(m.api_key_file)} (${why})`]);
    }
  }
  return config;
}

/**
 * The file's config and the command-line overrides, each override checked with the rule of the
 * field it replaces (`--listen`, `--target`, `--log-level`). Run on the config worker
 * (./config-isolated.ts).
 */
export function loadAndValidate(file: string, overrides: Overrides = {}): { config: Config; overrides: Overrides } {
  const logLevel = overrides.log_level !== undefined ? { log_level: parseConfig({ log_level: overrides.log_level }, '--log-level').log_level } : {};
  const config = loadConfig(file);
  return {
    config,
    overrides: {
      ...(overrides.target !== undefined ? { target: parseConfig({ target: { url: overrides.target } }, '--target').target.url } : {}),
      ...(overrides.listen !== undefined ? { listen: parseConfig({ listen: overrides.listen }, '--listen').listen } : {}),
      ...logLevel,
    },
  };
}
