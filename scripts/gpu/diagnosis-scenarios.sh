#!/usr/bin/env bash
# The diagnosis scenarios of issue 22 on one real vLLM (GPU) with one vllm-probe daemon beside it:
# what /status said, second by second, in each everyday incident. See scripts/gpu/README.md.
#
#   MODEL=/tmp/models/b1 RESULTS=/tmp/diag scripts/gpu/diagnosis-scenarios.sh [PHASE...]
#
# Phases (default: all, in this order; each can be run alone, in later calls, against the same
# RESULTS: the daemon and the recorder run in their own sessions and keep going between calls):
#   server      start vLLM with MAIN_FLAGS (sleep mode on, VLLM_SERVER_DEV_MODE=1) unless one answers
#   setup       write the daemon's config, start the daemon and the per-second recorder, wait for healthy
#   rest        nothing happens for REST_S seconds (expected: healthy)
#   saturation  SAT_WORKERS streams of ~SAT_PROMPT prompt + SAT_OUT output tokens for SAT_S s (saturated)
#   wedge       SIGSTOP of the VLLM::EngineCore process for WEDGE_S s, then SIGCONT (wedged)
#   sleep       POST /sleep?level=1 for SLEEP_S s, /wake_up; then level 2 and its wake-up steps
#               (/wake_up?tags=weights, /collective_rpc reload_weights, /wake_up?tags=kv_cache) (asleep)
#   restart     SIGTERM of vLLM's process group, start again with RESTART_FLAGS (down, then restarted)
#   kv          KV_FLAGS (--num-gpu-blocks-override): KV_WORKERS long streams for KV_S s (kv_pressure)
#   crash       a load runs; SIGKILL of the EngineCore process; CRASH_S s watched (crashed)
#   recover     start vLLM again with the same flags, as a supervisor would (starting, then restarted)
#   finish      stop the recorder, the daemon and vLLM; the per-scenario summary; one tarball
# After each fault clears the driver watches AFTER_S more seconds (time back to healthy).
#
# Files in RESULTS: seconds.tsv (diagnosis-recorder.mjs: one line a second), events.tsv (what the
# driver did, when), load-*.json (the load's own summary), snap/ (full /status at named moments),
# summary.md (diagnosis-summary.mjs), daemon.log, vllm-*.log, vp.yaml.
#
# Environment (defaults in brackets):
#   MODEL (required unless DRY_RUN), RESULTS [/tmp/diag], VP [node <repo>/bin/vllm-probe.js]
#   PORT [18000], DAEMON_PORT [9470], SERVED_NAME [tiny-llama], VLLM_EXTRA_FLAGS (every start)
#   MAIN_FLAGS    ["--max-model-len 4096 --gpu-memory-utilization 0.50 --enforce-eager --enable-prefix-caching
#                   --max-num-seqs 128 --enable-sleep-mode"]
#   KV_FLAGS      ["--max-model-len 4096 --gpu-memory-utilization 0.50 --enforce-eager --enable-prefix-caching
#                   --num-gpu-blocks-override 512"];  RESTART_FLAGS [$KV_FLAGS: the restart also sets up kv]
#   REST_S [20] SAT_S [60] SAT_WORKERS [256] SAT_PROMPT [1000] SAT_OUT [256]
#   KV_S [90] KV_WORKERS [64] KV_PROMPT [1542] KV_OUT [1024]
#   WEDGE_S [25] SLEEP_S [30] AFTER_S [20] CRASH_S [25] CRASH_WORKERS [32]
#   PROBE_S [3] (TTFT and models probes; timeouts PROBE_S - 1), SCRAPE_S [2]
#   DRY_RUN=1     rehearse against `vllm-probe emulate` (VLLM_SERVER_DRY_RUN): the wedge, the crash
#                 and KV pressure are the emulator's fault modes wedge, engine_dead and kv_pressure
#                 (it has no EngineCore and no KV pool), sleep is skipped when the emulator has no
#                 /sleep; the rehearsal checks the driver, not the diagnosis
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SRV="$HERE/vllm-server"
R=${RESULTS:-/tmp/diag}
VP=${VP:-node $REPO/bin/vllm-probe.js}
PORT=${PORT:-18000}; DAEMON_PORT=${DAEMON_PORT:-9470}
export PORT SERVED_NAME=${SERVED_NAME:-tiny-llama} RUN_DIR=${RUN_DIR:-$R/run}
[ "${DRY_RUN:-0}" = 1 ] && export VLLM_SERVER_DRY_RUN=1
MAIN_FLAGS=${MAIN_FLAGS:---max-model-len 4096 --gpu-memory-utilization 0.50 --enforce-eager --enable-prefix-caching --max-num-seqs 128 --enable-sleep-mode}
KV_FLAGS=${KV_FLAGS:---max-model-len 4096 --gpu-memory-utilization 0.50 --enforce-eager --enable-prefix-caching --num-gpu-blocks-override 512}
RESTART_FLAGS=${RESTART_FLAGS:-$KV_FLAGS}
REST_S=${REST_S:-20}; SAT_S=${SAT_S:-60}; SAT_WORKERS=${SAT_WORKERS:-256}; SAT_PROMPT=${SAT_PROMPT:-1000}; SAT_OUT=${SAT_OUT:-256}
KV_S=${KV_S:-90}; KV_WORKERS=${KV_WORKERS:-64}; KV_PROMPT=${KV_PROMPT:-1542}; KV_OUT=${KV_OUT:-1024}
WEDGE_S=${WEDGE_S:-25}; SLEEP_S=${SLEEP_S:-30}; AFTER_S=${AFTER_S:-20}; CRASH_S=${CRASH_S:-25}; CRASH_WORKERS=${CRASH_WORKERS:-32}
PROBE_S=${PROBE_S:-3}; SCRAPE_S=${SCRAPE_S:-2}
V=http://127.0.0.1:$PORT; D=http://127.0.0.1:$DAEMON_PORT
mkdir -p "$R/snap" "$RUN_DIR"
export VLLM_SERVER_DEV_MODE=1   # /sleep, /wake_up, /is_sleeping, /collective_rpc (sleep phase)
[ "${DRY_RUN:-0}" = 1 ] || : "${MODEL:?set MODEL to the model dir (scripts/gpu/gen_model.py --out DIR makes one)}"
MODEL=${MODEL:-/nonexistent}

ms() { date +%s%3N; }
code() { local c; c=$(curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-3}" "$1" 2>/dev/null); echo "${c:-000}"; }
post() {  # post URL [JSON] [TIMEOUT_S]: prints the HTTP code and how long it took
  local t0 c; t0=$(ms)
  if [ -n "${2:-}" ]; then c=$(curl -s -o /dev/null -w '%{http_code}' --max-time "${3:-60}" -X POST -H 'Content-Type: application/json' -d "$2" "$1" 2>/dev/null)
  else c=$(curl -s -o /dev/null -w '%{http_code}' --max-time "${3:-60}" -X POST "$1" 2>/dev/null); fi
  echo "${c:-000} in $(( $(ms) - t0 )) ms"
}
# event WHAT [phase]: one line in events.tsv (epoch ms, phase, what) and on stdout
event() { local t; t=$(ms); printf '%s\t%s\t%s\n' "$t" "${2:-$(cut -d' ' -f1 "$R/phase" 2>/dev/null)}" "$1" >>"$R/events.tsv"; echo "$(date -u +%T) [${2:-$(cut -d' ' -f1 "$R/phase" 2>/dev/null)}] $1"; }
phase() { echo "$1 $(ms)" >"$R/phase"; event "phase start" "$1"; }
head1() { curl -s --max-time 3 "$D/status?format=text" | head -1 | cut -c1-200; }
snap() { curl -s --max-time 5 "$D/status?format=text" >"$R/snap/$1.txt"; curl -s --max-time 5 "$D/status" >"$R/snap/$1.json"; event "snapshot $1: $(head -1 "$R/snap/$1.txt" | cut -c1-160)"; }
# watch N: sleep N seconds (the recorder writes the lines meanwhile)
watch() { sleep "$1"; }
# until_state STATE MAX_S: wait until /status's first line names STATE (for pacing, not for timing: the recorder times)
until_state() { local i; for i in $(seq "$2"); do head1 | grep -q "^$1: " && return 0; sleep 1; done; return 1; }
enginecore() { if [ "${DRY_RUN:-0}" = 1 ]; then echo emulator; else "$SRV" enginecore-pid; fi; }
up() { [ "$(code $V/health)" = 200 ]; }
wait_up() { local i; for i in $(seq "${1:-600}"); do up && return 0; sleep 1; done; return 1; }
# start_vllm FLAGS: the flags also go to server-flags (what runs now)
start_vllm() {
  # shellcheck disable=SC2086
  START_RECORD=$R/starts.jsonl "$SRV" start "$MODEL" $1 >>"$R/driver.log" 2>&1 || { event "vLLM start FAILED"; tail -30 "$RUN_DIR/vllm-$PORT.log"; return 1; }
  echo "$1" >"$R/server-flags"; event "vLLM /health 200 ($(tail -1 "$R/starts.jsonl" 2>/dev/null | grep -o '"start_to_health_s":[0-9.]*'))"
}
LOADPID=
load_start() {  # load_start NAME WORKERS PROMPT OUT [DURATION]
  node "$HERE/diagnosis-load.mjs" --url "$V" --model "$SERVED_NAME" --workers "$2" --prompt-tokens "$3" --max-tokens "$4" --duration "${5:-0}" --out "$R/load-$1.json" >>"$R/driver.log" 2>&1 &
  LOADPID=$!; event "load $1 started: $2 streams, ~$3 prompt + $4 output tokens (pid $LOADPID)"
}
load_stop() { [ -n "$LOADPID" ] && { kill -TERM "$LOADPID" 2>/dev/null; wait "$LOADPID" 2>/dev/null; event "load stopped: $(head -c 300 "$R/load-$1.json" 2>/dev/null)"; LOADPID=; }; }

phase_server() {
  phase server
  if up; then event "vLLM already answers on :$PORT"; [ -f "$R/server-flags" ] || echo "$MAIN_FLAGS" >"$R/server-flags"; return 0; fi
  local p; p=$("$SRV" pid 2>/dev/null)
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then event "vLLM (pid $p) is starting: waiting for /health"; wait_up 600 && { event "vLLM /health 200"; return 0; }; fi
  start_vllm "$MAIN_FLAGS"
}

phase_setup() {
  phase setup
  wait_up 600 || { event "vLLM does not answer /health"; return 1; }
  cat >"$R/vp.yaml" <<YAML
listen: 127.0.0.1:$DAEMON_PORT
target: {url: "$V", model: "$SERVED_NAME"}
probes:
  ttft: {interval: ${PROBE_S}s, timeout: $((PROBE_S - 1))s}
  prefix: {interval: 15s, timeout: 10s, prefix_tokens: [512]}
  models: {interval: ${PROBE_S}s, timeout: $((PROBE_S - 1))s}
scrape: {interval: ${SCRAPE_S}s, timeout: 1500ms}
gpu: {interval: 5s, timeout: 4s}
YAML
  if [ "$(code $D/status 2)" = 000 ]; then
    $VP check-config "$R/vp.yaml" >"$R/check-config.txt" 2>&1 || { cat "$R/check-config.txt"; return 1; }
    # shellcheck disable=SC2086
    setsid nohup $VP serve --config "$R/vp.yaml" >>"$R/daemon.log" 2>&1 </dev/null &
    echo $! >"$R/daemon.pid"; event "daemon started (pid $!)"
  fi
  if ! { [ -f "$R/recorder.pid" ] && kill -0 "$(cat "$R/recorder.pid")" 2>/dev/null; }; then
    setsid nohup node "$HERE/diagnosis-recorder.mjs" --daemon "$D" --vllm "$V" --phase-file "$R/phase" --out "$R/seconds.tsv" >>"$R/recorder.log" 2>&1 </dev/null &
    echo $! >"$R/recorder.pid"; event "recorder started (pid $!)"
  fi
  until_state healthy 90 && event "healthy: $(head1)" || event "not healthy after 90 s: $(head1)"
}

phase_rest() { phase rest; watch "$REST_S"; snap rest; }

phase_saturation() {
  phase saturation
  load_start saturation "$SAT_WORKERS" "$SAT_PROMPT" "$SAT_OUT"; event "fault: load on"
  watch $((SAT_S / 2)); snap saturation-mid; watch $((SAT_S - SAT_S / 2))
  load_stop saturation; event "clear: load off"
  phase saturation-after; watch "$AFTER_S"; snap saturation-after
}

phase_wedge() {
  local ec; ec=$(enginecore)
  [ -z "$ec" ] && { event "wedge skipped: no EngineCore process found" wedge; return 1; }
  phase wedge
  if [ "$ec" = emulator ]; then post "$V/_emulator/fault" '{"mode":"wedge"}' >/dev/null; else kill -STOP "$ec"; fi
  event "fault: SIGSTOP EngineCore $ec"
  watch "$WEDGE_S"; snap wedged
  if [ "$ec" = emulator ]; then post "$V/_emulator/fault" '{"mode":"none"}' >/dev/null; else kill -CONT "$ec"; fi
  event "clear: SIGCONT EngineCore $ec"
  phase wedge-after; watch "$AFTER_S"; snap wedge-after
}

phase_sleep() {
  if [ "$(code $V/is_sleeping)" != 200 ]; then event "sleep skipped: GET /is_sleeping answers $(code $V/is_sleeping) (no sleep mode here)" sleep; return 0; fi
  phase sleep1
  event "fault: POST /sleep?level=1 -> $(post "$V/sleep?level=1")"
  event "is_sleeping: $(curl -s --max-time 3 $V/is_sleeping)"
  watch "$SLEEP_S"; snap asleep-1
  event "clear: POST /wake_up -> $(post "$V/wake_up")"
  phase sleep1-after; watch "$AFTER_S"; snap sleep1-after
  phase sleep2
  event "fault: POST /sleep?level=2 -> $(post "$V/sleep?level=2")"
  event "is_sleeping: $(curl -s --max-time 3 $V/is_sleeping)"
  watch "$SLEEP_S"; snap asleep-2
  event "wake step: POST /wake_up?tags=weights -> $(post "$V/wake_up?tags=weights")"
  event "wake step: POST /collective_rpc reload_weights -> $(post "$V/collective_rpc" '{"method":"reload_weights"}' 120)"
  event "clear: POST /wake_up?tags=kv_cache -> $(post "$V/wake_up?tags=kv_cache")"
  event "is_sleeping: $(curl -s --max-time 3 $V/is_sleeping)"
  phase sleep2-after; watch "$AFTER_S"; snap sleep2-after
}

phase_restart() {
  phase restart
  cp "$RUN_DIR/vllm-$PORT.log" "$R/vllm-before-restart.log" 2>/dev/null
  event "fault: SIGTERM vLLM's process group"
  "$SRV" stop >>"$R/driver.log" 2>&1; event "stopped: $(code $V/health 1) on /health"
  watch 6; snap restart-down
  start_vllm "$RESTART_FLAGS" || return 1
  event "clear: /health 200 again"
  phase restart-after; watch "$AFTER_S"; snap restart-after
}

phase_kv() {
  if [ "$(cat "$R/server-flags" 2>/dev/null)" != "$KV_FLAGS" ]; then
    phase kv-start; "$SRV" stop >>"$R/driver.log" 2>&1; start_vllm "$KV_FLAGS" || return 1; until_state 'healthy\|restarted' 60
  fi
  phase kv
  load_start kv "$KV_WORKERS" "$KV_PROMPT" "$KV_OUT"
  [ "${DRY_RUN:-0}" = 1 ] && post "$V/_emulator/fault" '{"mode":"kv_pressure"}' >/dev/null   # the emulator has no KV pool to fill
  event "fault: load on"
  watch $((KV_S / 2)); snap kv-mid; watch $((KV_S - KV_S / 2))
  [ "${DRY_RUN:-0}" = 1 ] && post "$V/_emulator/fault" '{"mode":"none"}' >/dev/null
  load_stop kv; event "clear: load off"
  phase kv-after; watch "$AFTER_S"; snap kv-after
}

phase_crash() {
  up || { event "crash skipped: vLLM does not answer" crash; return 1; }
  local ec; ec=$(enginecore)
  [ -z "$ec" ] && { event "crash skipped: no EngineCore process found" crash; return 1; }
  phase crash
  load_start crash "$CRASH_WORKERS" 500 256; watch 8
  if [ "$ec" = emulator ]; then post "$V/_emulator/fault" '{"mode":"engine_dead"}' >/dev/null; else kill -KILL "$ec"; fi
  event "fault: SIGKILL EngineCore $ec"
  watch 4; snap crash-4s; watch $((CRASH_S - 4)); snap crashed
  load_stop crash
  event "vLLM after the crash: /health $(code $V/health 1); processes: $(pgrep -fa 'vllm|VLLM' | grep -v -e pgrep -e diagnosis | cut -c1-80 | tr '\n' ';')"
}

phase_recover() {
  phase recover
  event "fault: start vLLM again after the crash (what a supervisor does)"
  "$SRV" stop >>"$R/driver.log" 2>&1
  start_vllm "$(cat "$R/server-flags" 2>/dev/null || echo "$MAIN_FLAGS")" || return 1
  event "clear: /health 200 again"
  phase recover-after; watch "$AFTER_S"; snap recover-after
}

phase_finish() {
  phase finish
  load_stop finish
  [ -f "$R/recorder.pid" ] && kill -TERM "$(cat "$R/recorder.pid")" 2>/dev/null
  sleep 2
  curl -s --max-time 5 "$D/metrics" >"$R/daemon-metrics-end.txt" 2>/dev/null
  [ -f "$R/daemon.pid" ] && kill -TERM "$(cat "$R/daemon.pid")" 2>/dev/null
  cp "$RUN_DIR"/vllm-"$PORT"*.log "$R/" 2>/dev/null
  "$SRV" stop >>"$R/driver.log" 2>&1
  node "$HERE/diagnosis-summary.mjs" "$R" >"$R/summary.md" 2>>"$R/driver.log"; event "summary written" finish
  cat "$R/summary.md"
}

PHASES=("$@"); [ ${#PHASES[@]} -eq 0 ] && PHASES=(server setup rest saturation wedge sleep restart kv crash recover finish)
for p in "${PHASES[@]}"; do
  case "$p" in
    server|setup|rest|saturation|wedge|sleep|restart|kv|crash|recover|finish) "phase_$p" ;;
    *) echo "unknown phase $p" >&2; exit 2 ;;
  esac
done
