/**
 * Runbook links that work: every alert links to `alerts.runbook_base_url#<alert>`, a URL the
 * operator chose; the default is a documented placeholder that `vllm-probe rules` refuses, and
 * no checked-in rule links to a host the docs do not name (issue 27).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, test } from 'vitest';
import { runCli } from '../../src/cli.js';
import { RUNBOOK_PLACEHOLDER } from '../../src/config.js';

const cli = async (args: string[]) => {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env: {} });
  return { code, out, err };
};

/** Every `runbook_url` annotation in a YAML text (rules files, PrometheusRules, multi-document manifests). */
function runbookUrls(text: string): string[] {
  const urls: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'runbook_url' && typeof x === 'string') urls.push(x);
        else walk(x);
      }
    }
  };
  for (const doc of parseAllDocuments(text)) walk(doc.toJS());
  return urls;
}

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFilesUnder(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

describe('vllm-probe rules and the runbook base URL', () => {
  test('without alerts.runbook_base_url it refuses in one line, naming the setting, the flag and the shipped runbook', async () => {
    const r = await cli(['rules']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toContain('alerts.runbook_base_url is not set');
    expect(r.err).toContain('--runbook-base-url URL');
    const shipped = /shipped at (\S+?\.md)\)/.exec(r.err)?.[1];
    expect(shipped && existsSync(shipped) && readFileSync(shipped, 'utf8')).toMatch(/^# vllm-probe runbook/);
  });

  test('--runbook-base-url: every alert links to its section under that URL', async () => {
    const base = 'https://wiki.example.com/ops/vllm-probe-runbook';
    const r = await cli(['rules', '--runbook-base-url', base]);
    expect(r.code).toBe(0);
    const urls = runbookUrls(r.out);
    expect(urls.length).toBeGreaterThan(10);
    for (const url of urls) expect(url).toMatch(new RegExp(`^${base}#[a-z0-9]+$`));
  });

  test('alerts.runbook_base_url from the config file, also in the PrometheusRule', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runbook-'));
    try {
      const file = join(dir, 'c.yaml');
      writeFileSync(file, 'alerts:\n  runbook_base_url: https://git.example.org/sre/runbooks/vllm.md\n');
      const r = await cli(['rules', '--kubernetes', '--config', file]);
      expect(r.code).toBe(0);
      const urls = runbookUrls(r.out);
      expect(urls.length).toBeGreaterThan(10);
      for (const url of urls) expect(url.startsWith('https://git.example.org/sre/runbooks/vllm.md#')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a --runbook-base-url that is not a URL is one line, exit 2', async () => {
    const r = await cli(['rules', '--runbook-base-url', 'wiki/runbook']);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^--runbook-base-url: alerts\.runbook_base_url: /);
  });
});

describe('checked-in runbook links', () => {
  const files = yamlFilesUnder('deploy').filter((f) => readFileSync(f, 'utf8').includes('runbook_url'));

  test('every runbook_url under deploy/ is the documented placeholder plus the alert\'s section in docs/runbook.md', () => {
    expect(files.length).toBeGreaterThan(2);
    const sections = readFileSync('docs/runbook.md', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('## '))
      .map((l) => l.slice(3));
    for (const file of files) {
      for (const url of runbookUrls(readFileSync(file, 'utf8'))) {
        const [base, anchor] = url.split('#');
        expect(base, `${file}: ${url}`).toBe(RUNBOOK_PLACEHOLDER);
        expect(sections, `${file}: ${url}`).toContain(anchor);
      }
    }
  });

  test('the placeholder is documented where an operator looks: the runbook, the example config, docs/deploy.md', () => {
    expect(new URL(RUNBOOK_PLACEHOLDER).hostname).toMatch(/\.invalid$/); // RFC 2606: resolves nowhere
    for (const doc of ['docs/runbook.md', 'docs/deploy.md']) expect(readFileSync(doc, 'utf8'), doc).toContain(RUNBOOK_PLACEHOLDER);
    const example = parse(readFileSync('config/vllm-probe.example.yaml', 'utf8')) as { alerts: Record<string, unknown> };
    expect(example.alerts.runbook_base_url).toBe(RUNBOOK_PLACEHOLDER);
  });
});
