#!/usr/bin/env python3
"""Write the `gguf` package's table of GGML types (id, name, values and bytes per block) as a test fixture.

The kernels' format table (Sources/CPhi4Kernels/formats.c) and Swift's GGMLType are checked
against it (FormatTableTests), so a block size written wrong in either place fails a test.

Usage: pip install gguf; python3 tools/make_ggml_types.py
"""
import json
import os

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "quant", "ggml_types.json")

types = [{"id": t.value, "name": t.name, "block_values": GGML_QUANT_SIZES[t][0], "block_bytes": GGML_QUANT_SIZES[t][1]}
         for t in GGMLQuantizationType if t in GGML_QUANT_SIZES]
with open(OUT, "w") as f:
    from importlib.metadata import version
    json.dump({"gguf": version("gguf"), "types": types}, f, indent=1)
print(f"{len(types)} types -> {OUT}")
