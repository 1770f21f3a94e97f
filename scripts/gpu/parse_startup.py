#!/usr/bin/env python3
"""The start-up split of one vLLM server log (V1 engine, 0.2x), as JSON on stdout.

  python3 scripts/gpu/parse_startup.py /tmp/vllm-gpu/vllm-18000.log [START_RECORD.jsonl]

Fields are null when the log does not have the line (older/newer vLLM word them differently;
the matched lines are kept in "lines" so a reader can check). Times are vLLM's own figures,
except *_at_s, which come from the log's timestamps (1 s resolution) relative to the first line.
"""
from __future__ import annotations

import json
import re
import sys
from datetime import datetime

PATTERNS = {
    "weights_load_s": r"Loading weights took ([\d.]+) ?s",
    "model_load_gib": r"Model loading took ([\d.]+) ?GiB",
    "model_load_s": r"Model loading took [\d.]+ ?GiB(?: memory)? and ([\d.]+) ?s",
    "dynamo_transform_s": r"Dynamo bytecode transform time: ([\d.]+) ?s",
    "compile_graph_s": r"Compiling a graph for (?:dynamic|general) shape takes ([\d.]+) ?s|Compiling a graph for compile range .* takes ([\d.]+) ?s",
    "compile_cache_load_s": r"load the compiled graph\(s\) for .* from the cache, took ([\d.]+) ?s",
    "torch_compile_total_s": r"torch\.compile (?:takes|took) ([\d.]+) ?s in total",
    "profiling_warmup_s": r"Initial profiling/warmup run took ([\d.]+) ?s",
    "memory_profiling_s": r"Memory profiling takes ([\d.]+) ?s",
    "available_kv_gib": r"Available KV cache memory: ([\d.]+) ?GiB",
    "kv_cache_tokens": r"GPU KV cache size: ([\d,]+) tokens",
    "max_concurrency_x": r"Maximum concurrency for [\d,]+ tokens per request: ([\d.]+)x",
    "graph_capture_s": r"Graph capturing finished in ([\d.]+) ?secs?",
    "graph_capture_gib": r"Graph capturing finished in [\d.]+ ?secs?, took ([\d.\-]+) ?GiB",
    "init_engine_s": r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) ?s",
}
MARKS = {
    "first_log_at_s": r"INFO",
    "engine_init_at_s": r"Initializing a V1 LLM engine|EngineCore.*started|Waiting for init message",
    "weights_done_at_s": r"Model loading took",
    "kv_alloc_at_s": r"GPU KV cache size",
    "init_engine_done_at_s": r"init engine \(",
    "ready_at_s": r"Application startup complete",
}
TS = re.compile(r"(\d\d-\d\d \d\d:\d\d:\d\d)")
HEADER = re.compile(r"^# \d{4}-(\d\d-\d\d)T(\d\d:\d\d:\d\d)Z start:")  # written by scripts/gpu/vllm-server


def main() -> None:
    log = open(sys.argv[1], errors="replace").read().splitlines()
    out: dict = {k: None for k in [*PATTERNS, *MARKS]}
    lines = []
    first = None
    for line in log:
        h = HEADER.search(line)
        if h and first is None:  # the launch time (UTC; vLLM logs local time: same on a UTC host)
            first = datetime.strptime(f"{h.group(1)} {h.group(2)}", "%m-%d %H:%M:%S")
            continue
        m = TS.search(line)
        t = datetime.strptime(m.group(1), "%m-%d %H:%M:%S") if m else None
        if t and first is None:
            first = t
        for key, pat in PATTERNS.items():
            mm = re.search(pat, line)
            if mm:
                val = float(next(g for g in mm.groups() if g is not None).replace(",", ""))
                # several compile lines (one per graph / shape): add them up
                if key in ("compile_graph_s", "compile_cache_load_s", "dynamo_transform_s") and out[key] is not None:
                    val += out[key]
                out[key] = val
                lines.append(line.strip()[:300])
        for key, pat in MARKS.items():
            if out[key] is None and t and first and re.search(pat, line):
                out[key] = (t - first).total_seconds()
    if out["kv_cache_tokens"] is not None:
        out["kv_cache_tokens"] = int(out["kv_cache_tokens"])
    if len(sys.argv) > 2:
        try:
            recs = [json.loads(x) for x in open(sys.argv[2]) if x.strip()]
            if recs:
                out["start_record"] = recs[-1]
                out["start_to_health_s"] = recs[-1].get("start_to_health_s")
        except (OSError, ValueError):
            pass
    out["lines"] = list(dict.fromkeys(lines))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
