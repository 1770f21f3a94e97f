import { describe, expect, test } from 'vitest';
import { HostMatcher, parseHostRule } from '../src/host-rules.js';

const m = HostMatcher.of(['127.0.0.1', '10.0.0.0/8', '*.vllm.svc.cluster.local', 'gateway.internal', 'fd00::/8', '::1']);
const allows = (url: string) => m.allows(new URL(url));

describe('probe_endpoint.allow matching', () => {
  test.each([
    ['http://127.0.0.1:8000', true],
    ['http://0x7f.1:8000', true], // WHATWG normal form: 127.0.0.1
    ['http://2130706433/', true],
    ['http://127.0.0.2:8000', false],
    ['http://10.200.3.4:8000', true],
    ['http://11.0.0.1:8000', false],
    ['http://[::ffff:10.0.0.1]:8000', true], // IPv4-mapped IPv6 is the IPv4 address
    ['http://[fd12::1]:8000', true],
    ['http://[::1]:8000', true],
    ['http://[fe80::1]:8000', false],
    ['http://pod-0.vllm.svc.cluster.local:8000', true],
    ['http://a.b.vllm.svc.cluster.local', true],
    ['http://VLLM-0.Vllm.Svc.Cluster.Local.', true], // case and trailing dot
    ['http://vllm.svc.cluster.local', false], // the domain itself is not below it
    ['http://evilvllm.svc.cluster.local', false],
    ['http://pod.vllm.svc.cluster.local.evil.com', false],
    ['http://gateway.internal:443', true],
    ['http://x.gateway.internal', false], // a name is exact
    ['http://localhost:8000', false], // a name is never matched by an address rule
  ])('%s → %s', (url, expected) => {
    expect(allows(url)).toBe(expected);
  });

  test('an empty list allows nothing', () => {
    expect(HostMatcher.of([]).allows(new URL('http://127.0.0.1'))).toBe(false);
    expect(HostMatcher.of([]).empty).toBe(true);
  });

  test('malformed rules say what is expected', () => {
    expect(parseHostRule('10.0.0.0/40')).toBe('expected a CIDR like "10.0.0.0/8", got "10.0.0.0/40"');
    expect(parseHostRule('*')).toBe('"*" would allow any host and make vllm-probe an open proxy; list hosts, CIDRs or "*.domain" patterns');
    expect(parseHostRule('0.0.0.0/0')).toMatch(/open proxy/);
    expect(parseHostRule('*.com')).toMatch(/^expected a pattern like/);
    expect(parseHostRule('a.*.com')).toMatch(/^expected a host name/);
    expect(parseHostRule('http://x')).toMatch(/^expected a CIDR/);
  });
});
