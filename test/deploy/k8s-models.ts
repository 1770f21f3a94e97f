/**
 * Kubernetes manifest validation offline, with the kubernetes-models packages:
 *
 * 1. `validate()`: the JSON schemas from the Kubernetes OpenAPI spec (and the prometheus-operator
 *    CRDs) compiled into each model class: types, required fields, enums, patterns.
 * 2. Unknown fields: those schemas allow extra properties (as the API server's non-strict mode
 *    does), so a typo such as `readinesProbe` would pass. `kubectl apply` rejects unknown fields
 *    (strict field validation), so this checks every key against the same package's TypeScript
 *    declarations, walked with the TypeScript compiler's type checker.
 */
import ts from 'typescript';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { Probe } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/Probe';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { ROOT } from './files.js';

interface Model {
  validate(): void;
}
type ModelClass = new (data: never) => Model;

/** apiVersion/kind → model class and its declaration (module, interface). */
const KINDS: Record<string, { model: ModelClass; module: string; iface: string }> = {
  'apps/v1/Deployment': { model: Deployment as unknown as ModelClass, module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  'v1/Service': { model: Service as unknown as ModelClass, module: 'kubernetes-models/v1/Service', iface: 'IService' },
  'v1/ConfigMap': { model: ConfigMap as unknown as ModelClass, module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  'v1/Secret': { model: Secret as unknown as ModelClass, module: 'kubernetes-models/v1/Secret', iface: 'ISecret' },
  'monitoring.coreos.com/v1/ServiceMonitor': { model: ServiceMonitor as unknown as ModelClass, module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor', iface: 'IServiceMonitor' },
  'monitoring.coreos.com/v1/PrometheusRule': { model: PrometheusRule as unknown as ModelClass, module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule', iface: 'IPrometheusRule' },
  'monitoring.coreos.com/v1/Probe': { model: Probe as unknown as ModelClass, module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/Probe', iface: 'IProbe' },
  'monitoring.coreos.com/v1/PodMonitor': { model: PodMonitor as unknown as ModelClass, module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor', iface: 'IPodMonitor' },
};

const kindKey = (doc: { apiVersion?: unknown; kind?: unknown }) => `${String(doc.apiVersion)}/${String(doc.kind)}`;

/** Schema errors for one manifest; [] when valid. An unsupported kind is an error too. */
export function schemaErrors(doc: Record<string, unknown>): string[] {
  const entry = KINDS[kindKey(doc)];
  if (!entry) return [`no schema for ${kindKey(doc)}`];
  try {
    new entry.model(structuredClone(doc) as never).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

let checker: { check: ts.TypeChecker; types: Map<string, ts.Type> } | undefined;

/** One TypeScript program over the model declarations, built once (about a second). */
function typeChecker() {
  if (checker) return checker;
  const virtual = `${ROOT}/test/deploy/__k8s_model_types__.ts`;
  const source = [
    ...Object.values(KINDS).map((k, i) => `import type { ${k.iface} as T${i} } from '${k.module}';`),
    'export interface All {',
    ...Object.keys(KINDS).map((key, i) => `  '${key}': T${i};`),
    '}',
  ].join('\n');
  const options: ts.CompilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true, skipLibCheck: true, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => (name === virtual ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === virtual || fileExists(name);
  const program = ts.createProgram([virtual], options, host);
  const diagnostics = ts.getPreEmitDiagnostics(program, program.getSourceFile(virtual));
  if (diagnostics.length) throw new Error(`model declarations did not resolve: ${ts.flattenDiagnosticMessageText(diagnostics[0]!.messageText, '\n')}`);
  const check = program.getTypeChecker();
  const file = program.getSourceFile(virtual)!;
  const all = file.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === 'All')!;
  const allType = check.getTypeAtLocation(all);
  const types = new Map<string, ts.Type>();
  for (const key of Object.keys(KINDS)) {
    const prop = allType.getProperty(key)!;
    types.set(key, check.getTypeOfSymbolAtLocation(prop, all));
  }
  checker = { check, types };
  return checker;
}

/** Fields that the model declarations do not know, as `path: unknown field`. */
export function unknownFields(doc: Record<string, unknown>): string[] {
  const { check, types } = typeChecker();
  const root = types.get(kindKey(doc));
  if (!root) return [`no declarations for ${kindKey(doc)}`];
  const out: string[] = [];
  const walk = (value: unknown, type: ts.Type, path: string): void => {
    if (value === null || typeof value !== 'object') return;
    const t = check.getNonNullableType(type);
    if (t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
    const members = t.isUnion() ? t.types : [t];
    if (Array.isArray(value)) {
      const element = members.map((m) => check.getIndexTypeOfType(m, ts.IndexKind.Number)).find(Boolean);
      if (!element) return void out.push(`${path}: expected an object, got a list`);
      value.forEach((v, i) => walk(v, element, `${path}[${i}]`));
      return;
    }
    const index = members.map((m) => check.getIndexTypeOfType(m, ts.IndexKind.String)).find(Boolean);
    for (const [key, v] of Object.entries(value)) {
      const prop = members.map((m) => m.getProperty(key)).find(Boolean);
      if (prop) walk(v, check.getTypeOfSymbol(prop), `${path}.${key}`);
      else if (index) walk(v, index, `${path}.${key}`);
      else out.push(`${path}.${key}: unknown field`);
    }
  };
  walk(doc, root, String(doc.kind));
  return out;
}

/** Both checks for one manifest. */
export function manifestErrors(doc: Record<string, unknown>): string[] {
  const schema = schemaErrors(doc);
  return schema.length && schema[0]!.startsWith('no schema') ? schema : [...schema, ...unknownFields(doc)];
}

/** RFC 1123 label names (Services, containers, ports…) and subdomain names (most objects). */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Kubernetes resource quantities ("250m", "64Mi", "1", "1.5G") in base units. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(q);
  if (!m) throw new Error(`not a quantity: ${q}`);
  const units: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
  return Number(m[1]) * units[m[2] ?? '']!;
}
