/**
 * prom-client's Registry, Counter, Gauge and Histogram, each from its own module instead of the
 * package index. The index also loads the Summary (with its t-digest), the Pushgateway (http,
 * https), the default process metrics and the cluster aggregator (Node's cluster module), none
 * of which we use: importing the index costs a process +11 MB RSS, these four +0.6 MB (measured
 * side by side, docs/benchmarks.md, footprint; issue 28). prom-client has no exports map and
 * these files are where its index takes them from, so the paths hold within a major version
 * (package.json pins 15.x; test/prom-client.test.ts checks they are the index's classes).
 */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const load = createRequire(import.meta.url);

export const Registry = load('prom-client/lib/registry') as typeof Prom.Registry;
export type Registry = Prom.Registry;
export const Counter = load('prom-client/lib/counter') as typeof Prom.Counter;
export type Counter<T extends string = string> = Prom.Counter<T>;
export const Gauge = load('prom-client/lib/gauge') as typeof Prom.Gauge;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export const Histogram = load('prom-client/lib/histogram') as typeof Prom.Histogram;
export type Histogram<T extends string = string> = Prom.Histogram<T>;
export type { MetricValueWithName } from 'prom-client';
