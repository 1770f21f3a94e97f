/** The fleet config blocks: probe_endpoint, modules and targets, with exact messages. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { runCli } from '../../src/cli.js';
import { loadConfig, parseConfig } from '../../src/config.js';
import { moduleConfig, moduleSettings } from '../../src/fleet/modules.js';

const dir = mkdtempSync(join(tmpdir(), 'fleet-cfg-'));
const file = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

const INVALID: Array<[string, string, string]> = [
  ['unknown kind', 'modules:\n  m: {kind: tft}\n', 'modules.m.kind: expected one of "ttft", "prefix", "models", "tokenize", got "tft"'],
  ['a setting the kind lacks', 'modules:\n  m: {kind: models, max_tokens: 4}\n', 'modules.m.max_tokens: unknown key (check the spelling; see config/vllm-probe.example.yaml)'],
  ['a bad override', 'modules:\n  m: {kind: ttft, timeout: soon}\n', 'modules.m.timeout: expected a duration like "15s" of at least 1ms, got "soon"'],
  ['interval is not a module setting', 'modules:\n  m: {kind: ttft, interval: 15s}\n', 'modules.m.interval: unknown key (check the spelling; see config/vllm-probe.example.yaml)'],
  ['a key without hosts', 'modules:\n  m: {kind: ttft, api_key_env: VLLM_KEY}\n', 'modules.m.api_key_hosts: expected the hosts that may receive the API key (the key is never sent elsewhere), got nothing'],
  ['a bad module name', 'modules:\n  "a b": {kind: ttft}\n', 'modules.a b: expected a name of letters, digits, "_" and "-", got "a b"'],
  ['an open allow-list', 'probe_endpoint:\n  allow: ["*"]\n', 'probe_endpoint.allow[0]: "*" would allow any host and make vllm-probe an open proxy; list hosts, CIDRs or "*.domain" patterns'],
  ['a bad CIDR', 'probe_endpoint:\n  allow: [10.0.0.0/33]\n', 'probe_endpoint.allow[0]: expected a CIDR like "10.0.0.0/8", got "10.0.0.0/33"'],
  ['a target naming an unknown module', 'modules:\n  ttft: {kind: ttft}\ntargets:\n  - {url: "http://10.0.0.5:8000", modules: [ttf]}\n', 'targets[0].modules[0]: unknown module "ttf" (known: ttft)'],
  ['a target listed twice', 'modules:\n  ttft: {kind: ttft}\ntargets:\n  - {url: "http://10.0.0.5:8000", modules: [ttft]}\n  - {url: "http://10.0.0.5:8000/", modules: [ttft]}\n', 'targets[1].url: expected each target once (its series would collide with targets[0]); list several modules instead, got "http://10.0.0.5:8000" again'],
  ['two modules of one kind on a target', 'modules:\n  a: {kind: ttft}\n  b: {kind: ttft, endpoint: chat}\ntargets:\n  - {url: "http://10.0.0.5:8000", modules: [a, b]}\n', 'targets[0].modules[1]: expected modules of distinct kinds (their series are told apart by probe kind), got "b" and "a", both ttft'],
  ['an interval not above the timeout', 'modules:\n  ttft: {kind: ttft, timeout: 20s}\ntargets:\n  - {url: "http://10.0.0.5:8000", modules: [ttft], interval: 15s}\n', 'targets[0].interval: expected a duration above the timeout of module "ttft" (20s), got 15s'],
  ['a reserved label', 'modules:\n  ttft: {kind: ttft}\ntargets:\n  - {url: "http://10.0.0.5:8000", modules: [ttft], labels: {instance: x}}\n', 'targets[0].labels.instance: expected a label name vllm-probe or Prometheus does not set itself, got "instance"'],
  ['an unreadable module key file', 'modules:\n  k: {kind: ttft, api_key_file: /nonexistent/vllm-probe/key, api_key_hosts: [127.0.0.1]}\n', 'modules.k.api_key_file: expected a readable file, got "/nonexistent/vllm-probe/key" (ENOENT)'],
  ['a target the module key may not go to', 'modules:\n  k: {kind: ttft, api_key_env: K, api_key_hosts: ["*.vllm.svc.cluster.local"]}\ntargets:\n  - {url: "http://10.0.0.5:8000", modules: [k]}\n', 'targets[0].url: the host is not in modules.k.api_key_hosts, so its API key would not be sent; add the host there or use another module, got "http://10.0.0.5:8000"'],
];

describe('fleet config validation', () => {
  test.each(INVALID)('%s is rejected naming the field', (_what, yaml, message) => {
    const f = file(`${_what.replaceAll(' ', '-')}.yaml`, yaml);
    expect(() => loadConfig(f)).toThrowError(`${f}: ${message}`);
  });

  test('check-config exits 2 with the message', async () => {
    const f = file('cli.yaml', INVALID[0]![1]);
    let err = '';
    const code = await runCli(['check-config', f], { stdout: () => undefined, stderr: (t) => (err += t), signal: new AbortController().signal, env: {} });
    expect(code).toBe(2);
    expect(err).toBe(`${f}: ${INVALID[0]![2]}\n`);
  });

  test('the smallest fleet config from issue 17 is valid and means what it says', () => {
    const config = parseConfig({ probe_endpoint: { allow: ['127.0.0.1', '10.0.0.0/8', '*.vllm.svc.cluster.local'] }, modules: { ttft: { kind: 'ttft' } } });
    expect(config.probe_endpoint).toEqual({ allow: ['127.0.0.1', '10.0.0.0/8', '*.vllm.svc.cluster.local'], timeout_offset: 0.5, max_concurrent: 16, max_concurrent_per_target: 2 });
    expect(moduleSettings(config, config.modules.ttft!)).toEqual({ ...config.probes.ttft, enabled: true });
  });

  test('a module overrides only what it names, on top of probes.<kind>', () => {
    const config = parseConfig({ probes: { ttft: { prompt: 'Hi', max_tokens: 8 } }, modules: { chat: { kind: 'ttft', endpoint: 'chat', max_tokens: 2, model: 'm', timeout: '3s' } } });
    const probe = moduleConfig(config, config.modules.chat!, 'http://10.0.0.5:8000', { sendKey: false });
    expect(probe.probes.ttft).toMatchObject({ enabled: true, endpoint: 'chat', max_tokens: 2, prompt: 'Hi', timeout: 3 });
    expect(probe.probes.prefix.enabled).toBe(false);
    expect(probe.target).toMatchObject({ url: 'http://10.0.0.5:8000', model: 'm' });
  });

  test('the fleet blocks commented out in config/vllm-probe.example.yaml are valid when uncommented', () => {
    const text = readFileSync('config/vllm-probe.example.yaml', 'utf8');
    const fleet = text.slice(text.indexOf('# Fleet mode'));
    const uncommented = fleet
      .replace(/^# (modules:|targets:)/gm, '$1')
      .replace(/^#( {2,}\S)/gm, '$1')
      .replace(/^( {2})# {1,2}( *- )/gm, '$1$2')
      .replace('allow: []', 'allow:');
    const config = parseConfig(parse(uncommented));
    expect(config.probe_endpoint.allow).toEqual(['127.0.0.1', '10.0.0.0/8', '*.vllm.svc.cluster.local']);
    expect(Object.keys(config.modules)).toEqual(['ttft', 'chat', 'models']);
    expect(config.targets).toHaveLength(1);
  });
});
