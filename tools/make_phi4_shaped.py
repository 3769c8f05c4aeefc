#!/usr/bin/env python3
"""Write a Phi-4-shaped checkpoint with random bf16 weights (for speed and memory measurements).

Exactly Phi-4's config.json (hidden 5120, FFN 17920, 40/10 heads, vocab 100352, θ 250000) except
`num_hidden_layers`, which defaults to 2 so that the f32 run fits in 24 GiB (all 40 layers in f32
need 58.6 GB; use a quantized type for the full depth). Tensor names, shapes, sharding and the
tokenizer files are those of a real Phi-4 directory. Needs only numpy.

Usage: python3 tools/make_phi4_shaped.py OUT_DIR [--layers 2] [--seed 0]
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "tokenizer", "phi4")

CONFIG = {
    "architectures": ["Phi3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 100257, "embd_pdrop": 0.0, "eos_token_id": 100265, "hidden_act": "silu",
    "hidden_size": 5120, "initializer_range": 0.02, "intermediate_size": 17920,
    "max_position_embeddings": 16384, "model_type": "phi3", "num_attention_heads": 40,
    "num_hidden_layers": 40, "num_key_value_heads": 10, "original_max_position_embeddings": 16384,
    "pad_token_id": 100349, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "rope_theta": 250000, "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "use_cache": True, "vocab_size": 100352,
}


def bf16_bytes(a):
    """float32 array -> bfloat16 bytes (round to nearest even)."""
    u = a.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()


def write_shard(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, shape, data in tensors:
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    c = dict(CONFIG, num_hidden_layers=args.layers)
    d, ff, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    qkv = d + 2 * 10 * 128
    os.makedirs(args.out, exist_ok=True)

    def rand(*shape, scale):
        return bf16_bytes(rng.standard_normal(shape, dtype=np.float32) * scale)

    shards = [[("model.embed_tokens.weight", (v, d), rand(v, d, scale=1.0))]]
    for i in range(args.layers):
        p = f"model.layers.{i}."
        shards.append([
            (p + "input_layernorm.weight", (d,), bf16_bytes(np.ones(d, np.float32))),
            (p + "self_attn.qkv_proj.weight", (qkv, d), rand(qkv, d, scale=d ** -0.5)),
            (p + "self_attn.o_proj.weight", (d, d), rand(d, d, scale=d ** -0.5)),
            (p + "post_attention_layernorm.weight", (d,), bf16_bytes(np.ones(d, np.float32))),
            (p + "mlp.gate_up_proj.weight", (2 * ff, d), rand(2 * ff, d, scale=d ** -0.5)),
            (p + "mlp.down_proj.weight", (d, ff), rand(d, ff, scale=ff ** -0.5)),
        ])
    shards.append([("model.norm.weight", (d,), bf16_bytes(np.ones(d, np.float32))),
                   ("lm_head.weight", (v, d), rand(v, d, scale=d ** -0.5))])
    n = len(shards)
    weight_map = {}
    for k, tensors in enumerate(shards):
        name = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        write_shard(os.path.join(args.out, name), tensors)
        for t in tensors:
            weight_map[t[0]] = name
        print("wrote", name, flush=True)
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 100257, "eos_token_id": [100265, 100257], "pad_token_id": 100349}, f, indent=2)
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copyfile(os.path.join(TOK, name), os.path.join(args.out, name))


if __name__ == "__main__":
    main()
