/**
 * Fleet modules → what a probe of one target runs with. A module names a probe kind and
 * overrides that kind's `probes.<kind>` settings; `moduleConfig` turns it into the daemon
 * config a probe instance expects (target URL, model and API key source of the module, only
 * that kind enabled), so the probers need no notion of fleets.
 */
import type { Config, ModuleConfig } from '../config.js';
import type { ProbeKind } from '../synthetic/index.js';
import { HostMatcher } from '../host-rules.js';

/** The kind's settings with the module's overrides on top. */
export function moduleSettings(config: Config, module: ModuleConfig): Config['probes'][ProbeKind] {
  return { ...config.probes[module.kind], ...module.overrides, enabled: true } as Config['probes'][ProbeKind];
}

/** Whether `target` may receive the module's API key (only hosts in its api_key_hosts do). */
export function keyAllowed(module: ModuleConfig, target: URL): boolean {
  return HostMatcher.of(module.api_key_hosts).allows(target);
}

/**
 * The config a probe of `module` against `targetUrl` runs under: `target` says where and with
 * which model; the API key source is the module's, and is dropped when `sendKey` is false;
 * every kind but the module's is disabled; `interval` (seconds) replaces the kind's interval.
 */
export function moduleConfig(config: Config, module: ModuleConfig, targetUrl: string, opts: { sendKey: boolean; interval?: number }): Config {
  const probes = Object.fromEntries(Object.entries(config.probes).map(([k, v]) => [k, { ...v, enabled: false }])) as Config['probes'];
  const settings = moduleSettings(config, module);
  (probes as Record<string, unknown>)[module.kind] = opts.interval === undefined ? settings : { ...settings, interval: opts.interval };
  const first = module;
  const { api_key_env: _e, api_key_file: _f, ...target } = config.target;
  return {
    ...config,
    target: {
      ...target,
      url: targetUrl,
      model: first.model,
      ...(opts.sendKey && first.api_key_env ? { api_key_env: first.api_key_env } : {}),
      ...(opts.sendKey && first.api_key_file ? { api_key_file: first.api_key_file } : {}),
    },
    probes,
    scrape: { ...config.scrape, enabled: false },
    gpu: { ...config.gpu, enabled: false },
    targets: [],
  };
}

/** The config of the daemon itself in central mode: no probes and no scrape of `target.url`. */
export function withoutLocalTarget(config: Config): Config {
  if (config.targets.length === 0) return config;
  const probes = Object.fromEntries(Object.entries(config.probes).map(([k, v]) => [k, { ...v, enabled: false }])) as Config['probes'];
  return { ...config, probes, scrape: { ...config.scrape, enabled: false } };
}
