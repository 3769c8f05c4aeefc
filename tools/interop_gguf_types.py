#!/usr/bin/env python3
"""Files of every llama-quantize type, read by libphi4 and by llama.cpp: perplexity side by side.

For each type, `llama-quantize` (the pinned build of tools/build_llama_bench.sh) writes the file from
SOURCE (a float or Q8_0 GGUF; `--allow-requantize` for Q8_0), optionally with an importance matrix
from `llama-imatrix` on the same text; the script checks with the `gguf` package that the target
type is present and lists the tensor types; then `phi4 perplexity` and `llama-perplexity` run on the
same file and text, same context and window count (both score the second half of each window), and
the relative difference is printed. No BOS is inserted by either (Phi-4's GGUFs do not add one).
With `--kl N`, llama.cpp's logits (through PyPI's llama-cpp-python) and ours (`phi4 logits`) at N
positions of random token ids are also compared on each file: KL(llama.cpp ‖ ours) must stay ≤ 0.1
and the top-1 token agree on ≥ 70 % of positions (for a random checkpoint, whose logits are flat).

Usage: python3 tools/interop_gguf_types.py SOURCE.gguf TEXT [--types Q2_K Q3_K_M …] [--ctx 256]
           [--windows 8] [--imatrix] [--fallbacks] [--kl 64] [--llama-bin .build-llama/bin] [--out DIR]
(--fallbacks: a model whose rows are not whole 256-blocks, e.g. the gqa8 fixture's 64-wide rows,
where llama-quantize gives fall-back types.)
"""
import argparse
import collections
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHI4 = os.path.join(ROOT, ".build", "release", "phi4")
TYPES = ["Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_NL", "IQ4_XS", "Q4_1", "Q5_0", "Q5_1", "Q4_K_M", "Q8_0",
         "IQ3_M", "IQ3_XS", "IQ3_XXS", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S"]
# The GGML type each file type must contain (the lattice IQ mixes: IQ1_S … IQ2_XS need --imatrix).
BASE = {"Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K", "IQ4_NL": "IQ4_NL",
        "IQ4_XS": "IQ4_XS", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q4_K_M": "Q4_K", "Q8_0": "Q8_0",
        "IQ3_M": "IQ3_S", "IQ3_XS": "IQ3_S", "IQ3_XXS": "IQ3_XXS", "IQ2_M": "IQ2_S", "IQ2_S": "IQ2_XS",
        "IQ2_XS": "IQ2_XS", "IQ2_XXS": "IQ2_XXS", "IQ1_M": "IQ1_M", "IQ1_S": "IQ1_S"}


def tensor_types(path):
    import gguf
    r = gguf.GGUFReader(path)
    return collections.Counter(t.tensor_type.name for t in r.tensors)


def kl_top1(path, n, t):
    """KL(llama.cpp ‖ ours) and top-1 agreement over n positions of random token ids."""
    import numpy as np
    import llama_cpp
    llm = llama_cpp.Llama(model_path=path, n_ctx=max(64, n + 8), n_threads=t, n_batch=512, logits_all=True,
                          verbose=False)
    # Ordinary token ids (below the tokenizer's special tokens, which start at 100,257 in Phi-4's).
    ids = [int(x) for x in np.random.default_rng(0).integers(0, min(100000, llm.n_vocab()), n)]
    llm.eval(ids)
    theirs = np.array(llm.scores[:n], dtype=np.float64)
    del llm
    out = os.path.join(os.path.dirname(path), "ours.npy")
    subprocess.run([PHI4, "logits", "--model", path, "--ids", ",".join(map(str, ids)), "--all", "--out", out],
                   check=True, capture_output=True)
    ours = np.load(out).astype(np.float64)
    if ours.shape != theirs.shape:  # llama.cpp pads the vocabulary to the file's row count too
        k = min(ours.shape[1], theirs.shape[1])
        ours, theirs = ours[:, :k], theirs[:, :k]
    lp = lambda x: x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
    a, b = lp(theirs), lp(ours)
    return float((np.exp(a) * (a - b)).sum(-1).mean()), float((theirs.argmax(-1) == ours.argmax(-1)).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("text")
    ap.add_argument("--types", nargs="*", default=TYPES)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--imatrix", action="store_true", help="quantize with an importance matrix from llama-imatrix on TEXT")
    ap.add_argument("--llama-bin", default=os.path.join(ROOT, ".build-llama", "bin"))
    ap.add_argument("--out", default="/tmp/phi4-interop")
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--kl", type=int, default=0, metavar="N",
                    help="also compare logits with llama.cpp's (llama-cpp-python) at N random positions")
    ap.add_argument("--fallbacks", action="store_true",
                    help="rows are not whole 256-blocks: the target type may be absent (llama-quantize's fall-back types)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    b = lambda tool: os.path.join(args.llama_bin, tool)
    imatrix = []
    if args.imatrix:
        imat = os.path.join(args.out, "imatrix.gguf")
        subprocess.run([b("llama-imatrix"), "-m", args.source, "-f", args.text, "-o", imat, "-c", str(args.ctx),
                        "-t", str(args.t)], check=True, capture_output=True)
        imatrix = ["--imatrix", imat]
    rows = []
    for ty in args.types:
        path = os.path.join(args.out, f"model-{ty}.gguf")
        q = subprocess.run([b("llama-quantize"), "--allow-requantize", *imatrix, args.source, path, ty, str(args.t)],
                           capture_output=True, text=True)
        if q.returncode != 0:
            print(f"{ty}: llama-quantize failed: {q.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        types = tensor_types(path)
        if BASE[ty] not in types and not args.fallbacks:
            print(f"{ty}: the file has no {BASE[ty]} tensor: {dict(types)}", flush=True)
            sys.exit(1)
        ours = subprocess.run([PHI4, "perplexity", "--model", path, "--file", args.text, "--ctx", str(args.ctx),
                               "--max-windows", str(args.windows), "-t", str(args.t)], capture_output=True, text=True)
        m = re.search(r"perplexity: ([0-9.]+)", ours.stdout)
        theirs = subprocess.run([b("llama-perplexity"), "-m", path, "-f", args.text, "-c", str(args.ctx),
                                 "--chunks", str(args.windows), "-t", str(args.t), "-b", str(args.ctx)],
                                capture_output=True, text=True)
        n = re.search(r"Final estimate: PPL = ([0-9.]+)", theirs.stdout + theirs.stderr)
        if not m or not n:
            print(f"{ty}: no perplexity (ours: {ours.stderr.strip()[-300:]!r}; llama.cpp: {(theirs.stdout + theirs.stderr).strip()[-300:]!r})", flush=True)
            rows.append((ty, types, None, None, None))
            continue
        a, c = float(m.group(1)), float(n.group(1))
        k = kl_top1(path, args.kl, args.t) if args.kl else None
        rows.append((ty, types, a, c, k))
        print(f"{ty:7s} ours {a:10.4f}  llama.cpp {c:10.4f}  diff {100 * (a - c) / c:+.3f} %   "
              + (f"KL {k[0]:.2e}  top-1 {k[1]:.3f}   " if k else "")
              + f"{os.path.getsize(path) / 1e6:.1f} MB  {dict(sorted(types.items()))}", flush=True)
    bad = [r for r in rows if r[2] is None or abs(r[2] - r[3]) / r[3] > 0.005
           or (r[4] is not None and (r[4][0] > 0.1 or r[4][1] < 0.7))]
    print(f"{len(rows) - len(bad)} of {len(rows)} types within 0.5 % of llama-perplexity"
          + (" with KL ≤ 0.1 and top-1 ≥ 70 %" if args.kl else ""))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
