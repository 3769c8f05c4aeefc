#!/usr/bin/env python3
"""GGUF interop with llama.cpp, both ways, on the fixture models (or any HF Phi-4 directory).

1. ours → llama.cpp: `phi4 quantize` writes f16 / q8_0 / q4_0 and the K-quant mixes q4_k_m /
   q5_k_m / q6_k; llama.cpp (PyPI llama-cpp-python) loads each, and its logits are compared with
   ours on the same file.
2. llama.cpp → ours: llama.cpp's own quantizer (`llama_model_quantize`, as `llama-quantize`)
   turns our f16 GGUF into Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K files (its Q4_0 keeps output.weight
   in Q6_K, as real Phi-4 downloads do; the K mixes use Q4_K/Q5_K/Q6_K, or Q4_1/Q5_0/Q5_1/Q8_0 for
   rows that are not multiples of 256); ours loads them, and the logits are compared with llama.cpp's on the
   same file.
Both are also compared with transformers' f32 logits (the fixtures' reference).

The `mini` fixture has Phi-4-mini's architecture (partial rotary, LongRoPE factor tensors, tied
lm_head) with original_max_position_embeddings 48: llama.cpp picks the long factors for the whole
context when n_ctx > 48 (always here), we and transformers pick them per call by its length, so
the default prompt (354 tokens, one call) uses the long factors on both sides and they agree.

Needs: pip install llama-cpp-python numpy (builds llama.cpp from source, ~10 minutes)
Usage: python3 tools/interop_llama_cpp.py [--models gqa4,gqa8,mha,mini] [--prompt 3]
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "models")
PHI4 = os.path.join(ROOT, ".build", "release", "phi4")


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl(p_logits, q_logits):
    p, q = softmax(p_logits.astype(np.float64)), softmax(q_logits.astype(np.float64))
    return float((p * (np.log(p) - np.log(q))).sum(-1).mean())


def llama_logits(path, ids):
    llm = llama_cpp.Llama(model_path=path, n_ctx=max(64, len(ids) + 8), n_threads=2, n_batch=512,
                          logits_all=True, verbose=False)
    llm.eval(ids)
    out = np.array(llm.scores[:len(ids)], dtype=np.float32)
    del llm
    return out


def our_logits(path, ids, tmp):
    out = os.path.join(tmp, "ours.npy")
    subprocess.run([PHI4, "logits", "--model", path, "--ids", ",".join(map(str, ids)), "--all", "--out", out],
                   check=True)
    return np.load(out)


def llama_quantize(src, dst, ftype):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed ({rc})")


def row(name, a, b, ref):
    print(f"  {name:38s} max|Δ| {np.abs(a - b).max():9.5f}  KL {kl(a, b):.2e}  top-1 "
          f"{(a.argmax(-1) == b.argmax(-1)).mean():.3f}  | KL vs f32: llama.cpp {kl(ref, a):.2e}, ours {kl(ref, b):.2e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="gqa4,gqa8,mha,mini")
    ap.add_argument("--prompt", type=int, default=3, help="reference prompt index (3: 354 tokens)")
    ap.add_argument("--hf", help="also check this HF Phi-4 directory (e.g. from tools/make_phi4_shaped.py), "
                                 "with our f32 logits as the reference and 48 random prompt tokens")
    ap.add_argument("--llama-types", default="q8_0,q4_0,q4_k_m,q5_k_m,q6_k",
                    help="types llama.cpp's quantizer writes for step 2 (K-quant mixes fall back to Q4_1/Q5_0/Q5_1/Q8_0 "
                         "for rows that are not multiples of 256, as in the small fixtures)")
    ap.add_argument("--our-types", default="q4_k_m,q5_k_m,q6_k",
                    help="K-quant mixes phi4 quantize writes for step 1 (besides f16, q8_0, q4_0)")
    args = ap.parse_args()
    subprocess.run(["swift", "build", "-c", "release", "--product", "phi4"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"llama-cpp-python {llama_cpp.__version__}")
    models = [os.path.join(FIX, m) for m in args.models.split(",") if m] + ([args.hf] if args.hf else [])
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.hf)) if args.hf else None) as tmp:
        for src in models:
            m = os.path.basename(src.rstrip("/"))
            if src == args.hf:
                ids = [int(x) for x in np.random.default_rng(0).integers(0, 100000, 48)]
                ref = our_logits(src, ids, tmp)
            else:
                ref_json = json.load(open(os.path.join(src, "reference", "prompts.json")))["prompts"][args.prompt]
                ids = ref_json["ids"]
                ref = np.load(os.path.join(src, "reference", f"logits_{args.prompt}.npy"))
            print(f"{m}: {len(ids)} positions (llama.cpp logits vs ours, same file)")
            files = {}
            for t in ["f16", "q8_0", "q4_0"] + args.our_types.split(","):
                if not t:
                    continue
                path = os.path.join(tmp, f"{m}-ours-{t}.gguf")
                subprocess.run([PHI4, "quantize", "--model", src, "--type", t, "--out", path], check=True,
                               stderr=subprocess.DEVNULL)
                files[t] = path
                row(f"written by phi4 quantize, {t}", llama_logits(path, ids), our_logits(path, ids, tmp), ref)
            ftypes = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
                      "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "q5_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
                      "q6_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K}
            for t in args.llama_types.split(","):
                ftype = ftypes[t]
                path = os.path.join(tmp, f"{m}-llama-{t}.gguf")
                llama_quantize(files["f16"], path, ftype)
                info = subprocess.run([PHI4, "info", path], capture_output=True, text=True).stdout
                kinds = ", ".join(l.split(":")[0].replace("tensors ", "") for l in info.splitlines() if l.startswith("tensors "))
                row(f"written by llama.cpp, {t} ({kinds})", llama_logits(path, ids), our_logits(path, ids, tmp), ref)


if __name__ == "__main__":
    sys.exit(main())
