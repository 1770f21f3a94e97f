/*
 * A fake nvidia-smi for tests. test/helpers/fake-nvidia-smi.ts copies this file into a temp
 * directory as an executable named `nvidia-smi` (shebang: the node running the tests) next to
 * a `scenario.json`, and the code under test runs it through config.gpu.nvidia_smi_path.
 * CommonJS on purpose: an extensionless copy is loaded as CommonJS.
 *
 * It answers like the real binary (captured on an H100, driver 580.159.04):
 *   --help-query-gpu                         scenario.helpText
 *   --query-gpu=a,b,c --format=csv,noheader,nounits
 *                                            one line per scenario GPU, exactly the asked fields
 *                                            in the asked order; a field absent from the GPU's
 *                                            record prints "[N/A]"; a field the help text does
 *                                            not list fails the whole query like the real one
 *   --query-compute-apps=... (same format)   scenario.apps, asked fields in order
 * Per command, scenario.commands[help|query-gpu|compute-apps] can override: hang (never
 * exit; writes hang.pid first), delayMs, or a fixed { exitCode, stdout, stderr }.
 * Every call appends {args, pid, start, end} to calls.jsonl, so tests can count runs and
 * check that two never overlapped.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = path.dirname(process.argv[1]);
const scenario = JSON.parse(fs.readFileSync(path.join(dir, 'scenario.json'), 'utf8'));
const args = process.argv.slice(2);
const start = Date.now();

function record(extra) {
  fs.appendFileSync(path.join(dir, 'calls.jsonl'), JSON.stringify({ args, pid: process.pid, start, ...extra }) + '\n');
}

function finish(code, stdout, stderr) {
  if (stdout) process.stdout.write(stdout);
  if (stderr) process.stderr.write(stderr);
  record({ end: Date.now(), code });
  process.exitCode = code;
}

/** Field groups from the help text: each name maps to all its spellings ("clocks.current.sm" or "clocks.sm"). */
function aliasGroups(helpText) {
  const groups = new Map();
  for (const raw of helpText.split(/\r?\n/)) {
    const line = raw.trim();
    if (!/^"[A-Za-z0-9_.]+"(\s+or\s+"[A-Za-z0-9_.]+")*$/.test(line)) continue;
    const names = [...line.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
    for (const n of names) groups.set(n, names);
  }
  return groups;
}

function invalid(field) {
  // The real binary prints this on stdout, then a blank line, and exits 2 (see docs/gpu-validation.md).
  finish(2, `Field "${field}" is not a valid field to query.\n\n`, '');
}

function answer() {
  const first = args[0] ?? '';
  const command = first === '--help-query-gpu' ? 'help' : first.startsWith('--query-gpu=') ? 'query-gpu' : first.startsWith('--query-compute-apps=') ? 'compute-apps' : 'other';
  const behaviour = (scenario.commands && scenario.commands[command]) || {};
  const respond = () => {
    if (behaviour.exitCode !== undefined || behaviour.stdout !== undefined || behaviour.stderr !== undefined) {
      return finish(behaviour.exitCode ?? 0, behaviour.stdout ?? '', behaviour.stderr ?? '');
    }
    if (command === 'help') return finish(0, scenario.helpText, '');
    if (command === 'other') return finish(2, '', `fake nvidia-smi: unsupported arguments ${JSON.stringify(args)}\n`);
    if (args[1] !== '--format=csv,noheader,nounits' || args.length !== 2) {
      return finish(2, '', `fake nvidia-smi: expected exactly --format=csv,noheader,nounits after the query, got ${JSON.stringify(args.slice(1))}\n`);
    }
    const fields = first.slice(first.indexOf('=') + 1).split(',');
    if (command === 'query-gpu') {
      const groups = aliasGroups(scenario.helpText);
      const bad = fields.find((f) => !groups.has(f));
      if (bad) return invalid(bad);
      const lines = scenario.gpus.map((gpu) =>
        fields
          .map((f) => {
            const spelling = groups.get(f).find((n) => gpu[n] !== undefined);
            return spelling === undefined ? '[N/A]' : gpu[spelling];
          })
          .join(', '),
      );
      return finish(0, lines.map((l) => l + '\n').join(''), '');
    }
    const appFields = { gpu_uuid: 'gpu_uuid', pid: 'pid', process_name: 'process_name', used_gpu_memory: 'used_gpu_memory', used_memory: 'used_gpu_memory' };
    const bad = fields.find((f) => !(f in appFields));
    if (bad) return invalid(bad);
    const lines = scenario.apps.map((app) => fields.map((f) => app[appFields[f]]).join(', '));
    return finish(0, lines.map((l) => l + '\n').join(''), '');
  };
  if (behaviour.hang) {
    fs.writeFileSync(path.join(dir, 'hang.pid'), String(process.pid));
    record({ hang: true });
    setInterval(() => {}, 60_000);
    return;
  }
  if (behaviour.delayMs) setTimeout(respond, behaviour.delayMs);
  else respond();
}

answer();
