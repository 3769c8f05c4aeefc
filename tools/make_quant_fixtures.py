#!/usr/bin/env python3
"""Reference quantization fixtures from the `gguf` package (llama.cpp's Python reference).

Writes Tests/Phi4Tests/Fixtures/quant/:
  input.npy               float32 [64, 256] test values (Gaussian, outliers, zeros, ties)
  q8_0.bin, q4_0.bin      gguf.quants.quantize of input.npy (GGUF block bytes)
  q8_0_dequant.npy, q4_0_dequant.npy   gguf.quants.dequantize of those bytes
  q6_k.bin, q6_k_dequant.npy           random Q6_K blocks and their gguf dequantization
  q4_1, q5_0, q5_1, q4_k, q5_k (.bin, _dequant.npy)  the K-quant mixes' other block types
  mix_input.npy           the values q4_1 / q5_0 / q5_1 were quantized from
  lowbit/*.gguf, types.json   small models written by llama-quantize in Q2_K, Q3_K_M, IQ4_XS,
                          IQ4_NL and Q5_1 (needs .build-llama/bin from tools/build_llama_bench.sh)
  q2_k, q3_k, iq4_nl, iq4_xs (.bin, _dequant.npy)  random blocks with small f16 scales, and
                          *_wild.bin / *_wild_dequant.npy: every byte random (scales too: inf, NaN)
  iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m (.bin, _dequant.npy, _wild…)  the same for
                          the lattice IQ types, the first blocks using every entry of the grid
  gqa8-q8_0-gguf-package.gguf          the gqa8 fixture model written by gguf.GGUFWriter with
                                       gguf.quants Q8_0 tensors and the HF tokenizer (as llama.cpp's
                                       converter lays it out), to load in libphi4
Needs: pip install gguf numpy safetensors
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures")
OUT = os.path.join(FIX, "quant")


def values(rng):
    x = rng.standard_normal((64, 256)).astype(np.float32)
    x[3] *= 100
    x[5, :32] = 0
    x[7, 5] = 1e4
    x[9] = np.round(x[9] * 4) / 4  # many ties
    x[11, :32] = -x[11, :32].max()  # extreme negative
    return x


def write_model_gguf():
    from safetensors.numpy import load_file
    src = os.path.join(FIX, "models", "gqa8")
    cfg = json.load(open(os.path.join(src, "config.json")))
    tensors = {}
    idx = json.load(open(os.path.join(src, "model.safetensors.index.json")))
    for shard in sorted(set(idx["weight_map"].values())):
        tensors.update(load_file(os.path.join(src, shard)))
    write_gguf(os.path.join(OUT, "gqa8-q8_0-gguf-package.gguf"), cfg, tensors, src, Q.Q8_0)


def write_gguf(path, cfg, tensors, tokenizer_dir, qtype):
    """A Phi-4 GGUF in llama.cpp's converter layout: HF tensors renamed, 2-D tensors of whole
    32-blocks in `qtype` (Q8_0 or F32), the tokenizer of `tokenizer_dir`."""
    src = tokenizer_dir
    w = gguf.GGUFWriter(path, "phi3")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == Q.Q8_0 else gguf.LlamaFileType.ALL_F32)
    tj = json.load(open(os.path.join(src, "tokenizer.json")))
    vocab = {v: k for k, v in tj["model"]["vocab"].items()}
    added = {t["id"]: t["content"] for t in tj["added_tokens"]}
    n = cfg["vocab_size"]
    toks, types = [], []
    for i in range(n):
        if i in vocab:
            toks.append(vocab[i]); types.append(gguf.TokenType.NORMAL)
        elif i in added:
            toks.append(added[i]); types.append(gguf.TokenType.CONTROL)
        else:
            toks.append(f"[PAD{i}]"); types.append(gguf.TokenType.UNUSED)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("dbrx")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(tj["model"]["merges"])
    w.add_bos_token_id(added and [k for k, v in added.items() if v == "<|endoftext|>"][0])
    w.add_eos_token_id([k for k, v in added.items() if v == "<|im_end|>"][0])
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm.weight": "attn_norm.weight", "self_attn.qkv_proj.weight": "attn_qkv.weight",
                 "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                 "mlp.gate_up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
    for hf, t in tensors.items():
        if hf in names:
            name = names[hf]
        else:
            parts = hf.split(".")
            name = f"blk.{parts[2]}." + per_layer[".".join(parts[3:])]
        t = t.astype(np.float32)
        if t.ndim == 2 and t.shape[1] % 32 == 0 and qtype == Q.Q8_0:
            q = gguf.quants.quantize(t, Q.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=Q.Q8_0)
        else:
            w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--random-source":
        write_random_256(sys.argv[2])
        return
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(5)
    x = values(rng)
    np.save(os.path.join(OUT, "input.npy"), x)
    for name, qt in [("q8_0", Q.Q8_0), ("q4_0", Q.Q4_0)]:
        q = gguf.quants.quantize(x, qt)
        q.tofile(os.path.join(OUT, f"{name}.bin"))
        np.save(os.path.join(OUT, f"{name}_dequant.npy"), gguf.quants.dequantize(q, qt).astype(np.float32))
    q6 = rng.integers(0, 256, size=(8, 210), dtype=np.uint8)
    d = (rng.standard_normal(8) * 0.01).astype(np.float16).view(np.uint8).reshape(8, 2)
    q6[:, 208:210] = d
    q6.tofile(os.path.join(OUT, "q6_k.bin"))
    np.save(os.path.join(OUT, "q6_k_dequant.npy"), gguf.quants.dequantize(q6.reshape(-1), Q.Q6_K).astype(np.float32))
    write_model_gguf()
    write_k_quant_blocks()
    write_low_bit_blocks()
    write_lattice_blocks()
    llama_bin = os.path.join(ROOT, ".build-llama", "bin")
    if os.path.exists(os.path.join(llama_bin, "llama-quantize")):
        write_lowbit_models(llama_bin)
    else:
        print("lowbit/ models kept: no .build-llama/bin/llama-quantize (tools/build_llama_bench.sh builds it)")
    print("wrote", sorted(os.listdir(OUT)))


def write_k_quant_blocks():
    """Q4_1 / Q5_0 / Q5_1 quantized by the gguf package from random values; Q4_K / Q5_K as random
    super-blocks (the package has no quantizer for them) with small random f16 d and dmin; each
    with the package's dequantization."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(64 * 32) * rng.choice([0.01, 1.0, 30.0], size=64 * 32)).astype(np.float32)
    np.save(os.path.join(OUT, "mix_input.npy"), x)
    for name, qt in [("q4_1", Q.Q4_1), ("q5_0", Q.Q5_0), ("q5_1", Q.Q5_1)]:
        q = gguf.quants.quantize(x, qt)
        q.tofile(os.path.join(OUT, f"{name}.bin"))
        np.save(os.path.join(OUT, f"{name}_dequant.npy"), gguf.quants.dequantize(q, qt).astype(np.float32))
    for name, qt, size in [("q4_k", Q.Q4_K, 144), ("q5_k", Q.Q5_K, 176)]:
        q = rng.integers(0, 256, size=(8, size), dtype=np.uint8)
        q[:, 0:2] = (rng.standard_normal(8) * 0.01).astype(np.float16).view(np.uint8).reshape(8, 2)
        q[:, 2:4] = (np.abs(rng.standard_normal(8)) * 0.01).astype(np.float16).view(np.uint8).reshape(8, 2)
        q.tofile(os.path.join(OUT, f"{name}.bin"))
        np.save(os.path.join(OUT, f"{name}_dequant.npy"), gguf.quants.dequantize(q.reshape(-1), qt).astype(np.float32))



# The lattice IQ types: (name, type, block bytes, grid size, where index p's bits live:
# a function setting index p of a block to k).
def _set_iq2_xxs(b, p, k): b[2 + 8 * (p // 4) + p % 4] = k
def _set_iq2_xs(b, p, k):
    q = int(b[2 + 2 * p]) | int(b[3 + 2 * p]) << 8
    q = (q & ~511) | k
    b[2 + 2 * p], b[3 + 2 * p] = q & 0xFF, q >> 8
def _set_iq2_s(b, p, k):
    b[2 + p] = k & 0xFF
    at = 66 + p // 4
    b[at] = (int(b[at]) & ~(3 << 2 * (p % 4)) | (k >> 8) << 2 * (p % 4)) & 0xFF
def _set_iq3_xxs(b, p, k): b[2 + p] = k
def _set_iq3_s(b, p, k):
    b[2 + p] = k & 0xFF
    at = 66 + p // 8
    b[at] = (int(b[at]) & ~(1 << p % 8) | (k >> 8) << p % 8) & 0xFF
def _set_iq1_s(b, p, k):
    b[2 + p] = k & 0xFF
    at = 34 + 2 * (p // 4)
    qh = int(b[at]) | int(b[at + 1]) << 8
    qh = qh & ~(7 << 3 * (p % 4)) | (k >> 8) << 3 * (p % 4)
    b[at], b[at + 1] = qh & 0xFF, qh >> 8
def _set_iq1_m(b, p, k):
    b[p] = k & 0xFF
    at = 32 + p // 2
    b[at] = (int(b[at]) & ~(7 << 4 * (p % 2)) | (k >> 8) << 4 * (p % 2)) & 0xFF


LATTICE = [("iq2_xxs", Q.IQ2_XXS, 66, 256, 32, _set_iq2_xxs), ("iq2_xs", Q.IQ2_XS, 74, 512, 32, _set_iq2_xs),
           ("iq2_s", Q.IQ2_S, 82, 1024, 32, _set_iq2_s), ("iq3_xxs", Q.IQ3_XXS, 98, 256, 64, _set_iq3_xxs),
           ("iq3_s", Q.IQ3_S, 110, 512, 64, _set_iq3_s), ("iq1_s", Q.IQ1_S, 50, 2048, 32, _set_iq1_s),
           ("iq1_m", Q.IQ1_M, 56, 2048, 32, _set_iq1_m)]


def write_lattice_blocks():
    """The lattice IQ types' blocks: first blocks whose grid indices run through every entry of the
    type's grid (so the dequantization below checks the whole codebook), then random blocks; random
    signs and scales, small random f16 d (IQ1_M: spread over its scales' top nibbles); and "wild"
    blocks whose every byte is random. Each with the gguf package's dequantization."""
    rng = np.random.default_rng(29)
    for name, qt, size, grid, per_block, set_index in LATTICE:
        n_enum = grid // per_block
        count = n_enum + 16
        q = rng.integers(0, 256, size=(count, size), dtype=np.uint8)
        for k in range(grid):
            set_index(q[k // per_block], k % per_block, k)
        d = (rng.standard_normal(count) * 0.01).astype(np.float16).view(np.uint16)
        if qt == Q.IQ1_M:
            s = q[:, 48:56].copy().view(np.uint16)
            for w in range(4):
                s[:, w] = (s[:, w] & 0x0FFF) | (((d >> (4 * w)) & 0xF) << 12)
            q[:, 48:56] = s.view(np.uint8)
        else:
            q[:, 0:2] = d.view(np.uint8).reshape(count, 2)
        q.tofile(os.path.join(OUT, f"{name}.bin"))
        np.save(os.path.join(OUT, f"{name}_dequant.npy"), gguf.quants.dequantize(q.reshape(-1), qt).astype(np.float32))
        wild = rng.integers(0, 256, size=(16, size), dtype=np.uint8)
        wild.tofile(os.path.join(OUT, f"{name}_wild.bin"))
        with np.errstate(all="ignore"):
            np.save(os.path.join(OUT, f"{name}_wild_dequant.npy"),
                    gguf.quants.dequantize(wild.reshape(-1), qt).astype(np.float32))


def write_low_bit_blocks():
    """Q2_K, Q3_K, IQ4_NL and IQ4_XS blocks: random quant bytes with small random f16 scales at the
    format's scale fields, and "wild" blocks whose every byte is random; each with the gguf
    package's dequantization."""
    rng = np.random.default_rng(23)
    # name, type, block bytes, offsets of the f16 scale fields
    for name, qt, size, scales in [("q2_k", Q.Q2_K, 84, (80, 82)), ("q3_k", Q.Q3_K, 110, (108,)),
                                   ("iq4_nl", Q.IQ4_NL, 18, (0,)), ("iq4_xs", Q.IQ4_XS, 136, (0,))]:
        count = 64 if size == 18 else 16
        q = rng.integers(0, 256, size=(count, size), dtype=np.uint8)
        for at in scales:
            q[:, at:at + 2] = (rng.standard_normal(count) * 0.01).astype(np.float16).view(np.uint8).reshape(count, 2)
        q.tofile(os.path.join(OUT, f"{name}.bin"))
        np.save(os.path.join(OUT, f"{name}_dequant.npy"), gguf.quants.dequantize(q.reshape(-1), qt).astype(np.float32))
        wild = rng.integers(0, 256, size=(count, size), dtype=np.uint8)
        wild.tofile(os.path.join(OUT, f"{name}_wild.bin"))
        with np.errstate(all="ignore"):
            np.save(os.path.join(OUT, f"{name}_wild_dequant.npy"),
                    gguf.quants.dequantize(wild.reshape(-1), qt).astype(np.float32))



def write_random_256(path):
    """A small Phi-4-architecture model whose rows are whole 256-blocks (hidden 256, FFN 512, two
    layers, random weights, the gqa8 tokenizer) as an f32 GGUF: the source of the lowbit/ files and
    of `tools/interop_gguf_types.py --kl` (`python3 tools/make_quant_fixtures.py --random-source PATH`)."""
    src = os.path.join(FIX, "models", "gqa8")
    cfg = dict(json.load(open(os.path.join(src, "config.json"))))
    cfg.update(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2)
    h, f, v, kv = 256, 512, cfg["vocab_size"], 2 * 64
    rng = np.random.default_rng(31)
    r = lambda *shape: (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    tensors = {"model.embed_tokens.weight": r(v, h), "model.norm.weight": np.ones(h, np.float32),
               "lm_head.weight": r(v, h)}
    for i in range(2):
        p = f"model.layers.{i}."
        tensors.update({p + "input_layernorm.weight": np.ones(h, np.float32),
                        p + "self_attn.qkv_proj.weight": r(h + 2 * kv, h), p + "self_attn.o_proj.weight": r(h, h),
                        p + "post_attention_layernorm.weight": np.ones(h, np.float32),
                        p + "mlp.gate_up_proj.weight": r(2 * f, h), p + "mlp.down_proj.weight": r(h, f)})
    write_gguf(path, cfg, tensors, src, Q.F32)


# llama-quantize's lattice IQ mixes in the fixtures (with an importance matrix): between them every
# lattice type.
LATTICE_MIXES = ["IQ3_M", "IQ3_XXS", "IQ2_M", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S"]


def write_lowbit_models(llama_bin):
    """The model of write_random_256 written by the pinned `llama-quantize` in the low-bit mixes
    (lowbit/{q2_k,q3_k_m,iq4_xs,iq4_nl,q4_1,q5_0,q5_1}.gguf) and, with an importance matrix from
    llama-imatrix, the lattice IQ mixes (lowbit/{iq3_m,iq3_xxs,iq2_m,…}.gguf) with each file's tensor types
    (lowbit/types.json, read back by the gguf package) and, per file and quantized type, the gguf
    package's dequantization of the first 4 rows of its first tensor of that type
    (lowbit/dequant_FILE_TYPE.npy, the tensor names in lowbit/dequant.json). They feed the loader
    tests and the mutated-file fuzzing."""
    import subprocess
    import tempfile
    out = os.path.join(OUT, "lowbit")
    os.makedirs(out, exist_ok=True)
    types, dequant = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "f32.gguf")
        write_random_256(f32)
        # An importance matrix (the lattice IQ mixes need one) from llama-imatrix on a fixed text.
        text = os.path.join(tmp, "calibration.txt")
        words = np.random.default_rng(37).choice(["the", "model", "of", "a", "weight", "runs", "in", "place", "and",
                                                    "every", "block", "is", "read", "once", "def", "return", "(", ")",
                                                    ":", "=", "1", "2", "\n"], size=6000)
        with open(text, "w") as f:
            f.write(" ".join(words))
        imat = os.path.join(tmp, "imatrix.gguf")
        subprocess.run([os.path.join(llama_bin, "llama-imatrix"), "-m", f32, "-f", text, "-o", imat, "-c", "128",
                        "-t", "2"], check=True, capture_output=True)
        for ty in ["Q2_K", "Q3_K_M", "IQ4_XS", "IQ4_NL", "Q4_1", "Q5_0", "Q5_1"] + LATTICE_MIXES:
            path = os.path.join(out, ty.lower() + ".gguf")
            im = ["--imatrix", imat] if ty in LATTICE_MIXES else []
            subprocess.run([os.path.join(llama_bin, "llama-quantize"), *im, f32, path, ty], check=True, capture_output=True)
            reader = gguf.GGUFReader(path)
            types[ty.lower()] = {t.name: t.tensor_type.name for t in reader.tensors}
            # Real llama-quantize blocks: the first 4 rows of the first tensor of each quantized type,
            # dequantized by the gguf package.
            for t in reader.tensors:
                name = t.tensor_type.name.lower()
                target = os.path.join(out, f"dequant_{ty.lower()}_{name}.npy")
                if t.tensor_type in (Q.F32, Q.F16) or f"{ty.lower()}_{name}" in dequant:
                    continue
                rows = np.asarray(t.data)[:4]
                np.save(target, gguf.quants.dequantize(rows, t.tensor_type).astype(np.float32))
                dequant[f"{ty.lower()}_{name}"] = t.name
    json.dump(types, open(os.path.join(out, "types.json"), "w"), indent=1, sort_keys=True)
    json.dump(dequant, open(os.path.join(out, "dequant.json"), "w"), indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
