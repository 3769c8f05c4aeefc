#!/usr/bin/env python3
"""Reference chat prompts for Phi-4-reasoning, rendered by transformers' apply_chat_template.

Phi-4-reasoning (and -reasoning-plus) use Phi-4's tokenizer with `<think>` and `</think>` as added
special tokens (ids 100280 and 100281, where Phi-4 has <|dummy_16|> and <|dummy_17|>) and a chat
template that puts a fixed system message first whenever the conversation does not start with
one. TEMPLATE below reproduces that template's system text character for character as it appears
in copies of the published template (tokenizer_config.json's chat_template, also embedded in the
models' GGUF files); its turns are Phi-4's format.

Writes Tests/Phi4Tests/Fixtures/tokenizer/reasoning/chat.json: the template, the two token ids,
and for each conversation the rendered text and token ids (transformers' PreTrainedTokenizerFast
over the committed Phi-4 tokenizer.json with the two tokens renamed; like every HF tokenizer it
reads special-token text inside message contents as special tokens, so the assistant turn's
`<think>` is one token).

Needs: pip install transformers tokenizers jinja2
Usage: python3 tools/make_reasoning_fixtures.py
"""
import json
import os
import tempfile

from transformers import PreTrainedTokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "tokenizer")

SYSTEM = (
    "You are Phi, a language model trained by Microsoft to help users. Your role as an assistant involves "
    "thoroughly exploring questions through a systematic thinking process before providing the final precise "
    "and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, "
    "exploration, reassessment, reflection, backtracing, and iteration to develop well-considered thinking "
    "process. Please structure your response into two main sections: Thought and Solution using the specified "
    "format: <think> {Thought section} </think> {Solution section}. In the Thought section, detail your "
    "reasoning process in steps. Each step should include detailed considerations such as analysing questions, "
    "summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, "
    "refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, "
    "explorations, and reflections from the Thought section, systematically present the final solution that "
    "you deem correct. The Solution section should be logical, accurate, and concise and detail necessary "
    "steps needed to reach the conclusion. Now, try to solve the following question through the above "
    "guidelines:"
)

TEMPLATE = (
    "{% if messages|length == 0 or messages[0]['role'] != 'system' %}"
    "{{'<|im_start|>system<|im_sep|>" + SYSTEM + "<|im_end|>'}}"
    "{% endif %}"
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
)

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "<think>Two and two make four.</think>The answer is 4."},
     {"role": "user", "content": "And 3+3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
]


def main():
    with open(os.path.join(FIXTURES, "phi4", "tokenizer.json")) as f:
        tj = json.load(f)
    names = {100280: "<think>", 100281: "</think>"}
    for t in tj["added_tokens"]:
        if t["id"] in names:
            t["content"] = names[t["id"]]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tokenizer.json")
        with open(path, "w") as f:
            json.dump(tj, f)
        tok = PreTrainedTokenizerFast(tokenizer_file=path)
        tok.chat_template = TEMPLATE
        cases = []
        for messages in CONVERSATIONS:
            for gen in (True, False):
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
                if hasattr(ids, "keys"):
                    ids = ids["input_ids"]
                cases.append({"messages": messages, "add_generation_prompt": gen, "text": text, "ids": list(ids)})
    out = {"system": SYSTEM, "template": TEMPLATE, "tokens": {"<think>": 100280, "</think>": 100281}, "cases": cases}
    os.makedirs(os.path.join(FIXTURES, "reasoning"), exist_ok=True)
    with open(os.path.join(FIXTURES, "reasoning", "chat.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
