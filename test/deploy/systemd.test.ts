/**
 * deploy/systemd/vllm-probe.service: what it must say for a bare-metal GPU host, and
 * `systemd-analyze verify` with no warning (it exits 0 on unknown keys and bad values, and says
 * so on stderr). CI installs the tool (scripts/install-systemd-analyze, REQUIRE_SYSTEMD=1).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';

const UNIT = 'deploy/systemd/vllm-probe.service';
const text = readFileSync(UNIT, 'utf8');

/** `Key=value` lines of one section, a key given several times kept in order. */
function section(name: string): Array<[string, string]> {
  const body = text.split(/^\[/m).find((s) => s.startsWith(`${name}]`)) ?? '';
  return body
    .split('\n')
    .slice(1)
    .filter((l) => /^[A-Za-z]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]);
}
const service = new Map(section('Service'));

const ANALYZE = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();
const skipVerify = !ANALYZE && process.env.REQUIRE_SYSTEMD !== '1';
if (skipVerify) process.stderr.write('note: systemd-analyze not installed; run scripts/install-systemd-analyze to verify the unit\n');

describe('the systemd unit', () => {
  test('runs the installed binary on the config under /etc, reloads with SIGHUP, restarts on failure', () => {
    expect(service.get('ExecStart')).toBe('/usr/local/bin/vllm-probe serve --config /etc/vllm-probe/config.yaml');
    expect(service.get('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(service.get('Restart')).toBe('on-failure');
    expect(new Map(section('Install')).get('WantedBy')).toBe('multi-user.target');
    // The config it names is one the daemon accepts: the example config, installed as documented.
    expect(text).toContain('install -D -m 0644 config/vllm-probe.example.yaml /etc/vllm-probe/config.yaml');
    expect(parse(readFileSync('config/vllm-probe.example.yaml', 'utf8'))).toBeTruthy();
  });

  test('is hardened: its own user, a read-only system, no capabilities, and the GPU and vLLM\'s /proc still reachable', () => {
    expect(service.get('DynamicUser')).toBe('yes');
    expect(service.get('ProtectSystem')).toBe('strict');
    expect(service.get('ProtectHome')).toBe('yes');
    expect(service.get('NoNewPrivileges')).toBe('yes');
    expect(service.get('CapabilityBoundingSet')).toBe('');
    // nvidia-smi needs /dev/nvidia*, the vllm_process check another user's /proc/<pid>, Node's JIT W+X pages.
    for (const key of ['PrivateDevices', 'ProtectProc', 'MemoryDenyWriteExecute']) expect(service.has(key), key).toBe(false);
  });

  test.skipIf(skipVerify)('systemd-analyze verify has nothing to say', () => {
    const dir = mkdtempSync(join(tmpdir(), 'unit-'));
    try {
      // verify checks that ExecStart exists; here the binary is not installed, so point it at one that is.
      const copy = join(dir, 'vllm-probe.service');
      writeFileSync(copy, text.replace(/^ExecStart=\/usr\/local\/bin\/vllm-probe /m, `ExecStart=${process.execPath} `));
      const r = spawnSync(ANALYZE ?? 'systemd-analyze', ['verify', copy], { encoding: 'utf8' });
      expect(r.stderr + r.stdout).toBe('');
      expect(r.status).toBe(0);
      // And it does speak up: a misspelt key is reported.
      writeFileSync(copy, readFileSync(copy, 'utf8').replace('ProtectSystem=strict', 'ProtectSytem=strict'));
      expect(spawnSync(ANALYZE ?? 'systemd-analyze', ['verify', copy], { encoding: 'utf8' }).stderr).toContain("Unknown key 'ProtectSytem'");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
