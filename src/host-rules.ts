/**
 * Host rules for the fleet endpoint: which targets /probe may reach (`probe_endpoint.allow`)
 * and which hosts may receive a module's API key (`modules.*.api_key_hosts`).
 *
 * A rule is one of
 *  - an IP address (`127.0.0.1`, `::1`): that address;
 *  - a CIDR (`10.0.0.0/8`, `fd00::/8`): IP-literal targets inside it;
 *  - a host name (`vllm-0.internal`): exactly that name;
 *  - a pattern `*.vllm.svc.cluster.local`: any name below that domain (one label or more),
 *    not the domain itself.
 * Names never match CIDRs: resolving a name to check it would race the connection's own DNS
 * lookup (DNS rebinding), so a name must be allowed by name. Matching is on the URL's host as
 * the WHATWG parser normalises it (lower case, `0x7f.1` → `127.0.0.1`), port ignored.
 * Pure: no I/O, no config import. It sits at the top of src/, below config.ts, because config
 * validation uses `parseHostRule` and fleet/ matches with `HostMatcher` (folder direction:
 * test/architecture.test.ts).
 */
import { BlockList, isIP } from 'node:net';

export type HostRule =
  | { type: 'address'; text: string; address: string; family: 'ipv4' | 'ipv6' }
  | { type: 'cidr'; text: string; network: string; prefix: number; family: 'ipv4' | 'ipv6' }
  | { type: 'name'; text: string; name: string }
  | { type: 'suffix'; text: string; suffix: string };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const isHostName = (s: string) => s.length <= 253 && s.split('.').every((l) => LABEL.test(l));

/** Parses one rule; a string is the reason it is not one (for config errors). */
export function parseHostRule(text: string): HostRule | string {
  const t = text.trim().toLowerCase().replace(/\.$/, '');
  if (t === '*' || t === '0.0.0.0/0' || t === '::/0') return `${JSON.stringify(text)} would allow any host and make vllm-probe an open proxy; list hosts, CIDRs or "*.domain" patterns`;
  const slash = t.indexOf('/');
  if (slash >= 0) {
    const network = t.slice(0, slash).replace(/^\[|\]$/g, '');
    const prefix = Number(t.slice(slash + 1));
    const v = isIP(network);
    if (!v || !/^\d{1,3}$/.test(t.slice(slash + 1)) || prefix > (v === 4 ? 32 : 128)) return `expected a CIDR like "10.0.0.0/8", got ${JSON.stringify(text)}`;
    return { type: 'cidr', text, network, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
  }
  const bare = t.replace(/^\[|\]$/g, '');
  const v = isIP(bare);
  if (v) return { type: 'address', text, address: canonicalIp(bare), family: v === 4 ? 'ipv4' : 'ipv6' };
  if (t.startsWith('*.')) {
    const suffix = t.slice(2);
    if (!isHostName(suffix) || !suffix.includes('.')) return `expected a pattern like "*.vllm.svc.cluster.local" (a wildcard label in front of a domain with a dot), got ${JSON.stringify(text)}`;
    return { type: 'suffix', text, suffix };
  }
  if (!isHostName(t)) return `expected a host name, an IP address, a CIDR or a "*.domain" pattern, got ${JSON.stringify(text)}`;
  return { type: 'name', text, name: t };
}

/** Parses rules that config validation has already accepted. */
export function parseHostRules(texts: readonly string[]): HostRule[] {
  return texts.map((t) => {
    const r = parseHostRule(t);
    if (typeof r === 'string') throw new Error(`bug: unvalidated host rule: ${r}`);
    return r;
  });
}

/** An IP in the form `new URL()` gives it (IPv6 compressed, no brackets; IPv4-mapped as IPv4). */
function canonicalIp(ip: string): string {
  if (isIP(ip) === 4) return ip;
  const host = new URL(`http://[${ip}]/`).hostname.replace(/^\[|\]$/g, '');
  return mappedIpv4(host) ?? host;
}

/** `::ffff:a00:1` (how WHATWG URL writes ::ffff:10.0.0.1) → `10.0.0.1`. */
function mappedIpv4(ipv6: string): string | undefined {
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(ipv6) ?? undefined;
  if (m) {
    const hi = parseInt(m[1]!, 16);
    const lo = parseInt(m[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ipv6);
  return dotted ? dotted[1] : undefined;
}

/** The host of a URL as rules see it: lower case, no brackets, no trailing dot, mapped IPv4 unwrapped. */
export function ruleHost(url: URL): string {
  const h = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  return isIP(h) === 6 ? (mappedIpv4(h) ?? h) : h;
}

/** A compiled rule list. `match` answers the first rule that matches `url`'s host, if any. */
export class HostMatcher {
  private readonly ips = new BlockList();
  private readonly hasIps: boolean;

  constructor(readonly rules: readonly HostRule[]) {
    for (const r of rules) {
      if (r.type === 'address') this.ips.addAddress(r.address, r.family);
      if (r.type === 'cidr') this.ips.addSubnet(r.network, r.prefix, r.family);
    }
    this.hasIps = rules.some((r) => r.type === 'address' || r.type === 'cidr');
  }

  static of(texts: readonly string[]): HostMatcher {
    return new HostMatcher(parseHostRules(texts));
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** Whether `url`'s host is allowed by some rule. */
  allows(url: URL): boolean {
    const host = ruleHost(url);
    const family = isIP(host);
    if (family) return this.hasIps && this.ips.check(host, family === 4 ? 'ipv4' : 'ipv6');
    return this.rules.some((r) => (r.type === 'name' && r.name === host) || (r.type === 'suffix' && host.endsWith(`.${r.suffix}`)));
  }

  /** The rules as written, for messages. */
  describe(): string {
    return this.rules.map((r) => r.text).join(', ');
  }
}
