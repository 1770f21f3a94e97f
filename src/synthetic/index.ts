/**
 * The probe kinds. Every list of kinds (scheduling, /status checks, series created at 0,
 * fleet modules) is derived from this map; the compiler makes each config block have an entry.
 */
import type { Config } from '../config.js';
import { modelsProbe } from './models.js';
import { prefixProbe } from './prefix-cache.js';
import type { ProbeKindSpec } from './prober.js';
import { tokenizeProbe } from './tokenize.js';
import { ttftProbe } from './ttft.js';

export type ProbeKind = keyof Config['probes'];

export const probers: { readonly [K in ProbeKind]: ProbeKindSpec<Config['probes'][K]> } = {
  ttft: ttftProbe,
  prefix: prefixProbe,
  models: modelsProbe,
  tokenize: tokenizeProbe,
};

export const PROBE_KINDS = Object.keys(probers) as ProbeKind[];
