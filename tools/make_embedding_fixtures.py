#!/usr/bin/env python3
"""Reference embeddings from transformers for the test checkpoints (tools/make_fixtures.py's).

For each model under Tests/Phi4Tests/Fixtures/models/{gqa4,gqa8,mha}: the last hidden state of
HF `transformers` `Phi3ForCausalLM` (float32, eager attention) — `model.model(ids).last_hidden_state`,
which is the output of the final RMS norm — for the prompts of reference/prompts.json, each
evaluated by itself, pooled as llama.cpp pools: mean over the tokens, the last token, the first
token; and the per-token vectors (no pooling) of the first and third prompts. Written to
reference/embeddings.json (float32 values printed as decimals).

Needs: pip install torch transformers safetensors
Usage: python3 tools/make_embedding_fixtures.py
"""
import json
import os

import torch
import transformers
from transformers import Phi3ForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "models")


def main():
    for name in ("gqa4", "gqa8", "mha"):
        folder = os.path.join(MODELS, name)
        with open(os.path.join(folder, "reference", "prompts.json")) as f:
            prompts = json.load(f)["prompts"]
        model = Phi3ForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        out = {"transformers": transformers.__version__, "torch": torch.__version__, "inputs": [], "mean": [], "last": [],
               "first": [], "none": {}}
        with torch.no_grad():
            for i, p in enumerate(prompts):
                ids = torch.tensor([p["ids"]])
                h = model.model(input_ids=ids).last_hidden_state[0]  # [tokens, hidden], after the final norm
                out["inputs"].append(p["ids"])
                out["mean"].append(h.mean(dim=0).tolist())
                out["last"].append(h[-1].tolist())
                out["first"].append(h[0].tolist())
                if i in (0, 2):
                    out["none"][str(i)] = h.tolist()
        path = os.path.join(folder, "reference", "embeddings.json")
        with open(path, "w") as f:
            json.dump(out, f, separators=(",", ":"))
        print(f"{path}: {len(out['inputs'])} inputs, hidden {len(out['mean'][0])}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
