#!/usr/bin/env python3
"""Measure client-side TTFT of a running vLLM server (stdlib only; any python3 works).

    python3 scripts/real-vllm/ttft.py --port 18000 [--model tiny-llama] [--api-key KEY] [--reps 3]

For prompt sizes 64 and 2048 tokens (exact, checked with /tokenize) it sends streaming
/v1/completions requests (max_tokens 16, ignore_eos) and reports, per size, the median time
from sending the request to the first SSE chunk with non-empty text:
  * uncached: a fresh random prompt each time (no prefix-cache hit possible)
  * cached:   the same prompt sent again right after (prefix-cache hit; cached_tokens shown)
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import time

WORDS = (
    "the of and to in is was that for on with as by at from it this be are have an not or "
    "time people year way day man thing woman life child world school state family student "
    "server model token request latency cache prefix metric engine queue batch stream prompt"
).split()


def post(port: int, path: str, body: dict, api_key: str | None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    return conn, conn.getresponse()


def count_tokens(port: int, model: str, text: str) -> int:
    conn, resp = post(port, "/tokenize", {"model": model, "prompt": text}, None)
    data = json.loads(resp.read())
    conn.close()
    return data["count"]


def make_prompt(port: int, model: str, n_tokens: int, rng: random.Random) -> str:
    # a unique first word defeats the prefix cache; then grow/shrink to the exact size
    words = [f"run{rng.randrange(10**9)}"]
    while True:
        words.extend(rng.choice(WORDS) for _ in range(max(1, (n_tokens - len(words)) // 2)))
        n = count_tokens(port, model, " ".join(words))
        if n >= n_tokens:
            break
    while count_tokens(port, model, " ".join(words)) > n_tokens:
        words.pop()
    return " ".join(words)


def ttft(port: int, model: str, prompt: str, api_key: str | None) -> tuple[float, dict]:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": 16,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    conn, resp = post(port, "/v1/completions", body, api_key)
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}: {resp.read()[:500]!r}")
    first = None
    usage: dict = {}
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if first is None and chunk.get("choices") and chunk["choices"][0].get("text"):
            first = time.perf_counter() - t0
        if chunk.get("usage"):
            usage = chunk["usage"]
    conn.close()
    return (first if first is not None else float("nan")), usage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--api-key")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="64,2048")
    args = ap.parse_args()
    rng = random.Random(7)
    # warm-up request (first request after start is slower)
    ttft(args.port, args.model, make_prompt(args.port, args.model, 32, rng), args.api_key)
    for size in (int(s) for s in args.sizes.split(",")):
        unc, cac, cached_tokens = [], [], []
        for _ in range(args.reps):
            p = make_prompt(args.port, args.model, size, rng)
            t, u = ttft(args.port, args.model, p, args.api_key)
            unc.append(t)
            t2, u2 = ttft(args.port, args.model, p, args.api_key)
            cac.append(t2)
            cached_tokens.append((u.get("prompt_tokens_details") or {}).get("cached_tokens"))
            cached_tokens.append((u2.get("prompt_tokens_details") or {}).get("cached_tokens"))
        print(
            f"prompt {size:5d} tokens: uncached TTFT median {statistics.median(unc) * 1000:7.1f} ms "
            f"(runs {', '.join(f'{x * 1000:.0f}' for x in unc)}); "
            f"repeated TTFT median {statistics.median(cac) * 1000:7.1f} ms "
            f"(runs {', '.join(f'{x * 1000:.0f}' for x in cac)}); "
            f"cached_tokens uncached/repeated: {cached_tokens}"
        )


if __name__ == "__main__":
    main()
