#!/usr/bin/env python3
"""Writes phi4-server's OpenAPI document, from the one definition below, to docs/openapi.yaml and
to Server/Sources/Phi4Server/OpenAPI.swift (served as GET /openapi.json).

    python3 tools/gen_openapi.py          # rewrite both
    python3 tools/gen_openapi.py --check  # exit 1 if either differs from the definition
"""
import json
import os
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


# The largest token id of Phi-4's vocabulary; the server serves the document with its model's.
VOCAB_MAX = 100351
TOKEN_ID = {"type": "integer", "minimum": 0, "maximum": VOCAB_MAX}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def num(lo=None, hi=None, nullable=True, integer=False):
    s = {"type": "integer" if integer else "number"}
    if lo is not None:
        s["minimum"] = lo
    if hi is not None:
        s["maximum"] = hi
    if nullable:
        s["nullable"] = True
    return s


STOP = {"nullable": True, "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
COMMON = {
    "model": {"type": "string", "nullable": True, "description": "The served model's name (GET /v1/models)."},
    "max_tokens": num(0, None, integer=True),
    "temperature": num(0, 2),
    "top_p": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 1, "nullable": True},
    "seed": num(None, None, integer=True),
    "stop": STOP,
    "presence_penalty": num(-2, 2),
    "frequency_penalty": num(-2, 2),
    "logit_bias": {"type": "object", "nullable": True, "propertyNames": {"pattern": "^[0-9]{1,9}$"},
                   "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
                   "description": "Token id (as a string) → bias added to its logit; -100 bans it."},
    "stream": {"type": "boolean", "nullable": True},
    "stream_options": {"type": "object", "nullable": True, "properties": {"include_usage": {"type": "boolean", "nullable": True}}},
    "n": {"type": "integer", "enum": [1], "nullable": True, "description": "One choice per request."},
    "top_k": {**num(0, None, integer=True), "description": "Extension: keep the k most likely tokens (0: off)."},
    "min_p": {**num(0, 1), "description": "Extension: drop tokens below min_p × the top probability."},
    "repeat_penalty": {**num(None, 10), "exclusiveMinimum": True, "minimum": 0, "description": "Extension: repetition penalty (1: off)."},
    "typical_p": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 1, "nullable": True,
                  "description": "Extension (llama.cpp): locally typical sampling (1: off)."},
    "mirostat": {"type": "integer", "enum": [0, 1, 2], "nullable": True,
                 "description": "Extension (llama.cpp): Mirostat 1 or 2 (0: off); also spelled mirostat_mode."},
    "mirostat_tau": {**num(0, 100), "description": "Extension: Mirostat's target surprise in bits (default 5)."},
    "mirostat_eta": {**num(0, 10), "description": "Extension: Mirostat's learning rate (default 0.1)."},
    "user": {"type": "string", "nullable": True, "description": "Ignored."},
}

USAGE = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"], "properties": {
    "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"},
    "prompt_tokens_details": {"type": "object", "properties": {"cached_tokens": {"type": "integer"}}}}}
TOP = {"type": "object", "required": ["token", "logprob", "bytes"], "properties": {
    "token": {"type": "string"}, "logprob": {"type": "number"}, "bytes": {"type": "array", "items": {"type": "integer"}}}}
CHAT_LOGPROBS = {"type": "object", "nullable": True, "properties": {"content": {"type": "array", "items": {
    "allOf": [TOP, {"type": "object", "properties": {"top_logprobs": {"type": "array", "items": TOP}}}]}}}}
TEXT_LOGPROBS = {"type": "object", "nullable": True, "properties": {
    "tokens": {"type": "array", "items": {"type": "string"}}, "token_logprobs": {"type": "array", "items": {"type": "number"}},
    "top_logprobs": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "number"}}},
    "text_offset": {"type": "array", "items": {"type": "integer"}}}}
FINISH = {"type": "string", "enum": ["stop", "length", "tool_calls"], "nullable": True}
TOOL_CALL = {"type": "object", "required": ["id", "type", "function"], "properties": {
    "id": {"type": "string"}, "type": {"type": "string", "enum": ["function"]},
    "function": {"type": "object", "required": ["name", "arguments"], "properties": {
        "name": {"type": "string"}, "arguments": {"type": "string", "description": "The arguments as JSON text."}}}}}
TOOL_NAME = {"type": "string", "pattern": "^[a-zA-Z0-9_.-]{1,64}$"}


def envelope(obj, choice):
    return {"type": "object", "required": ["id", "object", "created", "model", "choices"], "properties": {
        "id": {"type": "string"}, "object": {"type": "string", "enum": [obj]}, "created": {"type": "integer"},
        "model": {"type": "string"}, "system_fingerprint": {"type": "string"},
        "choices": {"type": "array", "items": choice}, "usage": {**USAGE, "nullable": True}}}


SCHEMAS = {
    "ChatMessage": {"type": "object", "required": ["role"], "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"nullable": True, "oneOf": [{"type": "string"}, {"type": "array", "items": {
            "type": "object", "required": ["type", "text"],
            "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}}]},
        "name": {"type": "string"}},
        "description": "Also: an assistant message's tool_calls (as a response gives them) and a tool message's tool_call_id."},
    "Tool": {"type": "object", "required": ["type", "function"], "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {"type": "object", "required": ["name"], "properties": {
            "name": TOOL_NAME, "description": {"type": "string"},
            "parameters": {"type": "object", "description": "The arguments' JSON Schema: calls are generated to follow it."}}}}},
    "ChatCompletionRequest": {"type": "object", "required": ["messages"], "description":
                              "Also accepted, not described field by field (their validity depends on each other and on "
                              "the context length): response_format (text, json_object, or json_schema with {name, schema, "
                              "strict}: the answer is generated to be valid for the schema); tools (OpenAI's function "
                              "tools: a reply that calls them has message.tool_calls and finish_reason tool_calls), "
                              "tool_choice (auto, none, required or a named function) and parallel_tool_calls; "
                              "grammar (llama.cpp's extension: GBNF text, start rule root, that the answer follows; "
                              "not with response_format or tools).",
                              "properties": {
        "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
        "max_completion_tokens": num(0, None, integer=True),
        "logprobs": {"type": "boolean", "nullable": True},
        "top_logprobs": {**num(0, 20, integer=True), "description": "Alternatives per token, with logprobs: true (ignored without)."},
        **COMMON}},
    "CompletionRequest": {"type": "object", "required": ["prompt"], "description":
                          "Also accepted, not described field by field (its validity is a grammar's, not a type's): "
                          "grammar (llama.cpp's extension: GBNF text, start rule root, that the completion follows), "
                          "and response_format as for chat.", "properties": {
        "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string"}},
                             {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0, "maximum": VOCAB_MAX}}]},
        "logprobs": num(0, 5, integer=True),
        **COMMON}},
    "ChatCompletion": envelope("chat.completion", {"type": "object", "required": ["index", "message", "finish_reason"], "properties": {
        "index": {"type": "integer"}, "finish_reason": FINISH, "logprobs": CHAT_LOGPROBS,
        "message": {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"type": "string", "enum": ["assistant"]}, "content": {"type": "string", "nullable": True},
            "tool_calls": {"type": "array", "items": TOOL_CALL},
            "reasoning_content": {"type": "string", "description": "A reasoning model's thinking (its <think> part)."}}}}}),
    "Completion": envelope("text_completion", {"type": "object", "required": ["index", "text", "finish_reason"], "properties": {
        "index": {"type": "integer"}, "text": {"type": "string"}, "finish_reason": FINISH, "logprobs": TEXT_LOGPROBS}}),
    "Model": {"type": "object", "required": ["id", "object", "created", "owned_by"], "properties": {
        "id": {"type": "string"}, "object": {"type": "string", "enum": ["model"]}, "created": {"type": "integer"},
        "owned_by": {"type": "string"}}},
    "ModelList": {"type": "object", "required": ["object", "data"], "properties": {
        "object": {"type": "string", "enum": ["list"]}, "data": {"type": "array", "items": ref("Model")}}},
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type"], "properties": {
            "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": "string", "nullable": True},
            "code": {"type": "string", "nullable": True}}}}},
    "EmbeddingRequest": {"type": "object", "required": ["input"], "properties": {
        "input": {"oneOf": [{"type": "string", "minLength": 1},
                            {"type": "array", "minItems": 1, "maxItems": 2048, "items": {"type": "string", "minLength": 1}},
                            {"type": "array", "minItems": 1, "items": TOKEN_ID},
                            {"type": "array", "minItems": 1, "maxItems": 2048,
                             "items": {"type": "array", "minItems": 1, "items": TOKEN_ID}}],
                  "description": "Texts or token ids (at most 2,048 inputs, each within the model's context)."},
        "model": {"type": "string", "nullable": True, "description": "Any name (echoed; see --strict-model-name)."},
        "encoding_format": {"type": "string", "enum": ["float", "base64"], "nullable": True},
        "user": {"type": "string", "nullable": True, "description": "Ignored."}}},
    "EmbeddingList": {"type": "object", "required": ["object", "data", "model", "usage"], "properties": {
        "object": {"type": "string", "enum": ["list"]}, "model": {"type": "string"},
        "data": {"type": "array", "items": {"type": "object", "required": ["object", "index", "embedding"], "properties": {
            "object": {"type": "string", "enum": ["embedding"]}, "index": {"type": "integer"},
            "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}},
                                    {"type": "string", "description": "base64 of little-endian float32 values"}]}}}},
        "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"], "properties": {
            "prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}}}},
    "TokenizeRequest": {"type": "object", "properties": {
        "content": {"type": "string"}, "add_special": {"type": "boolean"}, "parse_special": {"type": "boolean"},
        "with_pieces": {"type": "boolean"}}},
    "TokenizeResponse": {"type": "object", "required": ["tokens"], "properties": {"tokens": {"type": "array", "items": {
        "oneOf": [{"type": "integer"}, {"type": "object", "required": ["id", "piece"], "properties": {
            "id": {"type": "integer"}, "piece": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]}}}]}}}},
    "DetokenizeRequest": {"type": "object", "properties": {"tokens": {"type": "array", "items": TOKEN_ID}}},
    "DetokenizeResponse": {"type": "object", "required": ["content"], "properties": {"content": {"type": "string"}}},
    "Props": {"type": "object", "required": ["default_generation_settings", "total_slots", "model_alias", "chat_template"],
              "description": "llama-server's /props: the fields that apply to this server.",
              "properties": {"default_generation_settings": {"type": "object"}, "total_slots": {"type": "integer"},
                             "model_alias": {"type": "string"}, "model_path": {"type": "string"},
                             "chat_template": {"type": "string"}, "build_info": {"type": "string"}}},
    "Health": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["loading", "ok", "busy", "error"]}, "message": {"type": "string"},
        "progress": {"type": "number", "minimum": 0, "maximum": 1,
                     "description": "While loading: the fraction of the weights converted (quantize-at-load)."}}},
}


def err(desc):
    return {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}


def post(summary, request, response, errors=("400", "401", "413", "503")):
    return {"post": {"summary": summary, "security": [{"bearer": []}, {}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": ref(request)}}},
                     "responses": {"200": {"description": "The answer.", "content": {"application/json": {"schema": ref(response)}}},
                                   **{k: ERRORS[k] for k in errors}}}}


ERRORS = {"400": err("Malformed JSON, a wrong type or value, a prompt longer than the context (code context_length_exceeded), or a field that cannot be honoured."),
          "401": err("Missing or wrong API key (with --api-key)."),
          "404": err("Unknown model (with --strict-model-name; else any name is served)."),
          "413": err("Body larger than --max-body."),
          "429": err("The queue is full (Retry-After)."),
          "503": err("The model is still loading (Retry-After).")}


def completion(summary, request, response):
    return {"post": {"summary": summary, "security": [{"bearer": []}, {}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": ref(request)}}},
                     "responses": {"200": {"description": "The answer; with stream: true, server-sent events of chunks ending in `data: [DONE]`.",
                                           "content": {"application/json": {"schema": ref(response)},
                                                       "text/event-stream": {"schema": {"type": "object", "required": ["data"], "description": "One event: data is a chunk object as JSON, or [DONE].", "properties": {"data": {"type": "string"}}}}}},
                                   **ERRORS}}}


DOC = {
    "openapi": "3.1.0",
    "info": {"title": "phi4-server", "version": "0.5.0",
             "description": "An OpenAI-compatible HTTP server over libphi4 (Phi-4 on CPUs)."},
    "paths": {
        "/v1/chat/completions": completion("A chat completion.", "ChatCompletionRequest", "ChatCompletion"),
        "/v1/completions": completion("A text completion.", "CompletionRequest", "Completion"),
        "/v1/models": {"get": {"summary": "The served model.", "security": [{"bearer": []}, {}],
                               "responses": {"200": {"description": "One model.", "content": {"application/json": {"schema": ref("ModelList")}}},
                                             "401": ERRORS["401"]}}},
        "/v1/models/{id}": {"get": {"summary": "A model by name.", "security": [{"bearer": []}, {}],
                                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                                    "responses": {"200": {"description": "The model.", "content": {"application/json": {"schema": ref("Model")}}},
                                                  "401": ERRORS["401"], "404": ERRORS["404"]}}},
        "/v1/embeddings": post("Embeddings: each input's final-norm hidden states pooled (--pooling, default mean), "
                               "L2-normalised.", "EmbeddingRequest", "EmbeddingList"),
        "/tokenize": post("llama-server's /tokenize: ids (with_pieces: ids and their text).", "TokenizeRequest",
                          "TokenizeResponse"),
        "/detokenize": post("llama-server's /detokenize.", "DetokenizeRequest", "DetokenizeResponse"),
        "/props": {"get": {"summary": "llama-server's /props: defaults, slots, the chat template.", "security": [{"bearer": []}, {}],
                           "responses": {"200": {"description": "The properties.", "content": {"application/json": {"schema": ref("Props")}}},
                                         "401": ERRORS["401"], "503": ERRORS["503"]}}},
        "/health": {"get": {"summary": "loading (503), ok or busy (all slots in use).",
                            "responses": {"200": {"description": "Ready.", "content": {"application/json": {"schema": ref("Health")}}},
                                          "500": {"description": "The model failed to load.", "content": {"application/json": {"schema": ref("Health")}}},
                                          "503": {"description": "Loading.", "content": {"application/json": {"schema": ref("Health")}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics: requests, tokens, queue depth, tokens/s, KV cache use.",
                             "responses": {"200": {"description": "Text exposition format.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document.",
                                  "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    },
    "components": {"schemas": SCHEMAS,
                   "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "With --api-key."}}},
}


def to_31(node):
    """The definition above uses OpenAPI 3.0's spellings (nullable, boolean exclusiveMinimum);
    the document is 3.1 (JSON Schema 2020-12), for propertyNames."""
    if isinstance(node, list):
        return [to_31(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_31(v) for k, v in node.items()}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif "oneOf" in out:
            out["oneOf"] = out["oneOf"] + [{"type": "null"}]
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    return out


def outputs():
    doc = to_31(DOC)
    y = "# Generated by tools/gen_openapi.py: edit that file, not this one.\n" + yaml.safe_dump(doc, sort_keys=False, width=120)
    j = json.dumps(doc, separators=(",", ":"))
    swift = ("// Generated by tools/gen_openapi.py (with docs/openapi.yaml): edit that file, not this one.\n\n"
             "/// The OpenAPI document served at GET /openapi.json.\n"
             f"let openAPIDocument = ##\"{j}\"##\n")
    return {os.path.join(ROOT, "docs", "openapi.yaml"): y,
            os.path.join(ROOT, "Server", "Sources", "Phi4Server", "OpenAPI.swift"): swift}


if __name__ == "__main__":
    check = "--check" in sys.argv
    bad = 0
    for path, text in outputs().items():
        if check:
            if not os.path.exists(path) or open(path).read() != text:
                print(f"{os.path.relpath(path, ROOT)} differs from tools/gen_openapi.py's definition")
                bad = 1
        else:
            open(path, "w").write(text)
    sys.exit(bad)
