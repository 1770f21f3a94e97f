"""Compares vllm-probe's reading (validate.mjs JSON) with NVML's, read just before and just after.
Prints a markdown table; exit 1 when memory differs by 1 % or more or the process lists differ.

  compare.py PROBE_JSON NVML_BEFORE_JSON NVML_AFTER_JSON [VLLM_PID]
"""
import json
import sys

probe = json.load(open(sys.argv[1]))
before, after = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
vllm_pid = int(sys.argv[4]) if len(sys.argv) > 4 else None
MIB = 1048576
ok = True
rows = []
if not probe["command"]["ok"]:
    print(f"vllm-probe read nothing: {probe['command']['error']}")
    sys.exit(1)


def row(what, probe_value, nvml_values, unit, limit=None):
    """nvml_values: (before, after). Relative difference against the nearer of the two."""
    global ok
    diffs = [abs(probe_value - v) / v * 100 if v else (0.0 if probe_value == v else 100.0) for v in nvml_values]
    diff = min(diffs)
    verdict = ""
    if limit is not None:
        passed = diff < limit
        ok = ok and passed
        verdict = "pass" if passed else "FAIL"
    fmt = (lambda x: f"{x:,}") if unit == "B" else (lambda x: f"{x:g}")
    rows.append(f"| {what} | {fmt(probe_value)} | {fmt(nvml_values[0])} / {fmt(nvml_values[1])} | {diff:.3f} % | {verdict} |")


for g in probe["command"]["gpus"]:
    nb = next(x for x in before["gpus"] if x["uuid"] == g["uuid"])
    na = next(x for x in after["gpus"] if x["uuid"] == g["uuid"])
    both = lambda f: (f(nb), f(na))  # noqa: E731
    rows.append(f"| **GPU {g['index']}** {g['name']} | vllm-probe (nvidia-smi) | NVML before / after | difference | 1 % rule |")
    rows.append("| --- | ---: | ---: | ---: | --- |")
    row("memory total (B)", g["memory_total_bytes"], both(lambda x: x["memory_v1"]["total"]), "B", 1)
    row("memory used + reserved (B) vs NVML v1 used", g["memory_used_bytes"] + g["memory_reserved_bytes"], both(lambda x: x["memory_v1"]["used"]), "B", 1)
    if isinstance(nb["memory_v2"], dict):
        row("memory used (B) vs NVML v2 used", g["memory_used_bytes"], both(lambda x: x["memory_v2"]["used"]), "B", 1)
        row("memory reserved (B) vs NVML v2 reserved", g["memory_reserved_bytes"], both(lambda x: x["memory_v2"]["reserved"]), "B", 1)
    row("memory free (B)", g["memory_free_bytes"], both(lambda x: x["memory_v1"]["free"]), "B", 1)
    row("GPU utilisation (ratio)", g["utilization_ratio"], both(lambda x: x["utilization"]["gpu"] / 100), "ratio")
    row("memory utilisation (ratio)", g["memory_utilization_ratio"], both(lambda x: x["utilization"]["memory"] / 100), "ratio")
    probe_pids = sorted(p["pid"] for p in g["processes"])
    nvml_pids = sorted({p["pid"] for p in nb["processes"]} | {p["pid"] for p in na["processes"]})
    same = probe_pids == nvml_pids
    ok = ok and same
    rows.append(f"| process list (pids) | {probe_pids} | {nvml_pids} | | {'pass' if same else 'FAIL'} |")
    for p in g["processes"]:
        n = next((x for x in nb["processes"] if x["pid"] == p["pid"]), None)
        if n:
            row(f"pid {p['pid']} ({p['process_name']}, vllm={p['vllm']}) used (B)", p["used_memory_bytes"], (n["used"], n["used"]), "B", 1)
    if vllm_pid is not None:
        n = next((x for x in nb["processes"] if x["pid"] == vllm_pid), None)
        if n:
            row(f"vllm_probe_gpu_process_memory_used_bytes (matched pid {vllm_pid}) (B)", g["process_memory_used_bytes"], (n["used"], n["used"]), "B", 1)
        matched = [p["pid"] for p in g["processes"] if p["vllm"]]
        right = matched == [vllm_pid]
        ok = ok and right
        rows.append(f"| processes matched as vLLM | {matched} | expected [{vllm_pid}] | | {'pass' if right else 'FAIL'} |")
print("\n".join(rows))
print(f"\nverdict: {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
