#!/usr/bin/env python3
"""`phi4 quantize` and `phi4 imatrix` against llama.cpp's `llama-quantize` and `llama-imatrix`.

For each source model — the demo model (models/phi4-demo-q8_0.gguf, dequantized to an f32 GGUF;
every matrix is whole 256-blocks) and the `gqa4` fixture (64-wide rows, so every K and IQ type
falls back to a 32-block type) — it:

1. computes an importance matrix with both tools over the same calibration text
   (Tests/Phi4Tests/Fixtures/quant/llama_quantize/calibration.txt) and compares the values:
   relative difference over entries above 1e-6 × the tensor's largest (p50, p99, max), counts,
   chunk count; then has llama-quantize write Q4_K_M and IQ3_XXS from each of the two matrices
   and counts the blocks of the layers that differ;
2. quantizes the f32 GGUF with both tools to every type `phi4 quantize` writes, without and with
   llama-imatrix's matrix (and once with --token-embedding-type / --output-tensor-type q8_0), and
   compares the files byte for byte; for files that differ it lists each differing tensor with its
   count of differing blocks;
3. loads every file phi4 wrote with llama.cpp (llama-cpp-python), which must accept it.

With --fixtures it records, for the test suite (Tests/Phi4Tests/QuantizeParityTests.swift),
llama-imatrix's matrices (GGUF and .dat) and a checksum of every llama-quantize file.

Needs: bash tools/build_llama_bench.sh (the pinned llama-quantize / llama-imatrix), numpy, gguf,
llama-cpp-python; swift build -c release --product phi4.
Usage: python3 tools/compare_llama_quantize.py [--llama-bin .build-llama/bin] [--fixtures] [--types q4_k_m,iq4_xs]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from gguf import GGUFReader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHI4 = os.path.join(ROOT, ".build", "release", "phi4")
FIX = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "quant", "llama_quantize")
TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q2_k_s", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m",
         "q5_k_s", "q5_k_m", "q6_k", "iq4_nl", "iq4_xs", "iq3_xxs", "iq3_xs", "iq3_s", "iq3_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq2_m",
         "iq1_s", "iq1_m"]
SOURCES = {
    # name: (how to make the f32 GGUF, tokens per imatrix chunk)
    "demo": (["--model", os.path.join(ROOT, "models", "phi4-demo-q8_0.gguf"), "--allow-requantize"], 256),
    "gqa4": (["--model", os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "models", "gqa4")], 64),
}


def checksum(path):
    """Σ w_i · (2i + 1) mod 2^64 over the file's little-endian 64-bit words (zero-padded), and its
    size: any single changed word changes it (the multipliers are odd). The test suite computes
    the same (QuantizeParityTests.checksum)."""
    b = np.fromfile(path, dtype=np.uint8)
    size = b.size
    b = np.concatenate([b, np.zeros((-size) % 8, np.uint8)])
    w = b.view("<u8")
    k = np.arange(w.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        return f"{size}:{int(np.sum(w * k, dtype=np.uint64)):016x}"


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=run.cwd, **kw)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return r


run.cwd = None


def tensors(path):
    return {t.name: t for t in GGUFReader(path).tensors}


def block_bytes(t):
    from gguf.constants import GGML_QUANT_SIZES
    return GGML_QUANT_SIZES[t.tensor_type][1]


def differing_blocks(a_path, b_path, layers_only=False):
    a, b = tensors(a_path), tensors(b_path)
    out, total, same = [], 0, 0
    for name, ta in a.items():
        if layers_only and not name.startswith("blk."):
            continue
        tb = b.get(name)
        if tb is None or tb.tensor_type != ta.tensor_type:
            out.append((name, "type", ta.tensor_type.name, tb.tensor_type.name if tb is not None else "missing"))
            continue
        bb = block_bytes(ta)
        x = np.asarray(ta.data).view(np.uint8).reshape(-1, bb)
        y = np.asarray(tb.data).view(np.uint8).reshape(-1, bb)
        eq = (x == y).all(axis=1)
        total += eq.size
        same += int(eq.sum())
        if not eq.all():
            out.append((name, int((~eq).sum()), eq.size))
    return out, same, total


def imatrix_values(path):
    r = GGUFReader(path)
    d = {t.name: np.asarray(t.data, dtype=np.float64).ravel() for t in r.tensors}
    return d


def compare_imatrix(lpath, ppath):
    a, b = imatrix_values(lpath), imatrix_values(ppath)
    if set(a) != set(b):
        return {"same_entries": False, "only_llama": sorted(set(a) - set(b)), "only_phi4": sorted(set(b) - set(a))}
    rel, counts_equal = [], True
    for k in a:
        if k.endswith(".counts"):
            counts_equal &= bool(np.array_equal(a[k], b[k]))
            continue
        x, y = a[k], b[k]
        sel = x > 1e-6 * x.max()
        rel.append(np.abs(x[sel] - y[sel]) / x[sel])
    rel = np.concatenate(rel)
    return {"same_entries": True, "entries": len(a) // 2, "counts_equal": counts_equal, "values": int(rel.size),
            "p50": float(np.percentile(rel, 50)), "p99": float(np.percentile(rel, 99)), "max": float(rel.max())}


def loads_in_llama_cpp(path):
    import llama_cpp
    try:
        m = llama_cpp.Llama(model_path=path, n_ctx=64, verbose=False)
        m.eval(m.tokenize(b"def f(x):"))
        return True
    except Exception as e:  # noqa: BLE001 - report any refusal
        print(f"    llama.cpp refused {path}: {e}")
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bin", default=os.path.join(ROOT, ".build-llama", "bin"))
    ap.add_argument("--fixtures", action="store_true")
    ap.add_argument("--types")
    ap.add_argument("--sources", default="demo,gqa4")
    ap.add_argument("--no-load", action="store_true", help="skip loading phi4's files in llama.cpp")
    args = ap.parse_args()
    types = args.types.split(",") if args.types else TYPES
    quantize, imatrix = os.path.join(args.llama_bin, "llama-quantize"), os.path.join(args.llama_bin, "llama-imatrix")
    digests = {}
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        # The files record the calibration text's and the importance matrix's names as given:
        # everything runs in `tmp` with relative names, so the records do not depend on the machine.
        with open(os.path.join(FIX, "calibration.txt"), "rb") as f, open(os.path.join(tmp, "calibration.txt"), "wb") as g:
            g.write(f.read())
        calib = "calibration.txt"
        run.cwd = tmp
        for source in args.sources.split(","):
            make_f32, ctx = SOURCES[source]
            print(f"== {source}")
            f32 = os.path.join(tmp, f"{source}-f32.gguf")
            run([PHI4, "quantize", *make_f32, "--type", "f32", "--out", f32])
            digests[source] = {"f32": checksum(f32), "files": {}}
            # 1. importance matrices
            lim, pim, ldat = f"{source}.imatrix.gguf", f"{source}-phi4.imatrix.gguf", f"{source}.imatrix.dat"
            for out, fmt in [(lim, "gguf"), (ldat, "dat")]:
                run([imatrix, "-m", f32, "-f", calib, "-o", out, "-c", str(ctx), "-t", "2", "--output-format", fmt])
            t0 = time.time()
            run([PHI4, "imatrix", "-m", f32, "-f", calib, "-o", pim, "-c", str(ctx)])
            cmp = compare_imatrix(os.path.join(tmp, lim), os.path.join(tmp, pim))
            print(f"  imatrix ({time.time() - t0:.1f} s): {json.dumps(cmp)}")
            for t in ["Q4_K_M", "IQ3_XXS"]:
                a, b = os.path.join(tmp, f"a-{t}.gguf"), os.path.join(tmp, f"b-{t}.gguf")
                run([quantize, "--imatrix", lim, f32, a, t, "2"])
                run([quantize, "--imatrix", pim, f32, b, t, "2"])
                diff, same, total = differing_blocks(a, b, layers_only=True)
                state = "identical" if not diff else f"{total - same} of {total} layer blocks differ ({len(diff)} tensors)"
                print(f"  llama-quantize {t} from llama's vs phi4's imatrix: {state}")
            # 2. quantization
            variants = [("plain", []), ("imatrix", ["--imatrix", lim])]
            for t in types:
                # With the embedding and output in Q8_0 (cheap to write), the layers' types are what
                # is compared: the test suite checks these for every type, and a few whole files.
                ends = [("imatrix-q8ends", ["--imatrix", lim, "--token-embedding-type", "q8_0", "--output-tensor-type", "q8_0"])]
                for variant, extra in variants + (ends if source == "demo" else []):
                    theirs, ours = os.path.join(tmp, f"l-{t}-{variant}.gguf"), os.path.join(tmp, f"p-{t}-{variant}.gguf")
                    t0 = time.time()
                    lr = subprocess.run([quantize, *extra, f32, theirs, t.upper(), "2"], capture_output=True, text=True, cwd=tmp)
                    t1 = time.time()
                    if lr.returncode != 0 and "imatrix" in lr.stderr and variant == "plain":
                        # llama-quantize refuses types that need an importance matrix: so must we.
                        r = subprocess.run([PHI4, "quantize", "--model", f32, "--type", t, "--out", ours],
                                           capture_output=True, text=True, cwd=tmp)
                        ok = r.returncode != 0 and "importance matrix" in r.stderr
                        print(f"  {t:8} {variant:9} both refuse without an importance matrix: {'yes' if ok else 'NO'}")
                        failures += not ok
                        continue
                    if lr.returncode != 0:
                        raise SystemExit(f"llama-quantize failed: {lr.stderr[-1500:]}")
                    run([PHI4, "quantize", *extra, "--model", f32, "--type", t, "--out", ours])
                    t2 = time.time()
                    same = open(theirs, "rb").read() == open(ours, "rb").read()
                    digests[source]["files"][f"{t}/{variant}"] = checksum(theirs)
                    line = f"  {t:8} {variant:9} llama {t1 - t0:5.1f} s, phi4 {t2 - t1:5.1f} s: "
                    if same:
                        line += "byte-identical"
                    else:
                        failures += 1
                        diff, s, n = differing_blocks(theirs, ours)
                        line += f"DIFFER ({n - s} of {n} blocks): " + "; ".join(map(str, diff[:8]))
                    if not args.no_load and not loads_in_llama_cpp(ours):
                        failures += 1
                        line += " — llama.cpp does not load it"
                    print(line)
            if args.fixtures:
                os.makedirs(FIX, exist_ok=True)
                for name in [lim, ldat]:
                    with open(os.path.join(tmp, name), "rb") as f, open(os.path.join(FIX, name), "wb") as g:
                        g.write(f.read())
    if args.fixtures:
        with open(os.path.join(FIX, "checksums.json"), "w") as f:
            json.dump({"llama_cpp": open(os.path.join(ROOT, ".build-llama", "VERSION")).read().strip(), "sources": digests},
                      f, indent=1, sort_keys=True)
            f.write("\n")
    print("all byte-identical" if not failures else f"{failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
