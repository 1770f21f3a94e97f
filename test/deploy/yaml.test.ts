/**
 * Every YAML file under deploy/ (and the Grafana provisioning files the compose stack mounts)
 * parses, every document in it: no syntax errors, no duplicate keys, no unknown tags other
 * than Compose's `!reset`/`!override`, and each document is a mapping.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseYamlFile, repoPath, ROOT, yamlFilesUnder } from './files.js';

// Helm templates are YAML only once rendered: test/deploy/helm.test.ts renders and validates them.
const files = [...yamlFilesUnder(repoPath('deploy')).filter((f) => !/\/deploy\/helm\/[^/]+\/templates\//.test(f)), ...yamlFilesUnder(repoPath('grafana/provisioning'))];

describe('YAML files', () => {
  test('there are YAML files to check in each deploy path', () => {
    const rel = files.map((f) => relative(ROOT, f));
    for (const dir of ['deploy/kubernetes/', 'deploy/compose/', 'deploy/prometheus/', 'grafana/provisioning/']) expect(rel.some((f) => f.startsWith(dir)), dir).toBe(true);
  });

  test.each(files.map((f) => [relative(ROOT, f), f]))('%s parses', (_, file) => {
    const parsed = parseYamlFile(file);
    expect(parsed.errors).toEqual([]);
    expect(parsed.docs.length).toBeGreaterThan(0);
    for (const doc of parsed.docs) expect(typeof doc === 'object' && !Array.isArray(doc), 'each document is a mapping').toBe(true);
  });

  test('the parser is not lenient: duplicate keys, bad indentation and unknown tags fail', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deploy-yaml-'));
    try {
      const cases = {
        'dup.yaml': 'a: 1\na: 2\n',
        'indent.yaml': 'a:\n  b: 1\n c: 2\n',
        'tag.yaml': 'a: !nope 1\n',
        'second-doc.yaml': 'a: 1\n---\nb: [1, 2\n',
      };
      for (const [name, text] of Object.entries(cases)) {
        writeFileSync(join(dir, name), text);
        expect(parseYamlFile(join(dir, name)).errors.length, name).toBeGreaterThan(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
