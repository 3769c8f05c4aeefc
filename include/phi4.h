/*
 * phi4.h — the C ABI of libphi4, an inference engine for Microsoft's Phi-4 on CPUs.
 *
 * This is the one public header. Build and install with `make lib` / `make install`, then
 * compile with `cc app.c $(pkg-config --cflags --libs phi4)` (or `-I include -L lib -lphi4`).
 *
 * Conventions
 * - Every fallible function returns a phi4_status (PHI4_OK == 0). On failure a message for the
 *   calling thread is available from phi4_last_error() until that thread's next failing call.
 * - No input can crash the process: NULL pointers, freed or foreign handles (detected through a
 *   registry of live handles), invalid UTF-8, out-of-range token ids, too-long prompts and
 *   malformed or truncated model files all return an error status. A failed call leaves the
 *   objects it was given as they were.
 * - Buffers are owned by the caller and passed with their capacity. When a buffer is too small
 *   the call returns PHI4_ERR_BUFFER_TOO_SMALL and reports the size it needs; call again.
 * - Params structs begin with `struct_size` and are filled by the library through the caller's
 *   size: declare one, call its init function with `sizeof` of it, then change fields, e.g.
 *       phi4_generate_params gp;
 *       phi4_generate_params_init(&gp, sizeof gp);
 *       gp.max_tokens = 64;
 *   Later versions only append fields. A program compiled against an older header passes its
 *   smaller size: the library fills and reads only those bytes and uses defaults for the rest. A
 *   program compiled against a newer header works with an older library as long as it leaves the
 *   fields this library does not know at their defaults (all zero bytes); otherwise the call
 *   fails with PHI4_ERR_UNSUPPORTED naming both sizes. Copy params with `=` or memcpy, never
 *   field by field into an uninitialised struct.
 * - Threads: a phi4_model (and a phi4_tokenizer) is immutable and may be used from any number of
 *   threads at once. A phi4_context belongs to one thread at a time; a second thread calling
 *   into a busy context gets PHI4_ERR_BUSY. phi4_cancel() may be called from any thread.
 * - The library writes nothing to stdout or stderr and installs no signal handlers; messages go
 *   to the callback set with phi4_set_log_callback(), if any.
 */
#ifndef PHI4_H
#define PHI4_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions ------------------------------------------------------------------------------ */

#define PHI4_VERSION_MAJOR 0
#define PHI4_VERSION_MINOR 7
#define PHI4_VERSION_PATCH 0
/* Incremented when a change breaks binaries compiled against an older header (the SONAME is
 * libphi4.so.<PHI4_ABI_VERSION - 1>). Version 2 replaced the by-value *_default_params()
 * functions with the size-aware *_params_init() functions. */
#define PHI4_ABI_VERSION 2

/* The library's version as "MAJOR.MINOR.PATCH" (static storage; never NULL). */
const char *phi4_version(void);

/* The ABI version of the loaded library; compare with PHI4_ABI_VERSION. */
int32_t phi4_abi_version(void);

/* ---- Status codes and errors --------------------------------------------------------------- */

/* Every fallible function returns one of enum phi4_status_code as a 32-bit integer. */
typedef int32_t phi4_status;
enum phi4_status_code {
    PHI4_OK = 0,
    PHI4_ERR_INVALID_ARGUMENT = 1,  /* NULL pointer, bad value, invalid UTF-8, bad token id */
    PHI4_ERR_INVALID_HANDLE = 2,    /* not a live handle of this library (freed, foreign) */
    PHI4_ERR_IO = 3,                /* a file could not be read */
    PHI4_ERR_INVALID_MODEL = 4,     /* malformed config, tokenizer or weights file */
    PHI4_ERR_UNSUPPORTED = 5,       /* a model feature libphi4 does not implement */
    PHI4_ERR_OUT_OF_MEMORY = 6,     /* the model or context would not fit in memory */
    PHI4_ERR_BUFFER_TOO_SMALL = 7,  /* the needed size was reported; call again */
    PHI4_ERR_CONTEXT_FULL = 8,      /* the tokens do not fit in the context's n_ctx */
    PHI4_ERR_CANCELLED = 9,         /* phi4_cancel() stopped the call */
    PHI4_ERR_BUSY = 10,             /* another thread is using this context */
    PHI4_ERR_INTERNAL = 11          /* a bug: please report the message */
};

/* The calling thread's last error message ("" if none). Valid until the thread's next failing
 * call into the library; never NULL; do not free. */
const char *phi4_last_error(void);

/* Phi-4-reasoning's system prompt (the system text of its published chat template), for a
 * conversation's first message; constant, never NULL, do not free. */
const char *phi4_reasoning_system_prompt(void);

/* A short constant name for a status ("PHI4_OK", …; "unknown status" for other values). */
const char *phi4_status_name(phi4_status status);

/* ---- Logging and threads ------------------------------------------------------------------- */

/* The `level` of a log message. */
enum phi4_log_level { PHI4_LOG_ERROR = 0, PHI4_LOG_WARN = 1, PHI4_LOG_INFO = 2, PHI4_LOG_DEBUG = 3 };

/* Receives a NUL-terminated message; may be called from any thread using the library. */
typedef void (*phi4_log_callback)(int32_t level, const char *message, void *user_data);

/* Sets (or with NULL removes) the process-wide log callback. Thread-safe. */
void phi4_set_log_callback(phi4_log_callback callback, void *user_data);

/* The number of threads used by default: the CPUs in this process's affinity mask, capped by
 * the cgroup CPU quota. */
int32_t phi4_default_thread_count(void);

/* ---- Handles ------------------------------------------------------------------------------- */

typedef struct phi4_model phi4_model;         /* weights + tokenizer; immutable, shareable */
typedef struct phi4_tokenizer phi4_tokenizer; /* a tokenizer; immutable, shareable */
typedef struct phi4_context phi4_context;     /* one conversation's KV cache; one thread at a time */
typedef struct phi4_sampler phi4_sampler;     /* sampling parameters plus random state */

/* ---- Models -------------------------------------------------------------------------------- */

/* Run-time weight types: an HF checkpoint, and the float (F32/F16/BF16) tensors of a GGUF file,
   are quantized at load to the chosen type; tensors a GGUF file already stores quantized are
   used as they are. */
enum phi4_weight_format {
    PHI4_WEIGHTS_F32 = 0,        /* full precision */
    PHI4_WEIGHTS_Q8_0 = 1,       /* int8, blocks of 32 (8.5 bits per weight) */
    PHI4_WEIGHTS_Q4_0 = 2,       /* int4, blocks of 32 (4.5 bits per weight) */
    PHI4_WEIGHTS_Q4_0_MIXED = 3, /* int4, with down_proj and lm_head in int8 */
    PHI4_WEIGHTS_Q4_K_M = 4      /* llama.cpp's Q4_K_M mix: Q4_K, lm_head and half the layers'
                                    qkv_proj / down_proj in Q6_K (about 4.9 bits per weight) */
};

typedef struct {
    size_t struct_size;    /* the caller's sizeof(phi4_model_params); set by phi4_model_params_init() */
    int32_t weight_format; /* enum phi4_weight_format (default PHI4_WEIGHTS_F32) */
    int32_t check_memory;  /* nonzero: refuse to load a model that would not fit (default 1) */
    /* Since 0.7: load progress. Called on the loading thread after each weight matrix that is
     * converted at load (an HF checkpoint's, a GGUF file's F16 / BF16 / F32 ones quantized or
     * widened: minutes for a full-size model) with the matrices done and in all; weights used in
     * place from the file are not reported. NULL: none (default). */
    void (*progress)(void *user_data, int32_t done, int32_t total);
    void *progress_user_data;
} phi4_model_params;

/* Sets params->struct_size to `size` (pass sizeof of the caller's struct) and every field that
 * lies within `size` bytes to its default; bytes past this library's struct are zeroed.
 * PHI4_ERR_INVALID_ARGUMENT for NULL or a size below sizeof(size_t) or above 65536. */
phi4_status phi4_model_params_init(phi4_model_params *params, size_t size);

/* Loads a model from an HF Phi-4 directory (config.json, safetensors, tokenizer files) or a
 * GGUF file ("*.gguf", architecture phi3, as llama.cpp's converter writes it: F32, F16, BF16,
 * Q8_0, Q4_0 and Q6_K tensors). params may be NULL (defaults); weight_format applies to the
 * full-precision tensors of the file. On success *out_model is a new handle to free with
 * phi4_model_free(); on failure *out_model is set to NULL. */
phi4_status phi4_model_load(const char *path, const phi4_model_params *params, phi4_model **out_model);

/* Releases the caller's handle. Contexts created from the model keep it alive until they are
 * freed. NULL is ignored; an invalid handle is ignored (and reported by phi4_last_error()). */
void phi4_model_free(phi4_model *model);

typedef struct {
    size_t struct_size;            /* set by the caller to sizeof(phi4_model_info) */
    int32_t vocab_size;            /* rows of the embedding / logits width */
    int32_t trained_context_length; /* the positions the model was trained for (max_position_embeddings) */
    int32_t layer_count;
    int32_t hidden_size;
    int32_t head_count;
    int32_t kv_head_count;
    int32_t bos_token;             /* -1 when the files name none */
    int32_t eos_token;             /* the primary end-of-sequence id, -1 when none */
    int32_t pad_token;             /* -1 when none */
    int64_t parameter_count;
    int64_t weight_bytes;          /* memory the weights occupy */
    int32_t adds_bos;              /* since 0.7: nonzero when the tokenizer's files ask for bos_token at the
                                      start of every prompt (Phi-4's do not) */
} phi4_model_info;

/* Fills *info: info->struct_size must be set to the caller's sizeof(phi4_model_info); fields beyond
 * it are not written, and bytes past this library's struct are zeroed. */
phi4_status phi4_model_get_info(const phi4_model *model, phi4_model_info *info);

/* Writes the ids that end generation (the files' eos ids, <|im_end|>, <|endoftext|>) in
 * ascending order; *n_ids receives the count (also when the buffer is too small). */
phi4_status phi4_model_eog_tokens(const phi4_model *model, int32_t *ids, size_t capacity, size_t *n_ids);

/* The model's tokenizer: a borrowed handle, valid while the model handle (or a context of the
 * model) is alive. Do not free it. NULL on an invalid model. */
const phi4_tokenizer *phi4_model_tokenizer(const phi4_model *model);

/* ---- Tokenizers ---------------------------------------------------------------------------- */

/* Loads only the tokenizer from a model directory, a tokenizer.json or a .tiktoken file (no
 * weights are mapped). Free with phi4_tokenizer_free(). */
phi4_status phi4_tokenizer_load(const char *path, phi4_tokenizer **out_tokenizer);

/* Frees a tokenizer from phi4_tokenizer_load(). NULL is ignored; borrowed handles from
 * phi4_model_tokenizer() are not freed. */
void phi4_tokenizer_free(phi4_tokenizer *tokenizer);

/* Encodes `text_len` bytes of UTF-8 into ids. With parse_special nonzero, special-token text
 * such as "<|im_end|>" becomes its id; otherwise it is ordinary text (use 0 for untrusted
 * text). *n_tokens receives the number of ids (the needed capacity when the buffer is too
 * small). Invalid UTF-8 gives PHI4_ERR_INVALID_ARGUMENT. */
phi4_status phi4_tokenize(const phi4_tokenizer *tokenizer, const char *text, size_t text_len,
                          int32_t parse_special, int32_t *tokens, size_t capacity, size_t *n_tokens);

/* Decodes ids into UTF-8 text (a character cut at the end becomes U+FFFD; special tokens are
 * written as their text). Writes at most `capacity` bytes and a terminating NUL when there is
 * room; *n_bytes receives the text's length without the NUL (the needed size is *n_bytes + 1). */
phi4_status phi4_detokenize(const phi4_tokenizer *tokenizer, const int32_t *tokens, size_t n_tokens,
                            char *text, size_t capacity, size_t *n_bytes);

/* The raw bytes of one token (possibly part of a UTF-8 character; no NUL is added). */
phi4_status phi4_token_to_piece(const phi4_tokenizer *tokenizer, int32_t token, char *bytes, size_t capacity,
                                size_t *n_bytes);

/* The id of a special token given its text (e.g. "<|im_end|>"). */
phi4_status phi4_token_lookup(const phi4_tokenizer *tokenizer, const char *special_text, int32_t *token);

/* One chat message: NUL-terminated UTF-8 role ("system", "user", "assistant") and content. */
typedef struct {
    const char *role;
    const char *content;
} phi4_chat_message;

/* Phi-4's chat prompt as ids: <|im_start|>role<|im_sep|>content<|im_end|>… and, with
 * add_generation_prompt, <|im_start|>assistant<|im_sep|> (Phi-4-mini's vocabulary:
 * <|role|>content<|end|>… <|assistant|>). Contents are encoded with special tokens as plain text
 * (no prompt injection). A Phi-4-reasoning vocabulary (one with a <think> token) puts
 * phi4_reasoning_system_prompt() first when the messages do not begin with a system message, as
 * the model's own template does. *n_tokens as for phi4_tokenize(). */
phi4_status phi4_chat_template(const phi4_tokenizer *tokenizer, const phi4_chat_message *messages, size_t n_messages,
                               int32_t add_generation_prompt, int32_t *tokens, size_t capacity, size_t *n_tokens);

/* phi4_chat_template for a conversation that may have outgrown the context (the documented
 * long-chat policy): a leading system message is always kept; the oldest other messages are
 * dropped — a user message together with the assistant reply after it — until the prompt has at
 * most `budget` tokens (e.g. n_ctx minus the tokens to generate). *n_dropped receives how many
 * messages were dropped: the first ones after the system message. PHI4_ERR_INVALID_ARGUMENT when
 * even the system message and the last message do not fit. */
phi4_status phi4_chat_template_fit(const phi4_tokenizer *tokenizer, const phi4_chat_message *messages,
                                   size_t n_messages, int32_t add_generation_prompt, size_t budget, int32_t *tokens,
                                   size_t capacity, size_t *n_tokens, size_t *n_dropped);

/* ---- Contexts ------------------------------------------------------------------------------ */

/* KV cache element types. */
enum phi4_kv_type {
    PHI4_KV_DEFAULT = 0, /* f16 for quantized weights, f32 for f32 weights */
    PHI4_KV_F32 = 1,
    PHI4_KV_F16 = 2,
    PHI4_KV_Q8_0 = 3     /* int8 blocks of 32 with an fp16 scale: about half of f16 (head dim a multiple of 32) */
};

typedef struct {
    size_t struct_size; /* the caller's sizeof(phi4_context_params); set by phi4_context_params_init() */
    int32_t n_ctx;      /* positions the KV cache holds (its capacity); 0: min(the model's trained
                           context length, 4096) */
    int32_t n_batch;    /* most tokens per forward chunk (default 512) */
    int32_t n_threads;  /* threads per step; 0: phi4_default_thread_count() */
    int32_t kv_type;    /* enum phi4_kv_type (default PHI4_KV_DEFAULT) */
} phi4_context_params;

/* Initialises context params through the caller's size, as phi4_model_params_init() does. */
phi4_status phi4_context_params_init(phi4_context_params *params, size_t size);

/* Creates a context (a KV cache of n_ctx positions) on a model. params may be NULL. */
phi4_status phi4_context_create(phi4_model *model, const phi4_context_params *params, phi4_context **out_context);

/* Frees a context. NULL and invalid handles are ignored. Must not race with calls on it. */
void phi4_context_free(phi4_context *context);

/* Forgets every token of the context. */
phi4_status phi4_context_reset(phi4_context *context);

/* Keeps the first n tokens (n is clamped to 0…length) and forgets the rest. */
phi4_status phi4_context_truncate(phi4_context *context, int32_t n);

/* The number of tokens in the context (positions used), or -1 for an invalid handle. */
int32_t phi4_context_token_count(const phi4_context *context);

/* Since 0.7. The context's tokens, in order (capacity ids; *n_tokens receives the count, the needed
 * capacity when the buffer is too small). */
phi4_status phi4_context_tokens(const phi4_context *context, int32_t *tokens, size_t capacity, size_t *n_tokens);

/* The context's capacity (n_ctx: positions its KV cache holds), or -1 for an invalid handle. */
int32_t phi4_context_capacity(const phi4_context *context);

/* Saves the context's state — its tokens and KV cache, with a versioned header naming the model
 * (a fingerprint of its files' tensor table and configuration) and a checksum — into `buffer`.
 * *size receives the state's size (also with PHI4_ERR_BUFFER_TOO_SMALL; buffer may be NULL with
 * capacity 0 to ask). */
phi4_status phi4_context_save_state(phi4_context *context, void *buffer, size_t capacity, size_t *size);

/* Restores a state from phi4_context_save_state into a context of the same model (it may be
 * another context, in another process). Afterwards generation continues exactly as it would have
 * in the saved context (pass the next tokens to phi4_eval or phi4_generate). A state of another
 * model, a corrupted or truncated one, or one longer than this context is
 * PHI4_ERR_INVALID_ARGUMENT and leaves the context unchanged. */
phi4_status phi4_context_load_state(phi4_context *context, const void *buffer, size_t size);

/* The same through a file (written to a temporary name and renamed into place). */
phi4_status phi4_context_save_file(phi4_context *context, const char *path);
phi4_status phi4_context_load_file(phi4_context *context, const char *path);

/* Prefix reuse: keeps the longest prefix of the context that `prompt` starts with (leaving at
 * least one token of it to evaluate) and forgets the rest; *n_kept receives how many tokens of
 * `prompt` are already in the context. Evaluate or generate with prompt + *n_kept next: the result
 * equals evaluating the whole prompt in an empty context, without recomputing the shared part. */
phi4_status phi4_context_reuse_prefix(phi4_context *context, const int32_t *prompt, size_t n_prompt, size_t *n_kept);

/* Appends tokens to the context and computes logits: of the last position, or of every
 * position of this call with all_logits nonzero. More tokens than fit give
 * PHI4_ERR_CONTEXT_FULL and change nothing (the policy for a prompt longer than the context:
 * an error, never silent truncation). phi4_cancel() from another thread stops it within one
 * layer's work: PHI4_ERR_CANCELLED, the chunks of n_batch tokens finished so far stay in the
 * context (phi4_context_token_count() says how many) and no logits are available until the next
 * phi4_eval(). */
phi4_status phi4_eval(phi4_context *context, const int32_t *tokens, size_t n_tokens, int32_t all_logits);

/* Copies the logits of row `row` of the last phi4_eval() (0-based; -1: the last row) into
 * `logits` (capacity floats; needs vocab_size). *n_rows, if not NULL, receives the number of
 * rows available. */
phi4_status phi4_get_logits(const phi4_context *context, int32_t row, float *logits, size_t capacity, size_t *n_rows);

/* ---- Embeddings ---------------------------------------------------------------------------- */

/* How an input's token vectors become its embedding: one of enum phi4_pooling_code (llama.cpp's
 * llama_pooling_type numbers). */
typedef int32_t phi4_pooling;
enum phi4_pooling_code {
    PHI4_POOLING_NONE = 0,   /* one vector per token */
    PHI4_POOLING_MEAN = 1,   /* the mean over the input's tokens */
    PHI4_POOLING_FIRST = 2,  /* the first token's vector (llama.cpp's "cls") */
    PHI4_POOLING_LAST = 3    /* the last token's vector */
};

/* Since 0.7. Embeddings of n_inputs token sequences given one after another in `tokens` (input i
 * has lengths[i] ids; none may be empty or longer than the trained context). A token's vector is
 * the final RMS norm's output (hidden_size floats: what the output layer turns into logits).
 * Inputs are evaluated together in passes of up to the context's n_batch tokens, each input
 * attending only to itself; the context's own tokens, KV cache and generation are not touched
 * (it lends its threads, batch size and phi4_cancel()). `normalize` nonzero divides every vector
 * by its L2 norm. `out` receives, input after input, hidden_size floats per input (pooled) or per
 * token (PHI4_POOLING_NONE); *n_out the number of floats. A buffer too small gives
 * PHI4_ERR_BUFFER_TOO_SMALL with *n_out the size needed, before anything is evaluated. */
phi4_status phi4_embed(phi4_context *context, const int32_t *tokens, const size_t *lengths, size_t n_inputs,
                       phi4_pooling pooling, int32_t normalize, float *out, size_t capacity, size_t *n_out);

/* ---- Sampling ------------------------------------------------------------------------------ */

typedef struct {
    size_t struct_size;        /* the caller's sizeof(phi4_sampling_params); set by phi4_sampling_params_init() */
    float temperature;         /* 0: greedy (default 0.8) */
    int32_t top_k;             /* 0: off (default 40) */
    float top_p;               /* 1: off (default 0.95) */
    float min_p;               /* 0: off (default 0.05) */
    float repetition_penalty;  /* 1: off */
    float presence_penalty;    /* 0: off */
    float frequency_penalty;   /* 0: off */
    int32_t penalty_window;    /* last N tokens the penalties see; -1: all (default 64) */
    int32_t use_seed;          /* nonzero: seed below; 0: a random seed */
    uint64_t seed;
    const int32_t *logit_bias_tokens; /* n_logit_bias ids … */
    const float *logit_bias_values;   /* … and the values added to their logits (-INFINITY bans) */
    size_t n_logit_bias;
    /* Since 0.7 (llama.cpp's formulas; the order: top-k, temperature, typical, top-p, min-p, or
     * with mirostat: temperature, then Mirostat in place of top-k/typical/top-p/min-p). */
    float typical_p;           /* locally typical sampling: keep the tokens whose surprise is nearest
                                  the entropy until their probability exceeds typical_p (1: off, default) */
    int32_t mirostat;          /* 0: off (default); 1: Mirostat (k from the 100 most likely tokens);
                                  2: Mirostat 2.0 */
    float mirostat_tau;        /* target surprise in bits (default 5) */
    float mirostat_eta;        /* learning rate (default 0.1) */
    int32_t penalize_prompt;   /* nonzero (default): the penalties' window reaches into the prompt (llama-server,
                                  HF); 0: only the generated tokens (llama-cpp-python) */
} phi4_sampling_params;

/* Initialises sampling params through the caller's size, as phi4_model_params_init() does. */
phi4_status phi4_sampling_params_init(phi4_sampling_params *params, size_t size);

/* Creates a sampler (parameters are copied). Free with phi4_sampler_free(). */
phi4_status phi4_sampler_create(const phi4_sampling_params *params, phi4_sampler **out_sampler);

/* Frees a sampler. NULL and invalid handles are ignored. */
void phi4_sampler_free(phi4_sampler *sampler);

/* Picks a token from the context's last logits (penalties look at the context's tokens; ids that no
 * token has, such as the rows past Phi-4-mini's vocabulary, are never picked). The
 * token is not added to the context: pass it to phi4_eval(). */
phi4_status phi4_sample(phi4_context *context, phi4_sampler *sampler, int32_t *token);

/* Since 0.7. Picks a token from caller-given logits (n_logits floats, e.g. the context's logits after
 * the caller's own changes; no NaN or +infinity, -INFINITY bans a token), the penalties looking at the n_history ids of `history`. The
 * sampler's state (its random generator, Mirostat's target) moves on as with phi4_sample(). */
phi4_status phi4_sample_logits(phi4_sampler *sampler, const float *logits, size_t n_logits, const int32_t *history,
                               size_t n_history, int32_t *token);

/* ---- Generation ---------------------------------------------------------------------------- */

/* Why a generation stopped: one of enum phi4_stop_reason_code as a 32-bit integer. */
typedef int32_t phi4_stop_reason;
enum phi4_stop_reason_code {
    PHI4_STOP_NONE = 0,         /* not stopped (still generating) */
    PHI4_STOP_EOS = 1,          /* an end-of-generation token (not emitted) */
    PHI4_STOP_STRING = 2,       /* a stop string (not emitted) */
    PHI4_STOP_MAX_TOKENS = 3,
    PHI4_STOP_CONTEXT_FULL = 4,
    PHI4_STOP_CANCELLED = 5     /* phi4_cancel() or the callback returned 0 */
};

/* What a generation's output is constrained to: one of enum phi4_constraint_type_code. */
enum phi4_constraint_type_code {
    PHI4_CONSTRAINT_NONE = 0,           /* free text */
    PHI4_CONSTRAINT_GRAMMAR = 1,        /* a grammar in llama.cpp's GBNF syntax (start rule `root`) */
    PHI4_CONSTRAINT_REGEX = 2,          /* a regular expression the whole output matches (an ECMA subset:
                                           Sources/Phi4/Constraints/Regex.swift) */
    PHI4_CONSTRAINT_JSON_SCHEMA = 3,    /* a JSON Schema (its JSON text) the output is a valid instance of */
    PHI4_CONSTRAINT_JSON_OBJECT = 4     /* any JSON object (no text needed) */
};

typedef struct {
    size_t struct_size;                 /* the caller's sizeof(phi4_generate_params); set by
                                           phi4_generate_params_init() */
    int32_t max_tokens;                 /* default 256 */
    const phi4_sampling_params *sampling; /* NULL: the defaults of phi4_sampling_params_init() (default
                                           NULL); read during the call only */
    const char *const *stop_strings;    /* n_stop_strings NUL-terminated UTF-8 strings */
    size_t n_stop_strings;
    int32_t parse_special;              /* phi4_generate_text(): recognise special tokens (default 0) */
    int32_t top_logprobs;               /* -1: no log-probabilities (default); 0…20: record each generated
                                           token's log-prob and this many alternatives (see
                                           phi4_generation_logprob) */
    int32_t lookup;                     /* prompt-lookup decoding: propose up to this many tokens (≤ 7) by
                                           continuing the last 2–5 tokens' earlier occurrence in the
                                           context, verified in one batched pass; fewer or none while
                                           such drafts are seldom accepted, so text that does not
                                           repeat its context is not slowed down; greedy output is
                                           the same, sampled output keeps its distribution
                                           (default 0: off) */
    /* Since 0.6: constrained output. Before each token, the tokens that cannot continue a match
     * are removed (also those after which no match could finish within max_tokens); the
     * end-of-generation token is allowed only once the output is a complete match, and
     * generation ends when a complete match cannot go on. A constraint that does not compile, or
     * whose shortest match cannot fit max_tokens, makes the call fail with
     * PHI4_ERR_INVALID_ARGUMENT before anything is evaluated. Log-probabilities (top_logprobs)
     * are those of the constrained distribution. With lookup, drafts the constraint forbids are
     * not proposed. */
    int32_t constraint_type;            /* enum phi4_constraint_type_code (default PHI4_CONSTRAINT_NONE) */
    const char *constraint;             /* the grammar, regex or schema: constraint_len bytes of UTF-8 (a NUL is
                                           not needed); read during the call only (default NULL) */
    size_t constraint_len;
} phi4_generate_params;

/* Initialises generation params through the caller's size, as phi4_model_params_init() does. */
phi4_status phi4_generate_params_init(phi4_generate_params *params, size_t size);

/* Compiles a constraint (`type` an enum phi4_constraint_type_code; `text` of `len` bytes, may be
 * NULL for PHI4_CONSTRAINT_JSON_OBJECT) for `model`'s vocabulary without generating: PHI4_OK,
 * or PHI4_ERR_INVALID_ARGUMENT with a message naming what is wrong (an unsupported JSON Schema
 * keyword, a GBNF syntax error with its line). The compiled form is cached, so a generation with
 * the same constraint starts at once. */
phi4_status phi4_constraint_check(const phi4_model *model, int32_t type, const char *text, size_t len);

/* Whether `text` (`text_len` bytes of UTF-8; may be NULL when 0) is a complete match of a
 * constraint (`type` an enum phi4_constraint_type_code; `constraint` of `len` bytes, may be NULL
 * for PHI4_CONSTRAINT_JSON_OBJECT and PHI4_CONSTRAINT_NONE): *matches = 1 or 0. The same
 * compiled grammar that masks generation answers, over bytes, so no model is needed; with
 * PHI4_CONSTRAINT_NONE every text matches. A constraint that does not compile, text that is not
 * UTF-8 or a NULL `matches` is PHI4_ERR_INVALID_ARGUMENT with a message, *matches untouched. */
phi4_status phi4_constraint_match(int32_t type, const char *constraint, size_t len, const char *text, size_t text_len,
                                  int32_t *matches);

/* Receives each piece of generated text: `len` bytes of complete UTF-8 characters (not
 * NUL-terminated; text that might start a stop string is held back until resolved) and the
 * token that completed it. Return nonzero to continue, 0 to stop (PHI4_STOP_CANCELLED). */
typedef int32_t (*phi4_piece_callback)(const char *piece, size_t len, int32_t token, void *user_data);

/* Evaluates `prompt` (ids appended to the context) and generates, calling `callback` (may be
 * NULL) for each piece. *stop_reason (may be NULL) says why it stopped. The generated tokens
 * stay in the context, so a conversation continues with the next call. The prompt needs at
 * least one id (an empty prompt is PHI4_ERR_INVALID_ARGUMENT); max_tokens 0 only evaluates the
 * prompt (stop reason PHI4_STOP_MAX_TOKENS). Cancelled during the prompt's evaluation, it
 * returns PHI4_OK with PHI4_STOP_CANCELLED, the prompt's finished chunks staying in the context. */
phi4_status phi4_generate(phi4_context *context, const int32_t *prompt, size_t n_prompt,
                          const phi4_generate_params *params, phi4_piece_callback callback, void *user_data,
                          phi4_stop_reason *stop_reason);

/* phi4_generate() with a UTF-8 prompt text, encoded as params->parse_special says. */
phi4_status phi4_generate_text(phi4_context *context, const char *prompt, const phi4_generate_params *params,
                               phi4_piece_callback callback, void *user_data, phi4_stop_reason *stop_reason);

/* Pull-style generation, for bindings that iterate: start, call next until it reports a stop
 * reason, then (optionally) finish. */
phi4_status phi4_generation_start(phi4_context *context, const int32_t *prompt, size_t n_prompt,
                                  const phi4_generate_params *params);

/* Produces the next piece: writes up to `capacity` bytes to `piece` (no NUL), *len its length,
 * *token the token that completed it (-1 for none). When generation has ended, *len is 0 and
 * *stop_reason is set (PHI4_STOP_NONE while it goes on). If the buffer is too small the piece is
 * kept, *len is the needed size, and PHI4_ERR_BUFFER_TOO_SMALL is returned. */
phi4_status phi4_generation_next(phi4_context *context, char *piece, size_t capacity, size_t *len, int32_t *token,
                                 phi4_stop_reason *stop_reason);

/* Ends a pull-style generation early (or after it stopped). Safe to call when none is active. */
phi4_status phi4_generation_finish(phi4_context *context);

/* A token and its natural-log probability. */
typedef struct {
    int32_t token;
    float logprob;
} phi4_token_logprob;

/* The number of tokens produced so far by the current or last generation on `context` (by
 * phi4_generate*, or phi4_generation_start/next), or -1 for an invalid handle. */
int32_t phi4_generation_token_count(const phi4_context *context);

/* Prompt lookup's counts for the current or last generation on `context` (params.lookup > 0):
 * *proposed receives the draft tokens proposed, *accepted those the model confirmed (each one a
 * token that needed no pass over the weights of its own); both 0 without lookup.
 * PHI4_ERR_INVALID_ARGUMENT when a pointer is NULL or the handle is invalid. */
phi4_status phi4_generation_lookup_counts(const phi4_context *context, int32_t *proposed, int32_t *accepted);

/* Log-probabilities of token `index` (0-based) of the current or last generation, recorded when
 * its params had top_logprobs ≥ 0: *out receives the token and its log-probability under the model
 * (log-softmax of the raw logits: before temperature, penalties and truncation); `top` receives
 * up to `capacity` of the most likely tokens at that position, most likely first, and *n_top
 * (may be NULL) their number (capacity 0 and top NULL: none). PHI4_ERR_INVALID_ARGUMENT when
 * the index is out of range or nothing was recorded. */
phi4_status phi4_generation_logprob(const phi4_context *context, size_t index, phi4_token_logprob *out,
                                    phi4_token_logprob *top, size_t capacity, size_t *n_top);

/* Asks the generation or evaluation running on `context` to stop soon. Safe from any thread
 * (also from a signal-free watchdog thread) while another thread uses the context. */
phi4_status phi4_cancel(phi4_context *context);

/* ---- Batches: many generations at once ---------------------------------------------------- */

/* A batch serves many generations from one model (continuous batching). Each request gets a
 * slot, a KV cache of its own; every phi4_batch_step() evaluates, in one pass over the weights,
 * the next token of every request that is generating plus chunks of the prompts being read, so
 * several requests cost little more than one. Requests join as slots free up and leave when
 * they stop; a prompt that starts with the tokens a slot still holds from an earlier request
 * goes to that slot and evaluates only the rest. With quantized weights each request's output
 * (greedy, or sampled with a seed) is exactly what it would be alone in a context whose n_batch
 * equals prefill_chunk. Prompt lookup (phi4_generate_params.lookup) is not used in batches.
 * phi4_batch_submit() and phi4_batch_cancel() may be called from any thread; phi4_batch_step()
 * and the update getters from one thread at a time (a concurrent step gets PHI4_ERR_BUSY). */
typedef struct phi4_batch phi4_batch;

typedef struct {
    size_t struct_size;     /* the caller's sizeof(phi4_batch_params); set by phi4_batch_params_init() */
    int32_t n_slots;        /* requests generating at once, each with its own KV cache (default 4) */
    int32_t n_ctx;          /* positions each slot's KV cache holds; 0: min(the trained length, 4096).
                               Memory: n_slots caches of n_ctx positions */
    int32_t n_threads;      /* threads per step; 0: phi4_default_thread_count() */
    int32_t kv_type;        /* enum phi4_kv_type (default PHI4_KV_DEFAULT) */
    int32_t prefill_chunk;  /* prompt tokens evaluated per step, in whole chunks of this size
                               (default 32): smaller keeps running requests smoother while a long
                               prompt is read, larger reads prompts faster */
    int32_t max_queue;      /* requests that may wait for a slot (default 64); more: PHI4_ERR_BUSY */
} phi4_batch_params;

/* Initialises batch params through the caller's size, as phi4_model_params_init() does. */
phi4_status phi4_batch_params_init(phi4_batch_params *params, size_t size);

/* Creates a batch on a model (params may be NULL). PHI4_ERR_OUT_OF_MEMORY, with the numbers in
 * the message, when the slots' caches do not fit in the memory available. */
phi4_status phi4_batch_create(phi4_model *model, const phi4_batch_params *params, phi4_batch **out_batch);

/* Frees a batch and every request in it. NULL and invalid handles are ignored. Must not race
 * with calls on it. */
void phi4_batch_free(phi4_batch *batch);

/* Queues a generation of a continuation of `prompt` (params may be NULL: defaults; the strings
 * and arrays it points to are copied). *out_request receives the request's number (≥ 1), which
 * its updates carry. PHI4_ERR_INVALID_ARGUMENT for an empty prompt, a bad id or bad params;
 * PHI4_ERR_CONTEXT_FULL when the prompt is longer than a slot; PHI4_ERR_BUSY when max_queue
 * requests already wait. Any thread. */
phi4_status phi4_batch_submit(phi4_batch *batch, const int32_t *prompt, size_t n_prompt,
                              const phi4_generate_params *params, int64_t *out_request);

/* Stops a request; its last update (PHI4_STOP_CANCELLED) comes from the next step. Unknown or
 * finished requests are ignored. Any thread. */
phi4_status phi4_batch_cancel(phi4_batch *batch, int64_t request);

/* Requests waiting for a slot (*queued) and in a slot (*active); either pointer may be NULL. */
phi4_status phi4_batch_counts(const phi4_batch *batch, int32_t *queued, int32_t *active);

/* Runs one step (one forward pass) and makes its updates available: *n_updates receives their
 * number, read them with phi4_batch_get_update(0 … n-1). Each request that changed gets one
 * update per step. With nothing to do it returns at once with *n_updates = 0. */
phi4_status phi4_batch_step(phi4_batch *batch, size_t *n_updates);

/* What one step did for one request. */
typedef struct {
    size_t struct_size;             /* set by the caller to sizeof(phi4_batch_update) */
    int64_t request;                /* the number phi4_batch_submit() gave */
    const char *text;               /* text that became final in this step: text_len bytes of whole
                                       UTF-8 characters, not NUL-terminated; valid until the next
                                       phi4_batch_step() or phi4_batch_free() */
    size_t text_len;
    int32_t token;                  /* the token generated in this step, -1 if none */
    float logprob;                  /* its log-probability, when the request's top_logprobs ≥ 0 */
    phi4_stop_reason stop_reason;   /* PHI4_STOP_NONE while the request goes on; set in its last update */
    int32_t n_generated;            /* tokens generated so far */
    int32_t n_prompt_evaluated;     /* prompt tokens evaluated (those not found in the slot) */
} phi4_batch_update;

/* Copies update `index` of the last step into *out (the fields its struct_size has room for).
 * PHI4_ERR_INVALID_ARGUMENT when the index is out of range. */
phi4_status phi4_batch_get_update(const phi4_batch *batch, size_t index, phi4_batch_update *out);

/* The most likely alternatives at the position of update `index`'s token (its request's
 * top_logprobs of them, most likely first): up to `capacity` into `top`, their number into
 * *n_top (may be NULL). None when the update has no token or logprobs were not asked for. */
phi4_status phi4_batch_get_top_logprobs(const phi4_batch *batch, size_t index, phi4_token_logprob *top,
                                        size_t capacity, size_t *n_top);

/* ---- OpenAI-shaped requests --------------------------------------------------------------- */

/* The endpoint a request body is for: POST /v1/chat/completions or POST /v1/completions. */
enum phi4_openai_kind { PHI4_OPENAI_CHAT = 0, PHI4_OPENAI_COMPLETION = 1 };

/* Starts an OpenAI chat or text completion on `context` from a request body as the HTTP API takes
 * it (`request_json`, `len` bytes of UTF-8 JSON): the same mapping phi4-server uses (messages
 * through the chat template, or the prompt; max_tokens, temperature, top_p, seed, stop,
 * penalties, logit_bias, logprobs, stream, stream_options, and the extensions top_k, min_p,
 * repeat_penalty; default max_tokens 256). The tokens the context already holds are reused where
 * the prompt starts with them. A bad request is PHI4_ERR_INVALID_ARGUMENT (PHI4_ERR_CONTEXT_FULL for
 * a prompt longer than the context) with OpenAI's error message; nothing is changed then. */
phi4_status phi4_openai_start(phi4_context *context, int32_t kind, const char *request_json, size_t len);

/* The next response body of the request started on `context`: without "stream", one call gives the
 * whole chat.completion / text_completion object; with it, each call gives the next chunk object
 * (then a usage chunk when stream_options.include_usage). *len receives the JSON's length (no NUL
 * written); 0 once everything has been given. If `capacity` is too small the body is kept, *len is
 * the size needed and PHI4_ERR_BUFFER_TOO_SMALL is returned. */
phi4_status phi4_openai_next(phi4_context *context, char *out, size_t capacity, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* PHI4_H */
