#!/bin/bash
# Real-GPU validation of the nvidia-smi collector against NVML (docs/gpu-validation.md).
# Runs on a GPU machine after `npm run build`, needs python3 with torch and nvidia-ml-py. Where
# the machine has no Node and no network, carry a Node binary (node.gz) and the production
# node_modules (modules.tgz) in .cache/gpu-validate/ (docs/gpu-validation.md says how). Results: $OUT/compare.md, $OUT/probe-load.json and
# everything raw in $OUT/capture.tgz.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
CARRY=${CARRY:-$ROOT/.cache/gpu-validate}
OUT=${OUT:-/tmp/gpu-validate-out}
W=$(mktemp -d)
mkdir -p "$OUT"
cd "$ROOT" || exit 1
# A carried Node binary if there is one, else the node on PATH; likewise node_modules.
NODE=node
if [ -f "$CARRY/node.gz" ]; then gunzip -c "$CARRY/node.gz" > /tmp/node && chmod +x /tmp/node && NODE=/tmp/node; fi
[ -d node_modules/prom-client ] || tar xzf "$CARRY/modules.tgz"
echo "node $($NODE --version); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"

# Every field vllm-probe asks for, plus a few more for the fixture.
FIELDS=index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,memory.free,memory.reserved,utilization.gpu,utilization.memory,temperature.gpu,temperature.memory,power.draw.instant,power.draw,power.limit,enforced.power.limit,clocks.current.sm,clocks.current.memory,pstate,ecc.errors.uncorrected.volatile.total,mig.mode.current,compute_mode,fan.speed,pcie.link.gen.current,power.draw.average,clocks.max.sm,gpu_recovery_action
APPS=gpu_uuid,pid,process_name,used_gpu_memory
capture() {
  {
    echo "## csv"; nvidia-smi --query-gpu=$FIELDS --format=csv
    echo "## csv,noheader,nounits"; nvidia-smi --query-gpu=$FIELDS --format=csv,noheader,nounits
    echo "## compute-apps"; nvidia-smi --query-compute-apps=$APPS --format=csv
    echo "## compute-apps noheader nounits"; nvidia-smi --query-compute-apps=$APPS --format=csv,noheader,nounits
  } > "$1" 2>&1
}

nvidia-smi > "$W/plain-idle.txt" 2>&1
nvidia-smi --help-query-gpu > "$W/help-query-gpu.txt" 2>&1
nvidia-smi --help-query-compute-apps > "$W/help-query-compute-apps.txt" 2>&1
# How the driver rejects a field: which stream, which exit code.
nvidia-smi --query-gpu=index,no.such.field --format=csv,noheader,nounits > "$W/invalid-field.stdout" 2> "$W/invalid-field.stderr"
echo "exit $?" > "$W/invalid-field.exit"
# Is used_memory an alias of used_gpu_memory?
nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv,noheader,nounits > "$W/apps-used_memory.txt" 2>&1
echo "exit $?" >> "$W/apps-used_memory.txt"
cat /proc/driver/nvidia/version > "$W/proc-driver-nvidia-version.txt" 2>&1
TIMEFORMAT='%R s'
{ for i in 1 2 3; do time nvidia-smi --query-gpu=$FIELDS --format=csv,noheader,nounits > /dev/null; done; } 2> "$W/query-timing.txt"

capture "$W/query-idle.txt"
python3 "$HERE/nvml.py" > "$W/nvml-idle.json"
"$NODE" "$HERE/validate.mjs" > "$W/probe-idle.json" 2> "$W/probe-idle.log"

# Load: a launcher that writes the pid file and forks the busy worker (8 GiB + bf16 matmuls),
# and an unrelated idle worker (1 GiB) that must not be counted as vLLM's.
rm -f /tmp/ready-busy /tmp/ready-idle
python3 "$HERE/load.py" launcher /tmp/vllm-probe-validate.pid 8 > "$W/load-busy.log" 2>&1 &
python3 "$HERE/load.py" worker 1 idle > "$W/load-idle.log" 2>&1 &
for _ in $(seq 1 240); do [ -f /tmp/ready-busy ] && [ -f /tmp/ready-idle ] && break; sleep 0.5; done
sleep 5
BUSY=$(cat /tmp/ready-busy); IDLE=$(cat /tmp/ready-idle); LAUNCHER=$(cat /tmp/vllm-probe-validate.pid)
echo "launcher $LAUNCHER, busy worker $BUSY, idle worker $IDLE"
python3 "$HERE/nvml.py" > "$W/nvml-before.json"
PID_FILE=/tmp/vllm-probe-validate.pid "$NODE" "$HERE/validate.mjs" > "$W/probe-load.json" 2> "$W/probe-load.log"
python3 "$HERE/nvml.py" > "$W/nvml-after.json"
capture "$W/query-load.txt"
nvidia-smi dmon -c 3 -s pucm > "$W/dmon-load.txt" 2>&1
nvidia-smi -q > "$W/q-load.txt" 2>&1
nvidia-smi > "$W/plain-load.txt" 2>&1
python3 "$HERE/compare.py" "$W/probe-load.json" "$W/nvml-before.json" "$W/nvml-after.json" "$BUSY" > "$W/compare.md"
kill "$BUSY" "$IDLE" "$LAUNCHER" 2>/dev/null
cat "$W/compare.md"
echo; grep -h -v '^#' "$W/query-timing.txt" | tr '\n' ' '; echo "(three --query-gpu runs)"
grep -E 'seconds|"status"' -A0 "$W/probe-load.json"
cat "$W/probe-load.log" | head -20
cp "$W/compare.md" "$W/probe-load.json" "$OUT/"
tar czf "$OUT/capture.tgz" -C "$W" .
