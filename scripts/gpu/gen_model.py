#!/usr/bin/env python3
"""Random-weight Llama of a realistic shape for GPU runs, with the project's tokenizer.

Nothing is downloaded. The tokenizer (byte-level BPE, BOS/EOS/PAD, chat template) comes from
scripts/real-vllm/gen_model.py, so prompts tokenize exactly as in the CPU tests; only the
model body changes. Runs with any python3 that has torch + transformers (vLLM's own does).

  python3 scripts/gpu/gen_model.py --out /tmp/models/l8b                 # 8B Llama shape, bf16
  python3 scripts/gpu/gen_model.py --out /tmp/models/b1 --shape b1 --device cuda
  python3 scripts/gpu/gen_model.py --out DIR --shape hidden=2048,layers=16,heads=16,kv=4,ffn=5632

Shapes (vocab = the project's tokenizer, 4661 tokens; head_dim = hidden / heads):
  tiny : hidden 512,  4 layers,  8 heads,  8 kv, ffn 1408   ->  17.6 M params (= CPU test model)
  b1   : hidden 2048, 16 layers, 32 heads, 8 kv, ffn 8192   ->  ~1.0 B params, ~2 GB
  l8b  : hidden 4096, 32 layers, 32 heads, 8 kv, ffn 14336  ->  ~7.0 B params, ~14 GB (Llama-3-8B body;
         the small vocabulary drops the 1 B embedding parameters). KV: 32 × 8 × 128 × 2 × 2 = 131072 B/token.
  l70b : hidden 8192, 80 layers, 64 heads, 8 kv, ffn 28672  -> ~69 B params, ~138 GB (needs TP or a big GPU)
--device cuda initialises the weights on the GPU (seconds instead of minutes for l8b); the values
differ from a CPU init but the shape and the tokenizer are the same. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "real-vllm"))
import gen_model as G  # noqa: E402  (scripts/real-vllm/gen_model.py: the tokenizer)

SHAPES = {
    "tiny": dict(hidden=512, layers=4, heads=8, kv=8, ffn=1408),
    "m100": dict(hidden=768, layers=12, heads=12, kv=12, ffn=2048),
    "b1": dict(hidden=2048, layers=16, heads=32, kv=8, ffn=8192),
    "l8b": dict(hidden=4096, layers=32, heads=32, kv=8, ffn=14336),
    "l70b": dict(hidden=8192, layers=80, heads=64, kv=8, ffn=28672),
}
DTYPES = {"bfloat16": 2, "float16": 2, "float32": 4}


def parse_shape(text: str) -> dict:
    if text in SHAPES:
        return dict(SHAPES[text])
    shape = dict(SHAPES["l8b"])
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key not in shape or not value.isdigit():
            raise SystemExit(f"--shape: expected a preset ({', '.join(SHAPES)}) or hidden=N,layers=N,heads=N,kv=N,ffn=N; got {text!r}")
        shape[key] = int(value)
    return shape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shape", default="l8b", help="preset name or hidden=,layers=,heads=,kv=,ffn= (default l8b)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    ap.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES", "0") != "" else "cpu",
                    help="where the random init runs (default cuda; cpu reproduces the CPU test model for --shape tiny)")
    ap.add_argument("--force", action="store_true", help="regenerate even if OUT/config.json exists")
    a = ap.parse_args()
    shape = parse_shape(a.shape)
    if shape["hidden"] % shape["heads"] or shape["heads"] % shape["kv"]:
        raise SystemExit("--shape: hidden must divide by heads, heads by kv")
    out = Path(a.out)
    if (out / "config.json").exists() and not a.force:
        print(json.dumps({"out": str(out), "skipped": "config.json exists (use --force)"}))
        return
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    G.build_tokenizer(out, random.Random(G.SEED))
    t1 = time.time()

    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    dtype = getattr(torch, a.dtype)
    device = a.device if (a.device != "cuda" or torch.cuda.is_available()) else "cpu"
    tok = AutoTokenizer.from_pretrained(str(out))
    torch.manual_seed(G.SEED)
    head_dim = shape["hidden"] // shape["heads"]
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=shape["hidden"], intermediate_size=shape["ffn"],
        num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"], num_key_value_heads=shape["kv"],
        head_dim=head_dim, max_position_embeddings=G.MAX_POS, rms_norm_eps=1e-5,
        rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, torch_dtype=a.dtype,
    )
    torch.set_default_dtype(dtype)  # init directly in the target dtype: halves the peak memory
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype)
    invisible = G.silence_invisible_tokens(model, tok)
    model = model.to("cpu")
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(str(out), safe_serialization=True)
    params = sum(x.numel() for x in model.parameters())
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    kv_bytes = shape["layers"] * shape["kv"] * head_dim * 2 * DTYPES[a.dtype]
    print(json.dumps({"out": str(out), "shape": a.shape, **shape, "head_dim": head_dim, "dtype": a.dtype,
                      "vocab": len(tok), "silenced_tokens": invisible, "params": params, "weights_bytes": size, "kv_bytes_per_token": kv_bytes,
                      "device": device, "tokenizer_s": round(t1 - t0, 1), "model_s": round(time.time() - t1, 1)}))


if __name__ == "__main__":
    main()
