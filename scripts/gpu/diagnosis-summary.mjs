#!/usr/bin/env node
// The per-scenario table of a diagnosis-scenarios.sh results folder, as markdown:
//   node scripts/gpu/diagnosis-summary.mjs RESULTS_DIR > summary.md
//
// Reads seconds.tsv (diagnosis-recorder.mjs) and events.tsv (the driver). For each scenario:
// the fault (the driver's "fault:" event), the expected state, the first second /status's first
// line named it (seconds after the fault, its HTTP code), every state the first line showed
// between the fault and the fault's end ("clear:" event) with the seconds of each, false alarms
// ("stall"/"wedge" in a second in which vLLM's generation counter grew; 503 in a scenario in
// which vLLM could serve, or after the clear while vLLM's /health was 200), and the time from the
// clear to the first "healthy" (or "restarted") line. Then the lines where the first line
// changed, per scenario.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? '.';
const rows = readFileSync(join(dir, 'seconds.tsv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => l.split('\t'))
  .map(([epoch, utc, phase, tPhase, http, health, gen, running, waiting, preempt, kv, awake, ...first]) => ({
    at: Number(epoch), utc, phase, http: Number(http), health, gen: gen === '-' ? null : Number(gen), running, waiting, preempt, kv, awake, line: first.join('\t'),
  }))
  .sort((a, b) => a.at - b.at);
const events = readFileSync(join(dir, 'events.tsv'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => l.split('\t'))
  .map(([at, phase, what]) => ({ at: Number(at), phase, what }));

const stateOf = (line) => (line.match(/^([a-z_]+): /) ?? [])[1] ?? (line === '(no answer)' ? 'no answer' : '?');
const s = (ms) => (ms === undefined ? '–' : `${(ms / 1000).toFixed(0)} s`);
const cut = (t, n = 200) => (t.length > n ? `${t.slice(0, n - 1)}…` : t).replace(/\|/g, '\\|');

// Generation counter grew since the previous line with a reading (so a skipped scrape does not hide it).
let lastGen = null;
for (const r of rows) {
  r.grew = r.gen !== null && lastGen !== null && r.gen > lastGen;
  if (r.gen !== null) lastGen = r.gen;
}

const SCENARIOS = [
  { phase: 'rest', expect: ['healthy'], serving: true },
  { phase: 'saturation', expect: ['saturated'], serving: true },
  { phase: 'wedge', expect: ['wedged'], serving: false },
  { phase: 'sleep1', expect: ['asleep'], serving: true },
  { phase: 'sleep2', expect: ['asleep'], serving: true },
  // While vLLM is stopped "down" is right, and "starting" once the new process runs; the fault
  // clears at the first second the recorder saw /health 200 again.
  { phase: 'restart', expect: ['down', 'starting'], serving: false, clearAtHealth: true },
  { phase: 'kv', expect: ['kv_pressure'], serving: true },
  { phase: 'crash', expect: ['crashed'], serving: false },
  { phase: 'recover', expect: ['crashed', 'starting'], serving: false, clearAtHealth: true },
];

const out = [];
out.push('| scenario | fault | expected | named after | HTTP then | states the first line showed (seconds) | false alarms | clear → healthy |');
out.push('|---|---|---|---|---|---|---|---|');
const details = [];
for (const sc of SCENARIOS) {
  const start = events.find((e) => e.phase === sc.phase && e.what === 'phase start');
  if (!start) continue;
  const fault = events.find((e) => e.phase === sc.phase && e.what.startsWith('fault:')) ?? start;
  let clear = events.find((e) => e.phase === sc.phase && e.what.startsWith('clear:'));
  if (sc.clearAtHealth) {
    const downAt = rows.find((r) => r.at >= fault.at && r.health !== '200')?.at;
    const up = downAt === undefined ? undefined : rows.find((r) => r.at > downAt && r.health === '200');
    if (up) clear = { at: up.at, phase: sc.phase, what: `clear: /health 200 again (recorder, ${up.utc})` };
  }
  const nextPhase = events.find((e) => e.at > start.at && e.what === 'phase start' && e.phase !== sc.phase);
  const endAt = clear?.at ?? nextPhase?.at ?? Infinity;
  const during = rows.filter((r) => r.at >= fault.at && r.at < endAt);
  const named = during.find((r) => sc.expect.includes(stateOf(r.line)));
  const seen = new Map();
  for (const r of during) seen.set(stateOf(r.line), (seen.get(stateOf(r.line)) ?? 0) + 1);
  const alarms = [];
  const stalls = rows.filter((r) => r.at >= fault.at && r.at < (nextAfter(sc.phase) ?? Infinity) && r.grew && /stall|wedge/i.test(r.line));
  if (stalls.length) alarms.push(`${stalls.length} s "stall/wedge" while tokens grew`);
  const bad503 = sc.serving ? during.filter((r) => r.http === 503) : [];
  if (bad503.length) alarms.push(`${bad503.length} s HTTP 503`);
  // After the clear: the first healthy line (for a restart: "restarted" after /health 200).
  const afterEnd = nextAfter(sc.phase) ?? Infinity;
  const after = clear ? rows.filter((r) => r.at >= clear.at && r.at < afterEnd) : [];
  const backStates = sc.back ?? ['healthy', 'restarted']; // "restarted" is a healthy verdict (200), shown for a while after a restart
  const back = after.find((r) => backStates.includes(stateOf(r.line)));
  const afterOther = new Map();
  for (const r of after) if (!backStates.includes(stateOf(r.line))) afterOther.set(stateOf(r.line), (afterOther.get(stateOf(r.line)) ?? 0) + 1);
  // After the clear vLLM can serve again: a 503 there drains a replica that works.
  const after503 = after.filter((r) => r.http === 503 && r.health === '200');
  if (after503.length) alarms.push(`${after503.length} s HTTP 503 after the clear while /health was 200 (${[...new Set(after503.map((r) => stateOf(r.line)))].join(', ')})`);
  const backWords = clear ? (back ? `${s(back.at - clear.at)} (${stateOf(back.line)})` : `not within ${s((after.at(-1)?.at ?? clear.at) - clear.at)}`) + (afterOther.size ? `; meanwhile ${[...afterOther].map(([k, v]) => `${k} ${v} s`).join(', ')}` : '') : '–';
  out.push(`| ${sc.phase} | ${cut(fault.what, 60)} | ${sc.expect.join('/')} | ${named ? s(named.at - fault.at) : `**not named** in ${s(endAt === Infinity ? (during.at(-1)?.at ?? fault.at) - fault.at : endAt - fault.at)}`} | ${named?.http ?? '–'} | ${[...seen].map(([k, v]) => `${k} ${v}`).join(', ')} | ${alarms.join('; ') || 'none'} | ${backWords} |`);
  // Changes of the first line (state or code), fault window and after.
  const lines = rows.filter((r) => r.at >= start.at && r.at < afterEnd);
  const changes = [];
  let prev = '';
  for (const r of lines) {
    const key = `${r.http} ${stateOf(r.line)} ${r.health}`;
    if (key !== prev) changes.push(r);
    prev = key;
  }
  details.push(`\n### ${sc.phase}\n`);
  for (const e of events.filter((e) => e.at >= start.at && e.at < afterEnd && !e.what.startsWith('snapshot'))) details.push(`- ${new Date(e.at).toISOString().slice(11, 23)} ${e.phase}: ${cut(e.what, 300)}`);
  details.push('\n| t from fault | phase | /status | vLLM /health | gen tokens | run/wait/preempt/KV% | first line |\n|---|---|---|---|---|---|---|');
  for (const r of changes) details.push(`| ${((r.at - fault.at) / 1000).toFixed(0)} s | ${r.phase} | ${r.http} | ${r.health} | ${r.gen ?? '-'} | ${r.running}/${r.waiting}/${r.preempt}/${r.kv} | ${cut(r.line)} |`);
}

function nextAfter(phase) {
  // End of a scenario including its "-after" phase: the next phase start that is neither.
  const start = events.find((e) => e.phase === phase && e.what === 'phase start');
  if (!start) return undefined;
  return events.find((e) => e.at > start.at && e.what === 'phase start' && e.phase !== phase && e.phase !== `${phase}-after`)?.at;
}

const allStalls = rows.filter((r) => r.grew && /stall|wedge/i.test(r.line));
console.log(`# Diagnosis scenarios: ${rows.length} seconds recorded, ${rows[0]?.utc ?? '?'}–${rows.at(-1)?.utc ?? '?'} UTC\n`);
console.log(out.join('\n'));
console.log(`\n"stall"/"wedge" in a first line while vLLM's generation counter grew: ${allStalls.length} s in the whole run${allStalls.length ? ` (first at ${allStalls[0].utc}: ${cut(allStalls[0].line, 160)})` : ''}.`);
console.log(`Longest first line: ${Math.max(...rows.map((r) => r.line.length))} characters.`);
console.log(`\n## Where the first line changed\n${details.join('\n')}`);
