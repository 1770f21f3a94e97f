/** What `npm install -g vllm-probe` gives a user: no install-script warning, the docs, a licence. */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { license: string; files: string[]; scripts: Record<string, string> };

describe('the npm package', () => {
  test('has no script that runs at install time (npm warns about those on a global install)', () => {
    for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) expect(pkg.scripts[s], s).toBeUndefined();
    // dist/ is built when the tarball is packed (npm pack, npm publish, installs from git).
    expect(pkg.scripts.prepack).toBe(pkg.scripts.build);
  });

  test('ships every document the README links to, and the licence it names', () => {
    const readme = readFileSync('README.md', 'utf8');
    const links = [...readme.matchAll(/\]\(((?:docs|grafana|deploy|config)\/[^)#\s]+)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(5);
    for (const link of links) {
      expect(existsSync(link), link).toBe(true);
      expect(pkg.files.some((f) => link === f || link.startsWith(`${f}/`)), `${link} is not in package.json files`).toBe(true);
    }
    expect(pkg.license).toBe('Apache-2.0');
    expect(readFileSync('LICENSE', 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004/);
  });

  test('README quotes every URL with a query string (zsh would glob the ?)', () => {
    const readme = readFileSync('README.md', 'utf8');
    const urls = readme.split(/[\s`]+/).filter((w) => /[\w.-]+:\d+\/\S*\?\w+=/.test(w));
    expect(urls.length).toBeGreaterThan(0);
    expect(urls.filter((w) => !/^['"]/.test(w))).toEqual([]);
  });
});
