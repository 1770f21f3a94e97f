/**
 * The floor under the daemon's footprint (benchmark 3): a bare Node process that makes only
 * the requests the daemon makes at its default config, on the same schedule, and nothing else:
 * no parsing beyond reading the bodies, no metrics, no logging, no /status. The gap between the
 * daemon and this process is the project's; what this process uses is Node's.
 *
 *   node benchmarks/floor.mjs BASE_URL NVIDIA_SMI_PATH
 *
 * Every 15 s: a streamed completion of 16 tokens (the TTFT probe), GET /metrics, /health and
 * /version (the scrape), nvidia-smi --query-gpu (the GPU collector), /proc/stat and
 * /proc/meminfo (the host collector). Every 30 s: GET /health and /v1/models (the models
 * probe). Every 60 s: two streamed completions with a ~1,024-token shared prefix, 4 tokens each
 * (the prefix probe: one forced miss, one hit). One keep-alive node:http Agent, or with
 * FLOOR_CLIENT=undici one undici Pool (the daemon's client), to weigh the HTTP client alone.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';

const [base, nvidiaSmi] = process.argv.slice(2);
const url = new URL(base);
const agent = new Agent({ keepAlive: true, maxSockets: 4 });
const PREFIX = Array.from({ length: 780 }, (_, i) => ['system', 'latency', 'token', 'cache', 'batch', 'queue'][i % 6]).join(' ');

const undiciPool = process.env.FLOOR_CLIENT === 'undici' ? new (await import('undici')).Pool(base, { connections: 4 }) : undefined;

async function callUndici(method, path, body, keep) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  try {
    const res = await undiciPool.request({ method, path, body: payload, headers: payload ? { 'content-type': 'application/json' } : {}, headersTimeout: 10_000, bodyTimeout: 10_000 });
    let text = '';
    for await (const d of res.body) if (keep) text += d;
    return text;
  } catch {
    return '';
  }
}

function call(method, path, body, keep = false) {
  if (undiciPool) return callUndici(method, path, body, keep);
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ host: url.hostname, port: url.port, method, path, agent, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, (res) => {
      let text = '';
      res.on('data', (d) => {
        if (keep) text += d;
      });
      res.on('end', () => resolve(text));
      res.on('error', resolve);
    });
    req.setTimeout(10_000, () => req.destroy());
    req.on('error', resolve);
    req.end(payload);
  });
}

// The served model, asked once at start-up (the daemon asks /v1/models too).
const model = JSON.parse(await call('GET', '/v1/models', undefined, true)).data[0].id;
const completion = (prompt, maxTokens) => call('POST', '/v1/completions', { model, prompt, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true }, temperature: 0, ignore_eos: true });

function every(ms, fn) {
  fn();
  setInterval(fn, ms);
}

let n = 0;
every(15_000, () => {
  void completion('Write one sentence about the ocean.', 16);
  void call('GET', '/metrics').then(() => call('GET', '/health')).then(() => call('GET', '/version'));
  execFile(nvidiaSmi, ['--query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw', '--format=csv,noheader,nounits'], () => {});
  void readFile('/proc/stat', 'utf8').then(() => readFile('/proc/meminfo', 'utf8'));
});
every(30_000, () => void call('GET', '/health').then(() => call('GET', '/v1/models')));
every(60_000, () => {
  n++;
  void completion(`[miss ${n}] ${PREFIX} suffix ${n}`, 4).then(() => completion(`${PREFIX} hit ${n}`, 4));
});
process.stdout.write('READY\n');
