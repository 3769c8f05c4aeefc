#!/usr/bin/env python3
"""Our K-quant writer against llama.cpp's quantizer, byte for byte, tensor by tensor.

Writes an f32 GGUF of an HF Phi-4 checkpoint (`phi4 quantize --type f32`), quantizes it with
llama.cpp's `llama_model_quantize` (PyPI llama-cpp-python; no importance matrix, as
`llama-quantize` without --imatrix) and with `phi4 quantize` to each of Q4_K_M, Q5_K_M, Q6_K,
then compares every tensor: the GGML type chosen (the recipe) and the fraction of identical
super-blocks. With --fixture DIR it also stores a small slice (32 rows of blk.0.ffn_up as f32 and
llama.cpp's Q4_K, Q5_K and Q6_K bytes for them) for the test suite.

Usage: python3 tools/compare_kquant_writer.py HF_DIR [--fixture Tests/Phi4Tests/Fixtures/quant]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader

from interop_llama_cpp import llama_quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHI4 = os.path.join(ROOT, ".build", "release", "phi4")
FTYPES = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
BLOCK = {12: 144, 13: 176, 14: 210}  # GGML type → bytes per super-block of 256


def tensors(path):
    return {t.name: t for t in GGUFReader(path).tensors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hf")
    ap.add_argument("--fixture")
    args = ap.parse_args()
    subprocess.run(["swift", "build", "-c", "release", "--product", "phi4"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "f32.gguf")
        subprocess.run([PHI4, "quantize", "--model", args.hf, "--type", "f32", "--out", f32], check=True, capture_output=True)
        source = tensors(f32)
        for name, ftype in FTYPES.items():
            theirs_path, ours_path = os.path.join(tmp, f"llama-{name}.gguf"), os.path.join(tmp, f"ours-{name}.gguf")
            llama_quantize(f32, theirs_path, ftype)
            subprocess.run([PHI4, "quantize", "--model", args.hf, "--type", name, "--out", ours_path], check=True,
                           capture_output=True)
            theirs, ours = tensors(theirs_path), tensors(ours_path)
            same_type = total_blocks = same_blocks = 0
            worst = (1.0, "")
            for tname, t in theirs.items():
                o = ours[tname]
                if int(o.tensor_type) != int(t.tensor_type):
                    print(f"  {name}: {tname}: llama.cpp {t.tensor_type.name}, ours {o.tensor_type.name}")
                    continue
                same_type += 1
                bb = BLOCK.get(int(t.tensor_type))
                a, b = np.asarray(t.data).view(np.uint8).ravel(), np.asarray(o.data).view(np.uint8).ravel()
                if not bb:
                    same = float(np.array_equal(a, b))
                    n = 1
                else:
                    a, b = a.reshape(-1, bb), b.reshape(-1, bb)
                    n = a.shape[0]
                    same = float((a == b).all(axis=1).mean())
                total_blocks += n
                same_blocks += same * n
                worst = min(worst, (same, tname))
            print(f"{name}: {same_type}/{len(theirs)} tensors of the same type; identical super-blocks "
                  f"{same_blocks / total_blocks * 100:.4f} % of {total_blocks}; worst tensor {worst[1]} {worst[0] * 100:.3f} %")
            if args.fixture:
                # 32 rows of blk.0.ffn_up: Q4_K in Q4_K_M, Q5_K in Q5_K_M, Q6_K in Q6_K.
                tname, kind = "blk.0.ffn_up.weight", {"q4_k_m": "q4_k", "q5_k_m": "q5_k", "q6_k": "q6_k"}[name]
                x = np.asarray(source[tname].data, dtype=np.float32)
                rows = x.reshape(-1, x.shape[-1])[:32]
                bb = BLOCK[int(theirs[tname].tensor_type)]
                assert theirs[tname].tensor_type.name.lower() == kind, theirs[tname].tensor_type
                q = np.asarray(theirs[tname].data).view(np.uint8).reshape(-1, x.shape[-1] // 256 * bb)[:32]
                np.save(os.path.join(args.fixture, "kq_input.npy"), rows.astype(np.float32))
                q.tofile(os.path.join(args.fixture, f"kq_{kind}_llama.bin"))
        if args.fixture:
            print(f"fixtures written to {args.fixture}")


if __name__ == "__main__":
    main()
