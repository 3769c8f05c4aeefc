#!/usr/bin/env python3
"""Reference prompts for Phi-4-mini's tool calling, rendered by transformers' apply_chat_template.

Phi-4-mini-instruct's chat template (tokenizer_config.json's chat_template, reproduced in TEMPLATE)
writes a system message's `tools` string between <|tool|> and <|/tool|>, and every other message as
'<|' + role + '|>' + content + '<|end|>' (so a tool result is a `tool` message, <|tool|>…<|end|>).
Its model card gives the tools as a JSON list of {"name", "description", "parameters"} written by
json.dumps, and the model calls with <|tool_call|>[{"name": …, "arguments": {…}}]<|/tool_call|>;
an assistant turn that called functions is given back with that text as its content.

Writes Tests/Phi4Tests/Fixtures/tokenizer/mini-small/tools.json: the functions (as OpenAI's
`tools` entries), and for each conversation the OpenAI-shaped messages, the rendered text and the
token ids (transformers' PreTrainedTokenizerFast over the committed mini-small tokenizer.json, which
has Phi-4-mini's special tokens; like every HF tokenizer it reads special-token text inside the
rendered prompt as special tokens).

Needs: pip install transformers tokenizers jinja2
Usage: python3 tools/make_tool_fixtures.py
"""
import json
import os

from transformers import PreTrainedTokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DIR = os.path.join(ROOT, "Tests", "Phi4Tests", "Fixtures", "tokenizer", "mini-small")

TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}"
    "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

FUNCTIONS = [
    {"name": "get_weather", "description": "Current weather for a city.",
     "parameters": {"properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"], "type": "string"}},
                    "required": ["city"], "type": "object"}},
    {"name": "add", "description": "Adds two integers — exactly.",
     "parameters": {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"],
                    "type": "object"}},
]

# OpenAI-shaped conversations; `expected` converts them as the template wants them.
CONVERSATIONS = [
    [{"role": "user", "content": "Weather in Paris?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}],
    [{"role": "user", "content": "Weather in Paris?"},
     {"role": "assistant", "content": None, "tool_calls": [
         {"id": "call_1", "type": "function",
          "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"C\"}"}}]},
     {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
     {"role": "user", "content": "And 2+3, then 4+5?"}],
]


def as_template_messages(messages):
    """The messages as Phi-4-mini's template takes them."""
    out = []
    tools = json.dumps(FUNCTIONS)
    if messages[0]["role"] != "system":
        out.append({"role": "system", "content": "You are a helpful assistant with some tools.", "tools": tools})
    for m in messages:
        m = dict(m)
        if m["role"] == "system":
            m["tools"] = tools
        if m.get("tool_calls"):
            calls = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                     for c in m["tool_calls"]]
            m["content"] = (m["content"] or "") + "<|tool_call|>" + json.dumps(calls) + "<|/tool_call|>"
            del m["tool_calls"]
        m.pop("tool_call_id", None)
        out.append(m)
    return out


def main():
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(DIR, "tokenizer.json"), eos_token="<|endoftext|>")
    cases = []
    for conv in CONVERSATIONS:
        msgs = as_template_messages(conv)
        text = tok.apply_chat_template(msgs, chat_template=TEMPLATE, tokenize=False, add_generation_prompt=True)
        ids = tok.apply_chat_template(msgs, chat_template=TEMPLATE, tokenize=True, add_generation_prompt=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        cases.append({"messages": conv, "text": text, "ids": list(ids)})
    out = {"template": TEMPLATE, "tools": [{"type": "function", "function": f} for f in FUNCTIONS], "cases": cases}
    with open(os.path.join(DIR, "tools.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", len(cases), "cases")


if __name__ == "__main__":
    main()
