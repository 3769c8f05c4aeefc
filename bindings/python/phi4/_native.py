"""The raw ctypes layer: loads libphi4.so, checks its ABI version, and declares the C structs
and function signatures of include/phi4.h. Nothing else in the package touches ctypes
declarations; the structs' layouts are checked against the C compiler's in the test suite."""
from __future__ import annotations

import ctypes
import os
from typing import Any

#: The C ABI version (PHI4_ABI_VERSION of include/phi4.h) these declarations are written for.
ABI_VERSION = 2


def _load_library() -> ctypes.CDLL:
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("PHI4_LIBRARY", ""), os.path.join(here, "lib", "libphi4.so.1"),
                  os.path.join(here, "lib", "libphi4.so")]
    for path in candidates:
        if path and os.path.exists(path):
            return ctypes.CDLL(path)
    return ctypes.CDLL("libphi4.so.1")


lib = _load_library()


def _check_abi() -> None:
    try:
        found = lib.phi4_abi_version()
    except AttributeError:
        found = None
    if found != ABI_VERSION:
        path = getattr(lib, "_name", "libphi4")
        raise ImportError(f"{path} has C ABI version {found}, but this phi4 package is written for version "
                          f"{ABI_VERSION}: install the package and the library of the same release "
                          f"(or point PHI4_LIBRARY at a matching libphi4.so)")


lib.phi4_abi_version.restype = ctypes.c_int32
lib.phi4_abi_version.argtypes = []
_check_abi()

c_int32, c_size_t, c_float, c_uint64, c_char_p, c_void_p = (ctypes.c_int32, ctypes.c_size_t, ctypes.c_float,
                                                            ctypes.c_uint64, ctypes.c_char_p, ctypes.c_void_p)
P_int32 = ctypes.POINTER(c_int32)
P_size = ctypes.POINTER(c_size_t)


#: void (*progress)(void *user_data, int32_t done, int32_t total)
PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)


class ModelParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("weight_format", c_int32), ("check_memory", c_int32),
                ("progress", PROGRESS), ("progress_user_data", ctypes.c_void_p)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("vocab_size", c_int32), ("trained_context_length", c_int32),
                ("layer_count", c_int32), ("hidden_size", c_int32), ("head_count", c_int32),
                ("kv_head_count", c_int32), ("bos_token", c_int32), ("eos_token", c_int32), ("pad_token", c_int32),
                ("parameter_count", ctypes.c_int64), ("weight_bytes", ctypes.c_int64), ("adds_bos", c_int32)]


class ContextParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("n_ctx", c_int32), ("n_batch", c_int32), ("n_threads", c_int32),
                ("kv_type", c_int32)]


class SamplingParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("temperature", c_float), ("top_k", c_int32), ("top_p", c_float),
                ("min_p", c_float), ("repetition_penalty", c_float), ("presence_penalty", c_float),
                ("frequency_penalty", c_float), ("penalty_window", c_int32), ("use_seed", c_int32),
                ("seed", c_uint64), ("logit_bias_tokens", P_int32), ("logit_bias_values", ctypes.POINTER(c_float)),
                ("n_logit_bias", c_size_t), ("typical_p", c_float), ("mirostat", c_int32), ("mirostat_tau", c_float),
                ("mirostat_eta", c_float), ("penalize_prompt", c_int32)]


class GenerateParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("max_tokens", c_int32), ("sampling", ctypes.POINTER(SamplingParams)),
                ("stop_strings", ctypes.POINTER(c_char_p)), ("n_stop_strings", c_size_t), ("parse_special", c_int32),
                ("top_logprobs", c_int32), ("lookup", c_int32), ("constraint_type", c_int32),
                ("constraint", c_char_p), ("constraint_len", c_size_t)]


# enum phi4_constraint_type_code
CONSTRAINT_NONE, CONSTRAINT_GRAMMAR, CONSTRAINT_REGEX, CONSTRAINT_JSON_SCHEMA, CONSTRAINT_JSON_OBJECT = range(5)


class TokenLogprob(ctypes.Structure):
    _fields_ = [("token", c_int32), ("logprob", c_float)]


class BatchParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("n_slots", c_int32), ("n_ctx", c_int32), ("n_threads", c_int32),
                ("kv_type", c_int32), ("prefill_chunk", c_int32), ("max_queue", c_int32)]


class BatchUpdate(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("request", ctypes.c_int64), ("text", ctypes.c_void_p),
                ("text_len", c_size_t), ("token", c_int32), ("logprob", c_float), ("stop_reason", c_int32),
                ("n_generated", c_int32), ("n_prompt_evaluated", c_int32)]


class ChatMessage(ctypes.Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


#: Every struct the binding shares with C, by its C name (the layout test walks this).
STRUCTS = {"phi4_model_params": ModelParams, "phi4_model_info": ModelInfo, "phi4_context_params": ContextParams,
           "phi4_sampling_params": SamplingParams, "phi4_generate_params": GenerateParams,
           "phi4_token_logprob": TokenLogprob, "phi4_chat_message": ChatMessage, "phi4_batch_params": BatchParams,
           "phi4_batch_update": BatchUpdate}


def _sig(name: str, res: Any, *args: Any) -> None:
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = list(args)


_sig("phi4_version", c_char_p)
_sig("phi4_reasoning_system_prompt", c_char_p)
_sig("phi4_last_error", c_char_p)
_sig("phi4_model_params_init", c_int32, ctypes.POINTER(ModelParams), c_size_t)
_sig("phi4_model_load", c_int32, c_char_p, ctypes.POINTER(ModelParams), ctypes.POINTER(c_void_p))
_sig("phi4_model_free", None, c_void_p)
_sig("phi4_model_get_info", c_int32, c_void_p, ctypes.POINTER(ModelInfo))
_sig("phi4_model_eog_tokens", c_int32, c_void_p, P_int32, c_size_t, P_size)
_sig("phi4_model_tokenizer", c_void_p, c_void_p)
_sig("phi4_tokenizer_load", c_int32, c_char_p, ctypes.POINTER(c_void_p))
_sig("phi4_tokenizer_free", None, c_void_p)
_sig("phi4_tokenize", c_int32, c_void_p, c_char_p, c_size_t, c_int32, P_int32, c_size_t, P_size)
_sig("phi4_detokenize", c_int32, c_void_p, P_int32, c_size_t, ctypes.c_char_p, c_size_t, P_size)
_sig("phi4_token_lookup", c_int32, c_void_p, c_char_p, P_int32)
_sig("phi4_chat_template", c_int32, c_void_p, ctypes.POINTER(ChatMessage), c_size_t, c_int32, P_int32, c_size_t, P_size)
_sig("phi4_chat_template_fit", c_int32, c_void_p, ctypes.POINTER(ChatMessage), c_size_t, c_int32, c_size_t, P_int32,
     c_size_t, P_size, P_size)
_sig("phi4_context_params_init", c_int32, ctypes.POINTER(ContextParams), c_size_t)
_sig("phi4_context_create", c_int32, c_void_p, ctypes.POINTER(ContextParams), ctypes.POINTER(c_void_p))
_sig("phi4_context_free", None, c_void_p)
_sig("phi4_context_reset", c_int32, c_void_p)
_sig("phi4_context_truncate", c_int32, c_void_p, c_int32)
_sig("phi4_context_token_count", c_int32, c_void_p)
_sig("phi4_context_capacity", c_int32, c_void_p)
_sig("phi4_context_tokens", c_int32, c_void_p, P_int32, c_size_t, P_size)
_sig("phi4_eval", c_int32, c_void_p, P_int32, c_size_t, c_int32)
_sig("phi4_get_logits", c_int32, c_void_p, c_int32, ctypes.POINTER(c_float), c_size_t, P_size)
_sig("phi4_embed", c_int32, c_void_p, P_int32, P_size, c_size_t, c_int32, c_int32, ctypes.POINTER(c_float), c_size_t,
     P_size)
_sig("phi4_sampler_create", c_int32, ctypes.POINTER(SamplingParams), ctypes.POINTER(c_void_p))
_sig("phi4_sampler_free", None, c_void_p)
_sig("phi4_sample_logits", c_int32, c_void_p, ctypes.POINTER(c_float), c_size_t, P_int32, c_size_t, P_int32)
_sig("phi4_constraint_match", c_int32, c_int32, ctypes.c_char_p, c_size_t, ctypes.c_char_p, c_size_t, P_int32)
_sig("phi4_sampling_params_init", c_int32, ctypes.POINTER(SamplingParams), c_size_t)
_sig("phi4_generate_params_init", c_int32, ctypes.POINTER(GenerateParams), c_size_t)
_sig("phi4_generation_start", c_int32, c_void_p, P_int32, c_size_t, ctypes.POINTER(GenerateParams))
_sig("phi4_generation_next", c_int32, c_void_p, ctypes.c_char_p, c_size_t, P_size, P_int32, P_int32)
_sig("phi4_generation_finish", c_int32, c_void_p)
_sig("phi4_cancel", c_int32, c_void_p)
_sig("phi4_generation_token_count", c_int32, c_void_p)
_sig("phi4_generation_lookup_counts", c_int32, c_void_p, P_int32, P_int32)
_sig("phi4_context_save_state", c_int32, c_void_p, c_void_p, c_size_t, P_size)
_sig("phi4_context_load_state", c_int32, c_void_p, c_void_p, c_size_t)
_sig("phi4_context_save_file", c_int32, c_void_p, c_char_p)
_sig("phi4_context_load_file", c_int32, c_void_p, c_char_p)
_sig("phi4_context_reuse_prefix", c_int32, c_void_p, P_int32, c_size_t, P_size)
_sig("phi4_generation_logprob", c_int32, c_void_p, c_size_t, ctypes.POINTER(TokenLogprob), ctypes.POINTER(TokenLogprob),
     c_size_t, P_size)
_sig("phi4_batch_params_init", c_int32, ctypes.POINTER(BatchParams), c_size_t)
_sig("phi4_batch_create", c_int32, c_void_p, ctypes.POINTER(BatchParams), ctypes.POINTER(c_void_p))
_sig("phi4_batch_free", None, c_void_p)
_sig("phi4_batch_submit", c_int32, c_void_p, P_int32, c_size_t, ctypes.POINTER(GenerateParams),
     ctypes.POINTER(ctypes.c_int64))
_sig("phi4_batch_cancel", c_int32, c_void_p, ctypes.c_int64)
_sig("phi4_batch_counts", c_int32, c_void_p, P_int32, P_int32)
_sig("phi4_batch_step", c_int32, c_void_p, P_size)
_sig("phi4_batch_get_update", c_int32, c_void_p, c_size_t, ctypes.POINTER(BatchUpdate))
_sig("phi4_batch_get_top_logprobs", c_int32, c_void_p, c_size_t, ctypes.POINTER(TokenLogprob), c_size_t, P_size)
_sig("phi4_openai_start", c_int32, c_void_p, c_int32, c_char_p, c_size_t)
_sig("phi4_openai_next", c_int32, c_void_p, ctypes.c_char_p, c_size_t, P_size)
_sig("phi4_token_to_piece", c_int32, c_void_p, c_int32, ctypes.c_char_p, c_size_t, P_size)

# enum phi4_status_code
OK, INVALID_ARGUMENT, INVALID_HANDLE, IO, INVALID_MODEL, UNSUPPORTED, OUT_OF_MEMORY, BUFFER_TOO_SMALL, CONTEXT_FULL, \
    CANCELLED, BUSY, INTERNAL = range(12)
# enum phi4_stop_reason_code, as OpenAI's finish_reason
STOP_NAMES = {1: "stop", 2: "stop", 3: "length", 4: "length", 5: "cancelled"}
# enum phi4_weight_format and enum phi4_kv_type, by the names the Python API takes
WEIGHTS = {None: 0, "f32": 0, "q8_0": 1, "q4_0": 2, "q4_0-mixed": 3, "q4_k_m": 4}
KV_TYPES = {None: 0, "f32": 1, "f16": 2, "q8_0": 3}
# enum phi4_pooling_code, by the names the Python API takes (llama.cpp's numbers)
POOLING = {"none": 0, "mean": 1, "cls": 2, "first": 2, "last": 3}

_INIT = {ModelParams: lib.phi4_model_params_init, ContextParams: lib.phi4_context_params_init,
         SamplingParams: lib.phi4_sampling_params_init, GenerateParams: lib.phi4_generate_params_init,
         BatchParams: lib.phi4_batch_params_init}


def defaults(cls: type) -> Any:
    """A params struct holding the library's defaults: the one place Python's defaults come from."""
    p = cls()
    status = _INIT[cls](ctypes.byref(p), ctypes.sizeof(cls))
    if status != OK:  # only a wrong declaration above could cause this
        raise RuntimeError(f"{cls.__name__}: init failed with status {status}")
    return p
