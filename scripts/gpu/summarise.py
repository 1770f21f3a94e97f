#!/usr/bin/env python3
"""The tables of docs/gpu-results.md from one scripts/gpu/run-experiments results folder.

  python3 scripts/gpu/summarise.py RESULTS_DIR > tables.md

Reads only files the driver writes (bench outputs, start records, parse_startup.py JSON, the
daemon's GPU samples, wedge.tsv); prints markdown. Missing parts are said to be missing.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

R = Path(sys.argv[1])
MiB = 2 ** 20
GiB = 2 ** 30


def load(p: Path):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def rows_csv(p: Path):
    try:
        return list(csv.DictReader(p.open()))
    except OSError:
        return []


def ms(x) -> str:
    return "n/a" if x in (None, "") else f"{float(x) * 1000:.0f}"


def cell(c) -> str:
    if c is None:
        return "n/a"
    return f"{c:.2f}".rstrip("0").rstrip(".") if isinstance(c, float) else str(c)


def table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def tier1() -> None:
    print("### Tier 1: cold vs warm TTFT after real restarts\n")
    runs = [m for m in ("eager", "compiled", "compiled-cached") if (R / "tier1" / m / "summary.json").exists()]
    if not runs:
        print("not run\n")
        return
    rows, split, mem = [], [], []
    for m in runs:
        s = load(R / "tier1" / m / "summary.json")
        st = load(R / "tier1" / m / "startup.json") or {}
        rec = st.get("start_record") or {}
        after = (load(R / "tier1" / m / "mem-after-requests.json") or {}).get("gpu_mem_after_requests_mib")
        t = s["ttft"]
        rows.append([m, ms(t["cold"]), ms(t["warm1"]), ms(t["median"]), ms(t["min"]), ms(t["max"]), f"{t['coldWarmFactor']:.2f}×", ms(s["e2e"]["cold"]), ms(s["e2e"]["median"])])
        compile_s = st.get("torch_compile_total_s")
        split.append([m, rec.get("start_to_health_s"), st.get("first_log_at_s"), st.get("engine_init_at_s"), st.get("weights_load_s"), st.get("model_load_s"),
                      compile_s if compile_s is not None else "– (eager)", st.get("compile_cache_load_s") or "–", st.get("graph_capture_s") if st.get("graph_capture_s") is not None else "– (eager)",
                      st.get("graph_capture_gib") or "–", st.get("init_engine_s"), st.get("available_kv_gib"), st.get("kv_cache_tokens")])
        mem.append([m, rec.get("gpu_mem_before_start_mib"), rec.get("gpu_mem_after_start_mib"), after, st.get("model_load_gib")])
    print(table(["mode", "cold TTFT ms", "warm_1 ms", "warm median ms", "warm min ms", "warm max ms", "cold/warm", "cold E2E ms", "warm E2E median ms"], rows))
    print("\nStart-up split (seconds; vLLM's own log lines, `*_at` from log timestamps relative to the launch):\n")
    print(table(["mode", "launch → /health 200", "first log line at", "engine init at", "weights load", "model load (total)", "torch.compile", "compile cache load", "CUDA graph capture", "graphs GiB",
                 "init engine (profile + KV + warm-up)", "KV GiB", "KV tokens"], split))
    print("\nGPU memory (MiB, nvidia-smi, whole GPU):\n")
    print(table(["mode", "before start", "after start (/health 200)", "after the cold + warm requests", "weights GiB (vLLM)"], mem))
    print()


def tier2() -> None:
    print("### Tier 2: prefix caching on vs off\n")
    for name, what in (("baseline", "no_cache = a second server with `--no-enable-prefix-caching` (`--baseline`)"), ("forced-miss", "no_cache = forced misses (cache_salt) on the same server")):
        rows = rows_csv(R / "tier2" / name / "prefix_caching_results.csv")
        if not rows:
            print(f"{name}: not run\n")
            continue
        print(f"**{name}**: {what}.\n")
        print(table(list(rows[0].keys())[:9], [[r[k] if k in ("mode", "prefix_regime", "concurrency") else f"{float(r[k]):.4f}" if r[k] else "n/a" for k in list(rows[0].keys())[:9]] for r in rows]))
        out = []
        for r in rows:
            if r["mode"] != "cache":
                continue
            n = next(x for x in rows if x["mode"] == "no_cache" and x["prefix_regime"] == r["prefix_regime"] and x["concurrency"] == r["concurrency"])
            import re
            m = re.search(r"P=(\d+).*mean cached (\d+)/(\d+)", r["notes"])
            p_tok, cached, prompt = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (int(r["prefix_regime"]), None, None)
            s_tok = prompt - p_tok if prompt else None
            saved = 1 - float(r["mean_ttft_s"]) / float(n["mean_ttft_s"])
            pred = p_tok / (p_tok + s_tok) if s_tok else None
            tp = float(r["tok_s"]) / float(n["tok_s"]) - 1
            out.append([r["prefix_regime"], r["concurrency"], ms(n["mean_ttft_s"]), ms(r["mean_ttft_s"]), f"{saved * 100:.0f} %", "n/a" if pred is None else f"{pred * 100:.0f} % (P={p_tok}, S={s_tok})", f"{cached}/{prompt}", f"{tp * 100:+.0f} %"])
        print()
        print(table(["P", "concurrency", "no_cache mean TTFT ms", "cache mean TTFT ms", "saved (measured)", "P/(P+S) predicted", "cached/prompt tokens", "tok/s change"], out))
        print()


def sweep() -> None:
    print("### Tier 3b: concurrency sweep, GPU from the vllm-probe daemon\n")
    s = load(R / "sweep" / "sweep" / "summary.json")
    if not s:
        print("not run\n")
        return
    # level windows: the driver logs the sweep's start; levels run back to back (warm-up + duration)
    samples: dict[str, list[tuple[float, float]]] = {}
    for line in (R / "sweep" / "daemon-gpu-samples.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            samples.setdefault(parts[1].split("{")[0], []).append((float(parts[0]), float(parts[2])))
    util = samples.get("vllm_probe_gpu_utilization_ratio", [])
    power = samples.get("vllm_probe_gpu_power_draw_watts", [])
    env = load(R / "sweep" / "sweep" / "environment.json") or {}
    from datetime import datetime, timezone
    t0 = datetime.fromisoformat(env["collected_at"].replace("Z", "+00:00")).timestamp() if env.get("collected_at") else (util[0][0] if util else 0)
    level_s = 12.0  # --warmup 2s + --duration 10s (the driver's defaults)
    rows = []
    for i, lv in enumerate(s["levels"]):
        a, b = t0 + i * level_s + 2, t0 + (i + 1) * level_s
        u = [v for t, v in util if a <= t <= b]
        p = [v for t, v in power if a <= t <= b]
        rows.append([lv["concurrency"], lv["requests"], lv["errors"], f"{lv['reqPerS']:.1f}", f"{lv['outputTokPerS']:.0f}", ms(lv["ttft"].get("p50")), ms(lv["ttft"].get("p95")), ms(lv["e2e"].get("p95")),
                     f"{100 * sum(u) / len(u):.0f} % ({len(u)})" if u else "n/a", f"{sum(p) / len(p):.0f} W (max {max(p):.0f})" if p else "n/a"])
    print(table(["concurrency", "requests", "errors", "req/s", "output tok/s", "p50 TTFT ms", "p95 TTFT ms", "p95 E2E ms", "GPU util (daemon samples)", "GPU power"], rows))
    k = s.get("knee")
    print(f"\nKnee: {'concurrency ' + str(k['concurrency']) + ': ' + k['reason'] if k else 'none in range'}.\n")


def kv() -> None:
    print("### Tier 3a: KV-cache scaling by max-model-len\n")
    s = load(R / "kv" / "kv-scaling" / "summary.json")
    if not s:
        print("not run\n")
        return
    rows = [[r["max_model_len"], r["kv_cache_capacity_tokens"], r["num_gpu_blocks"], r["block_size"], r["max_concurrency_at_max_model_len"],
             "n/a" if r["gpu_mem_before_start_bytes"] is None else f"{r['gpu_mem_before_start_bytes'] / GiB:.2f}",
             "n/a" if r["gpu_mem_after_start_bytes"] is None else f"{r['gpu_mem_after_start_bytes'] / GiB:.2f}",
             "n/a" if r["gpu_mem_after_first_request_bytes"] is None else f"{r['gpu_mem_after_first_request_bytes'] / GiB:.2f}",
             r["kv_cache_memory_bytes"] if r["kv_cache_memory_bytes"] is not None else "None"] for r in s["rows"]]
    print(table(["max_model_len", "KV tokens", "blocks", "block", "sequences of max_model_len that fit", "GPU GiB before", "after start", "after 1st request", "kv_cache_memory_bytes"], rows))
    print(f"\n- bytes per KV token: **{s['bytes_per_token']:.0f} B** from {s['bytes_per_token_source']}" if s.get("bytes_per_token") else "\n- bytes per KV token: n/a")
    for c in s.get("bytes_per_token_checks", []):
        print(f"- check: {c}")
    print(f"- slope of GPU memory against capacity: {s['gpu_memory_slope_bytes_per_token'] if s.get('gpu_memory_slope_bytes_per_token') is not None else 'n/a: ' + str(s.get('slope_note'))}\n")


def wedge() -> None:
    print("### Wedge test: SIGSTOP of the EngineCore process\n")
    p = R / "wedge" / "wedge.tsv"
    if not p.exists():
        print("not run\n")
        return
    lines = [l.split("\t") for l in p.read_text().splitlines()[1:]]
    out, last = [], None
    for i, l in enumerate(lines):
        l = l + [""] * (7 - len(l))
        key = (l[0], l[2], l[3], l[4], l[6])
        if key != last or i == len(lines) - 1:
            out.append([l[0], f"t+{l[1]} s", l[2], l[3], l[4], (l[5][:160] + "…") if len(l[5]) > 160 else (l[5] or "–"), l[6]])
        last = key
    print(table(["phase", "time", "vLLM /health", "vllm-probe /status HTTP", "verdict", "reasons (first 160 chars)", "engine_progress check"], out))
    print("\n(rows shown where something changed; every 3 s sample is in wedge.tsv)\n")


for f in (tier1, tier2, kv, sweep, wedge):
    f()
