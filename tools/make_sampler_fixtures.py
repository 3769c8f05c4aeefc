#!/usr/bin/env python3
"""Expected results of llama.cpp's typical and Mirostat samplers on fixed logits, from a direct
reimplementation of their formulas (llama.cpp's src/llama-sampler.cpp: llama_sampler_typical_apply,
llama_sampler_mirostat_apply, llama_sampler_mirostat_v2_apply), in float32 as there.

Typical: softmax; entropy H = -Σ p ln p; tokens sorted by |−ln p − H|; keep them until the
cumulative probability exceeds p (at least min_keep = 1, as llama-cpp-python sets).
Mirostat 1: softmax; ŝ = Σ tᵢbᵢ / Σ tᵢ² over the m = 100 most likely tokens (tᵢ = ln((i+2)/(i+1)),
bᵢ = ln(pᵢ/pᵢ₊₁)); ε̂ = ŝ − 1; k = (ε̂·2^μ / (1 − N^−ε̂))^(1/ŝ); top-k(max(int(k), 1)); softmax; draw.
Mirostat 2: softmax; drop the tokens whose −log₂ p > μ (at least one); softmax; draw.
Both: μ ← μ − η(−log₂ p(chosen) − τ), p(chosen) after the truncation's renormalisation.
The draw takes a given uniform u ∈ [0, 1): the first token whose cumulative probability exceeds
u × total (llama.cpp draws with std::discrete_distribution; the random source is the engine's).

Writes Tests/Phi4Tests/Fixtures/sampling/llama_samplers.json. Usage: python3 tools/make_sampler_fixtures.py
"""
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "sampling", "llama_samplers.json")
f32 = np.float32


def softmax_sorted(logits):
    order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))
    x = np.array([logits[i] for i in order], dtype=f32)
    e = np.exp(x - x[0]).astype(f32)
    return order, (e / e.sum(dtype=f32)).astype(f32)


def typical(probs, p):
    entropy = f32(0)
    for q in probs:
        entropy += f32(-q * np.log(q))
    shifted = [abs(f32(-np.log(q)) - entropy) for q in probs]
    idx = sorted(range(len(probs)), key=lambda i: (shifted[i], i))
    cum = f32(0)
    for n, i in enumerate(idx):
        cum += probs[i]
        if cum > p:
            return idx[:n + 1]
    return idx


def draw(probs, u):
    total = probs.sum(dtype=f32)
    r = f32(u) * total
    cum = f32(0)
    for i, q in enumerate(probs):
        cum += q
        if r < cum:
            return i
    return len(probs) - 1


def mirostat(probs, version, n_vocab, tau, eta, mu, u):
    if version == 1:
        m = 100
        num = den = f32(0)
        for i in range(min(m - 1, len(probs) - 1)):
            t = f32(np.log(f32(i + 2) / f32(i + 1)))
            b = f32(np.log(probs[i] / probs[i + 1]))
            num += t * b
            den += t * t
        s_hat = num / den
        eps = s_hat - f32(1)
        k = np.power(f32(eps * np.power(f32(2), f32(mu))) / f32(1 - np.power(f32(n_vocab), -eps)), f32(1) / s_hat)
        keep = max(int(k), 1) if np.isfinite(k) and k < len(probs) else len(probs)
    else:
        keep = next((i for i, q in enumerate(probs) if -np.log2(q) > mu), len(probs))
        keep = max(keep, 1)
    kept = probs[:keep] / probs[:keep].sum(dtype=f32)
    pick = draw(probs[:keep], u)
    surprise = f32(-np.log2(kept[pick]))
    return pick, keep, float(f32(mu) - f32(eta) * (surprise - f32(tau)))


def main():
    rng = np.random.default_rng(7)
    cases = {"typical": [], "mirostat": []}
    for c in range(12):
        n = int(rng.integers(8, 300))
        logits = (rng.standard_normal(n) * rng.uniform(0.5, 4)).astype(f32).tolist()
        order, probs = softmax_sorted(logits)
        for p in (0.2, 0.5, 0.9, 0.99):
            kept = typical(probs, f32(p))
            cases["typical"].append({"logits": logits, "p": p, "kept": sorted(order[i] for i in kept)})
        for version in (1, 2):
            tau, eta = [(5.0, 0.1), (3.0, 0.3), (8.0, 0.05)][c % 3]
            mu = float(2 * tau) if c % 2 == 0 else float(rng.uniform(0.5, 12))
            u = float(rng.uniform(0, 1))
            pick, keep, new_mu = mirostat(probs, version, n, tau, eta, mu, u)
            cases["mirostat"].append({"logits": logits, "version": version, "tau": tau, "eta": eta, "mu": mu,
                                      "uniform": u, "kept": keep, "token": order[pick], "new_mu": new_mu})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(cases, f, separators=(",", ":"))
    print(f"{OUT}: {len(cases['typical'])} typical and {len(cases['mirostat'])} mirostat cases")


if __name__ == "__main__":
    main()
