/* abi_test.c — every function of phi4.h with bad input: NULL pointers, freed and foreign
 * handles, too-small buffers, invalid UTF-8, out-of-range ids, prompts longer than n_ctx.
 * Each must return its status and a message and leave valid objects usable. Then greedy
 * generation through the ABI is compared with transformers' ids, and models are loaded and
 * freed many times (run under valgrind by scripts/test-c.sh to find leaks and bad accesses).
 *
 *   abi_test MODEL_DIR TOKENIZER_DIR "prompt ids" "expected greedy ids" [cycles]
 */
#include <phi4.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, phi4_last_error());                                       \
        }                                                                            \
    } while (0)

/* A call that must fail with `status` and leave a message. */
#define EXPECT(status, call)                                                      \
    do {                                                                          \
        phi4_status s_ = (call);                                                  \
        CHECK(s_ == (status));                                                    \
        if (s_ != (status)) fprintf(stderr, "  got %s\n", phi4_status_name(s_)); \
        CHECK(phi4_last_error()[0] != 0);                                         \
    } while (0)

static size_t parse_ids(const char *s, int32_t *out, size_t cap) {
    size_t n = 0;
    while (*s && n < cap) {
        out[n++] = (int32_t)strtol(s, (char **)&s, 10);
        while (*s == ',' || *s == ' ') s++;
    }
    return n;
}

static void test_versions(void) {
    CHECK(phi4_version() != NULL && strlen(phi4_version()) >= 5);
    CHECK(phi4_abi_version() == PHI4_ABI_VERSION);
    /* The library's version string is the header's macros (their one source). */
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", PHI4_VERSION_MAJOR, PHI4_VERSION_MINOR, PHI4_VERSION_PATCH);
    CHECK(strcmp(phi4_version(), expected) == 0);
    CHECK(strcmp(phi4_status_name(PHI4_OK), "PHI4_OK") == 0);
    CHECK(strcmp(phi4_status_name(PHI4_ERR_BUSY), "PHI4_ERR_BUSY") == 0);
    CHECK(strcmp(phi4_status_name(-5), "unknown status") == 0);
    CHECK(strcmp(phi4_status_name(9999), "unknown status") == 0);
    CHECK(phi4_default_thread_count() >= 1);
    /* Phi-4-reasoning's preset: its published template's system text (tested byte for byte in
     * the Swift suite against transformers), constant and NUL-terminated. */
    const char *preset = phi4_reasoning_system_prompt();
    CHECK(preset != NULL && strncmp(preset, "You are Phi, a language model trained by Microsoft", 50) == 0);
    CHECK(strlen(preset) > 1000 && strcmp(preset + strlen(preset) - 11, "guidelines:") == 0);
    CHECK(preset == phi4_reasoning_system_prompt());
}

static void test_model_errors(const char *model_dir) {
    phi4_model *m = (phi4_model *)0x1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_model_load(NULL, NULL, &m));
    CHECK(m == NULL);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_model_load(model_dir, NULL, NULL));
    EXPECT(PHI4_ERR_IO, phi4_model_load("/nonexistent/phi4", NULL, &m));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_model_load("\xff\xfe", NULL, &m));
    phi4_model_params p;
    phi4_model_params_init(&p, sizeof p);
    p.struct_size = 0;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_model_load(model_dir, &p, &m));
    phi4_model_params_init(&p, sizeof p);
    p.weight_format = 77;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_model_load(model_dir, &p, &m));

    /* Foreign and NULL handles. */
    int local = 0;
    phi4_model *fake = (phi4_model *)&local;
    phi4_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_model_get_info(fake, &info));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_model_get_info(NULL, &info));
    phi4_model_free(NULL);
    phi4_model_free(fake); /* ignored, reported */
    CHECK(strstr(phi4_last_error(), "not a live model") != NULL);
    CHECK(phi4_model_tokenizer(fake) == NULL);
    size_t n = 0;
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_model_eog_tokens(fake, NULL, 0, &n));
}

static void test_tokenizer_errors(phi4_model *model, const char *tokenizer_dir) {
    const phi4_tokenizer *tok = phi4_model_tokenizer(model);
    CHECK(tok != NULL);
    int32_t ids[64];
    size_t n = 99;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_tokenize(NULL, "hi", 2, 0, ids, 64, &n));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_tokenize(tok, NULL, 2, 0, ids, 64, &n));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_tokenize(tok, "hi", 2, 0, ids, 64, NULL));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_tokenize(tok, "a\xff" "b", 3, 0, ids, 64, &n));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_tokenize(tok, "\xe4\xb8", 2, 0, ids, 64, &n));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_tokenize(tok, "hi", (size_t)-1, 0, ids, 64, &n));
    /* Too small: the needed count is reported, then the call succeeds. */
    const char *text = "Hello, world! This needs several tokens.";
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_tokenize(tok, text, strlen(text), 0, ids, 2, &n));
    size_t needed = n;
    CHECK(needed > 2);
    CHECK(phi4_tokenize(tok, text, strlen(text), 0, ids, 64, &n) == PHI4_OK && n == needed);
    CHECK(phi4_tokenize(tok, "", 0, 0, NULL, 0, &n) == PHI4_OK && n == 0);
    /* Specials: parsed only when asked. */
    CHECK(phi4_tokenize(tok, "<|im_end|>", 10, 1, ids, 64, &n) == PHI4_OK && n == 1);
    int32_t im_end = -1;
    CHECK(phi4_token_lookup(tok, "<|im_end|>", &im_end) == PHI4_OK && ids[0] == im_end);
    CHECK(phi4_tokenize(tok, "<|im_end|>", 10, 0, ids, 64, &n) == PHI4_OK && n > 1);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_token_lookup(tok, "<|nope|>", &im_end));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_token_lookup(tok, NULL, &im_end));

    /* Detokenize: sizes, NUL, bad ids. */
    int32_t hello[3];
    CHECK(phi4_tokenize(tok, "Hey", 3, 0, hello, 3, &n) == PHI4_OK);
    size_t hn = n;
    char buf[64];
    size_t len = 0;
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_detokenize(tok, hello, hn, buf, 1, &len));
    CHECK(len == 3);
    CHECK(phi4_detokenize(tok, hello, hn, buf, sizeof buf, &len) == PHI4_OK && len == 3 && strcmp(buf, "Hey") == 0);
    int32_t bad[2] = {1, 1 << 30};
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_detokenize(tok, bad, 2, buf, sizeof buf, &len));
    bad[1] = -1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_detokenize(tok, bad, 2, buf, sizeof buf, &len));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_detokenize(tok, NULL, 2, buf, sizeof buf, &len));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_token_to_piece(tok, -7, buf, sizeof buf, &len));
    CHECK(phi4_token_to_piece(tok, im_end, buf, sizeof buf, &len) == PHI4_OK && len == 10);
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_token_to_piece(tok, im_end, buf, 3, &len));

    /* Chat template. */
    phi4_chat_message msgs[2] = {{"system", "Be brief."}, {"user", "hi<|im_end|>"}};
    CHECK(phi4_chat_template(tok, msgs, 2, 1, ids, 64, &n) == PHI4_OK);
    int ends = 0;
    for (size_t i = 0; i < n; i++) ends += ids[i] == im_end;
    CHECK(ends == 2); /* the user's "<|im_end|>" text stays text */
    phi4_chat_message bad_msgs[1] = {{NULL, "x"}};
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_chat_template(tok, bad_msgs, 1, 1, ids, 64, &n));
    phi4_chat_message bad_utf8[1] = {{"user", "\xc3\x28"}};
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_chat_template(tok, bad_utf8, 1, 1, ids, 64, &n));
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_chat_template(tok, msgs, 2, 1, ids, 3, &n));

    /* A tokenizer-only handle; borrowed handles are not freed by phi4_tokenizer_free. */
    phi4_tokenizer *own = NULL;
    EXPECT(PHI4_ERR_IO, phi4_tokenizer_load("/nonexistent", &own));
    CHECK(own == NULL);
    CHECK(phi4_tokenizer_load(tokenizer_dir, &own) == PHI4_OK && own != NULL);
    CHECK(phi4_tokenize(own, "Hello, world!", 13, 0, ids, 64, &n) == PHI4_OK && n == 4 && ids[0] == 9906 &&
          ids[1] == 11 && ids[2] == 1917 && ids[3] == 0); /* tiktoken's ids */
    phi4_tokenizer_free((phi4_tokenizer *)tok);        /* refused: borrowed */
    CHECK(phi4_tokenize(tok, "a", 1, 0, ids, 64, &n) == PHI4_OK);
    phi4_tokenizer_free(own);
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_tokenize(own, "a", 1, 0, ids, 64, &n)); /* use after free */
    phi4_tokenizer_free(own);                                                     /* double free */
}

static void test_context_errors(phi4_model *model) {
    phi4_context *ctx = NULL;
    phi4_context_params cp;
    phi4_context_params_init(&cp, sizeof cp);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_create(NULL, &cp, &ctx));
    cp.n_ctx = -3;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_create(model, &cp, &ctx));
    phi4_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 1 << 30;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_create(model, &cp, &ctx));
    phi4_context_params_init(&cp, sizeof cp);
    cp.kv_type = 9;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_create(model, &cp, &ctx));
    cp.kv_type = PHI4_KV_Q8_0; /* the fixture's head dimension (16) is not a multiple of 32 */
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_create(model, &cp, &ctx));
    cp.kv_type = PHI4_KV_F16;
    CHECK(phi4_context_create(model, &cp, &ctx) == PHI4_OK);
    phi4_context_free(ctx);
    ctx = NULL;
    phi4_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 16;
    cp.n_batch = 4;
    CHECK(phi4_context_create(model, &cp, &ctx) == PHI4_OK && ctx != NULL);
    CHECK(phi4_context_capacity(ctx) == 16 && phi4_context_token_count(ctx) == 0);
    CHECK(phi4_context_token_count(NULL) == -1);

    phi4_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(phi4_model_get_info(model, &info) == PHI4_OK);
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    size_t rows = 0;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_get_logits(ctx, -1, logits, (size_t)info.vocab_size, &rows));

    int32_t ids[32];
    for (int i = 0; i < 32; i++) ids[i] = i + 1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_eval(ctx, NULL, 3, 0));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_eval(ctx, ids, 0, 0));
    int32_t bad[3] = {1, info.vocab_size, 2};
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_eval(ctx, bad, 3, 0));
    bad[1] = -1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_eval(ctx, bad, 3, 0));
    EXPECT(PHI4_ERR_CONTEXT_FULL, phi4_eval(ctx, ids, 17, 0)); /* longer than n_ctx */
    CHECK(phi4_context_token_count(ctx) == 0);
    CHECK(phi4_eval(ctx, ids, 10, 1) == PHI4_OK && phi4_context_token_count(ctx) == 10);
    EXPECT(PHI4_ERR_CONTEXT_FULL, phi4_eval(ctx, ids, 7, 0));
    CHECK(phi4_context_token_count(ctx) == 10);
    CHECK(phi4_get_logits(ctx, 3, logits, (size_t)info.vocab_size, &rows) == PHI4_OK && rows == 10);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_get_logits(ctx, 10, logits, (size_t)info.vocab_size, &rows));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_get_logits(ctx, -11, logits, (size_t)info.vocab_size, &rows));
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_get_logits(ctx, 0, logits, 5, &rows));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_get_logits(ctx, 0, NULL, (size_t)info.vocab_size, &rows));
    CHECK(phi4_context_truncate(ctx, 4) == PHI4_OK && phi4_context_token_count(ctx) == 4);
    CHECK(phi4_context_truncate(ctx, 100) == PHI4_OK && phi4_context_token_count(ctx) == 4);
    CHECK(phi4_context_truncate(ctx, -5) == PHI4_OK && phi4_context_token_count(ctx) == 0);

    /* Sampling. */
    phi4_sampler *sampler = NULL;
    phi4_sampling_params sp;
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.temperature = -1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sampler_create(&sp, &sampler));
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.top_p = NAN;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sampler_create(&sp, &sampler));
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.n_logit_bias = 2;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sampler_create(&sp, &sampler));
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.temperature = 0;
    CHECK(phi4_sampler_create(&sp, &sampler) == PHI4_OK);
    int32_t tok = -1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sample(ctx, sampler, &tok)); /* no logits since truncate */
    CHECK(phi4_eval(ctx, ids, 3, 0) == PHI4_OK);
    CHECK(phi4_sample(ctx, sampler, &tok) == PHI4_OK && tok >= 0 && tok < info.vocab_size);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sample(ctx, NULL, &tok));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sample(ctx, sampler, NULL));
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_sample(ctx, (phi4_sampler *)ctx, &tok)); /* wrong kind */
    phi4_sampler_free(sampler);
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_sample(ctx, sampler, &tok));

    /* Generation. */
    phi4_generate_params gp;
    phi4_generate_params_init(&gp, sizeof gp);
    phi4_stop_reason reason = -1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(NULL, ids, 3, &gp, NULL, NULL, &reason));
    CHECK(phi4_context_reset(ctx) == PHI4_OK);
    EXPECT(PHI4_ERR_CONTEXT_FULL, phi4_generate(ctx, ids, 20, &gp, NULL, NULL, &reason));
    CHECK(phi4_context_token_count(ctx) == 0);
    gp.n_stop_strings = 1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(ctx, ids, 3, &gp, NULL, NULL, &reason));
    const char *stops[1] = {"\xff"};
    gp.stop_strings = stops;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(ctx, ids, 3, &gp, NULL, NULL, &reason));
    phi4_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = -1;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(ctx, ids, 3, &gp, NULL, NULL, &reason));
    phi4_generate_params_init(&gp, sizeof gp);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate_text(ctx, "bad \xc0\x80 utf8", &gp, NULL, NULL, &reason));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate_text(ctx, NULL, &gp, NULL, NULL, &reason));
    /* Log-probabilities of a generation: recorded only when asked, per token, best first. */
    {
        phi4_generate_params lp;
        phi4_generate_params_init(&lp, sizeof lp);
        lp.max_tokens = 4;
        phi4_sampling_params lp_sampling;
        phi4_sampling_params_init(&lp_sampling, sizeof lp_sampling);
        lp.sampling = &lp_sampling;
        lp_sampling.temperature = 0;
        phi4_token_logprob one, top[3];
        size_t n_top = 0;
        CHECK(phi4_context_reset(ctx) == PHI4_OK);
        CHECK(phi4_generate(ctx, ids, 3, &lp, NULL, NULL, &reason) == PHI4_OK);
        CHECK(phi4_generation_token_count(ctx) == 4);
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_logprob(ctx, 0, &one, top, 3, &n_top)); /* not asked */
        lp.top_logprobs = 3;
        CHECK(phi4_context_reset(ctx) == PHI4_OK);
        CHECK(phi4_generate(ctx, ids, 3, &lp, NULL, NULL, &reason) == PHI4_OK);
        int32_t n = phi4_generation_token_count(ctx);
        CHECK(n == 4);
        for (int32_t i = 0; i < n; i++) {
            CHECK(phi4_generation_logprob(ctx, (size_t)i, &one, top, 3, &n_top) == PHI4_OK && n_top == 3);
            CHECK(one.logprob <= 0 && top[0].logprob >= top[1].logprob && top[1].logprob >= top[2].logprob);
            CHECK(one.token == top[0].token); /* greedy */
        }
        CHECK(phi4_generation_logprob(ctx, 0, &one, NULL, 0, &n_top) == PHI4_OK && n_top == 0);
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_logprob(ctx, 4, &one, top, 3, &n_top));
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_logprob(ctx, 0, NULL, top, 3, &n_top));
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_logprob(ctx, 0, &one, NULL, 3, &n_top));
        CHECK(phi4_generation_token_count(NULL) == -1);
        lp.top_logprobs = 21;
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(ctx, ids, 3, &lp, NULL, NULL, &reason));
        lp.top_logprobs = -1;
        lp.lookup = -2;
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(ctx, ids, 3, &lp, NULL, NULL, &reason));
        CHECK(phi4_context_reset(ctx) == PHI4_OK);
    }

    /* max_tokens 0 evaluates the prompt only; an empty prompt is an error and changes nothing. */
    phi4_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 0;
    CHECK(phi4_context_reset(ctx) == PHI4_OK);
    CHECK(phi4_generate(ctx, ids, 3, &gp, NULL, NULL, &reason) == PHI4_OK && reason == PHI4_STOP_MAX_TOKENS);
    CHECK(phi4_context_token_count(ctx) == 3);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(ctx, ids, 0, &gp, NULL, NULL, &reason));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate_text(ctx, "", &gp, NULL, NULL, &reason));
    CHECK(phi4_context_token_count(ctx) == 3);
    CHECK(phi4_context_reset(ctx) == PHI4_OK);
    phi4_generate_params_init(&gp, sizeof gp);
    /* Generation that reaches the end of the context is a stop reason, not an error (greedy:
       sampled text could draw an end-of-generation token first). */
    gp.max_tokens = 100;
    phi4_sampling_params gp_sampling;
    phi4_sampling_params_init(&gp_sampling, sizeof gp_sampling);
    gp.sampling = &gp_sampling;
    gp_sampling.temperature = 0;
    CHECK(phi4_generate(ctx, ids, 3, &gp, NULL, NULL, &reason) == PHI4_OK && reason == PHI4_STOP_CONTEXT_FULL);
    CHECK(phi4_context_token_count(ctx) == 16);

    /* Pull form: not started; too-small buffers keep the piece. */
    char piece[256];
    size_t len = 0;
    int32_t token = 0;
    CHECK(phi4_context_reset(ctx) == PHI4_OK);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_next(ctx, piece, sizeof piece, &len, &token, &reason));
    gp.max_tokens = 8;
    CHECK(phi4_generation_start(ctx, ids, 3, &gp) == PHI4_OK);
    int pieces = 0, guard = 0;
    while (guard++ < 100) {
        phi4_status s = phi4_generation_next(ctx, piece, 0, &len, &token, &reason);
        if (s == PHI4_ERR_BUFFER_TOO_SMALL) {
            size_t need = len;
            CHECK(need > 0);
            CHECK(phi4_generation_next(ctx, piece, sizeof piece, &len, &token, &reason) == PHI4_OK && len == need);
            pieces++;
            continue;
        }
        CHECK(s == PHI4_OK);
        if (len == 0 && reason != PHI4_STOP_NONE) break;
    }
    CHECK(pieces > 0 && reason != PHI4_STOP_NONE);
    CHECK(phi4_generation_finish(ctx) == PHI4_OK);
    CHECK(phi4_generation_finish(ctx) == PHI4_OK);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_next(ctx, piece, sizeof piece, &len, &token, &reason));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_cancel(NULL));

    /* Freed contexts are invalid handles. */
    phi4_context_free(ctx);
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_eval(ctx, ids, 1, 0));
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_cancel(ctx));
    CHECK(phi4_context_token_count(ctx) == -1);
    phi4_context_free(ctx);
    free(logits);
}

/* Greedy decoding through phi4_eval / phi4_get_logits, and through phi4_generate. */
/* Prompt lookup through the ABI: greedy output identical with and without it, and its counts. The
   prompt holds the model's greedy continuation of `prompt` after a first copy of it, so drafts
   are proposed after the second; the generated ids are read back through the log-probability
   records. */
static void test_prompt_lookup(phi4_model *model, const int32_t *prompt, size_t n_prompt, const int32_t *expected,
                               size_t n_expected) {
    int32_t rep[600];
    size_t n = 0, k = n_expected < 16 ? n_expected : 16;
    if (2 * n_prompt + k > 600) n_prompt = (600 - k) / 2;
    for (size_t i = 0; i < n_prompt; i++) rep[n++] = prompt[i];
    for (size_t i = 0; i < k; i++) rep[n++] = expected[i];
    for (size_t i = 0; i < n_prompt; i++) rep[n++] = prompt[i];
    phi4_context_params cp;
    phi4_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 1024;
    phi4_context *ctx = NULL;
    CHECK(phi4_context_create(model, &cp, &ctx) == PHI4_OK);
    phi4_generate_params lp;
    phi4_generate_params_init(&lp, sizeof lp);
    lp.max_tokens = 24;
    phi4_sampling_params lp_sampling;
    phi4_sampling_params_init(&lp_sampling, sizeof lp_sampling);
    lp.sampling = &lp_sampling;
    lp_sampling.temperature = 0;
    lp.top_logprobs = 0;
    int32_t plain[24] = {0}, with[24] = {0}, proposed = -1, accepted = -1;
    phi4_token_logprob one;
    phi4_stop_reason reason;
    CHECK(phi4_generate(ctx, rep, n, &lp, NULL, NULL, &reason) == PHI4_OK);
    int32_t n_plain = phi4_generation_token_count(ctx);
    CHECK(n_plain > 0 && n_plain <= 24);
    for (int32_t i = 0; i < n_plain && i < 24; i++) {
        CHECK(phi4_generation_logprob(ctx, (size_t)i, &one, NULL, 0, NULL) == PHI4_OK);
        plain[i] = one.token;
    }
    CHECK(phi4_generation_lookup_counts(ctx, &proposed, &accepted) == PHI4_OK && proposed == 0 && accepted == 0);
    lp.lookup = 6;
    CHECK(phi4_context_reset(ctx) == PHI4_OK);
    CHECK(phi4_generate(ctx, rep, n, &lp, NULL, NULL, &reason) == PHI4_OK);
    CHECK(phi4_generation_token_count(ctx) == n_plain);
    for (int32_t i = 0; i < n_plain && i < 24; i++) {
        CHECK(phi4_generation_logprob(ctx, (size_t)i, &one, NULL, 0, NULL) == PHI4_OK);
        with[i] = one.token;
    }
    CHECK(memcmp(plain, with, sizeof(plain)) == 0);
    CHECK(phi4_generation_lookup_counts(ctx, &proposed, &accepted) == PHI4_OK);
    CHECK(proposed > 0 && accepted > 0 && accepted <= proposed);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_lookup_counts(ctx, NULL, &accepted));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_lookup_counts(ctx, &proposed, NULL));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generation_lookup_counts(NULL, &proposed, &accepted));
    phi4_context_free(ctx);
}

static void test_greedy(phi4_model *model, const int32_t *prompt, size_t n_prompt, const int32_t *expected, size_t n_expected) {
    phi4_context *ctx = NULL;
    CHECK(phi4_context_create(model, NULL, &ctx) == PHI4_OK);
    phi4_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    phi4_model_get_info(model, &info);
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    int ok = phi4_eval(ctx, prompt, n_prompt, 0) == PHI4_OK;
    size_t same = 0;
    for (size_t i = 0; ok && i < n_expected; i++) {
        ok = phi4_get_logits(ctx, -1, logits, (size_t)info.vocab_size, NULL) == PHI4_OK;
        int32_t best = 0;
        for (int32_t v = 1; v < info.vocab_size; v++)
            if (logits[v] > logits[best]) best = v;
        same += best == expected[i];
        ok = ok && phi4_eval(ctx, &best, 1, 0) == PHI4_OK;
    }
    CHECK(ok && same == n_expected);
    free(logits);
    phi4_context_free(ctx);
}

/* Batches: several requests decoded together each produce transformers' greedy ids (f32 weights,
 * at most 2 slots + chunks of 4 = 6 rows a pass: each row computed as alone); bad input is
 * refused; cancellation and a full queue behave. */
static void test_batch(phi4_model *model, const int32_t *prompt, size_t n_prompt, const int32_t *expected, size_t n_expected) {
    phi4_batch_params bp;
    CHECK(phi4_batch_params_init(&bp, sizeof bp) == PHI4_OK && bp.n_slots == 4 && bp.prefill_chunk == 32);
    bp.n_slots = 2;
    bp.prefill_chunk = 4;
    bp.max_queue = 2;
    bp.n_ctx = 256;
    phi4_batch *b = NULL;
    CHECK(phi4_batch_create(model, &bp, &b) == PHI4_OK && b != NULL);
    if (!b) return;
    phi4_sampling_params greedy;
    phi4_sampling_params_init(&greedy, sizeof greedy);
    greedy.temperature = 0;
    phi4_generate_params gp;
    phi4_generate_params_init(&gp, sizeof gp);
    gp.sampling = &greedy;
    gp.max_tokens = (int32_t)n_expected;
    gp.top_logprobs = 2;
    int64_t ids[4];
    for (int i = 0; i < 4; i++) CHECK(phi4_batch_submit(b, prompt, n_prompt, &gp, &ids[i]) == PHI4_OK && ids[i] == i + 1);
    int64_t extra;
    EXPECT(PHI4_ERR_BUSY, phi4_batch_submit(b, prompt, n_prompt, &gp, &extra)); /* 2 slots + 2 waiting */
    int32_t queued = -1, active = -1;
    CHECK(phi4_batch_counts(b, &queued, &active) == PHI4_OK && queued == 4 && active == 0);
    int32_t got[4][256];
    size_t n_got[4] = {0};
    int finished[4] = {0}, done = 0, steps = 0;
    while (done < 4 && steps < 1000) {
        size_t n = 0;
        CHECK(phi4_batch_step(b, &n) == PHI4_OK);
        steps++;
        for (size_t i = 0; i < n; i++) {
            phi4_batch_update u;
            memset(&u, 0, sizeof u);
            u.struct_size = sizeof u;
            CHECK(phi4_batch_get_update(b, i, &u) == PHI4_OK && u.request >= 1 && u.request <= 4);
            int r = (int)u.request - 1;
            if (u.token >= 0 && n_got[r] < 256) got[r][n_got[r]++] = u.token;
            if (u.token >= 0) {
                phi4_token_logprob top[4];
                size_t n_top = 0;
                CHECK(phi4_batch_get_top_logprobs(b, i, top, 4, &n_top) == PHI4_OK && n_top == 2 && top[0].logprob >= top[1].logprob);
                CHECK(u.logprob <= 0 && u.logprob >= top[0].logprob - 1e-6f);
            }
            CHECK(u.n_generated == (int32_t)n_got[r]);
            if (u.stop_reason != PHI4_STOP_NONE) {
                finished[r] = 1;
                done++;
                CHECK(r == 3 ? u.n_prompt_evaluated == 0 : u.n_prompt_evaluated >= 1 && u.n_prompt_evaluated <= (int32_t)n_prompt);
            }
        }
        if (steps == 1) {
            CHECK(phi4_batch_counts(b, &queued, &active) == PHI4_OK && queued == 2 && active == 2);
            CHECK(phi4_batch_cancel(b, ids[3]) == PHI4_OK);  /* still waiting */
        }
    }
    CHECK(finished[0] && finished[1] && finished[2] && finished[3]);
    for (int r = 0; r < 3; r++) {
        size_t same = 0;
        for (size_t i = 0; i < n_got[r] && i < n_expected; i++) same += got[r][i] == expected[i];
        CHECK(same == n_expected && n_got[r] == n_expected);
    }
    CHECK(n_got[3] == 0);
    size_t n = 0;
    CHECK(phi4_batch_step(b, &n) == PHI4_OK && n == 0);
    phi4_batch_update u;
    memset(&u, 0, sizeof u);
    u.struct_size = sizeof u;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_batch_get_update(b, 0, &u));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_batch_get_update(b, 0, NULL));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_batch_submit(b, prompt, 0, &gp, &extra));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_batch_submit(b, prompt, n_prompt, &gp, NULL));
    int32_t bad_id = 1 << 30;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_batch_submit(b, &bad_id, 1, &gp, &extra));
    int32_t *long_prompt = calloc(300, sizeof(int32_t));
    EXPECT(PHI4_ERR_CONTEXT_FULL, phi4_batch_submit(b, long_prompt, 300, &gp, &extra));
    free(long_prompt);
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_batch_step((phi4_batch *)&gp, &n));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_batch_step(b, NULL));
    CHECK(phi4_batch_cancel(b, 12345) == PHI4_OK);
    bp.n_slots = 0;
    phi4_batch *b2 = NULL;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_batch_create(model, &bp, &b2));
    CHECK(b2 == NULL);
    bp.n_slots = 2;
    bp.kv_type = 99;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_batch_create(model, &bp, &b2));
    phi4_batch_free(b);
    phi4_batch_free(NULL);
}

/* OpenAI-shaped requests on a context: bad input refused with the field named, the context
 * untouched; a whole answer and a stream whose text agree; a buffer too small keeps the body. */
static void test_openai(phi4_model *model) {
    phi4_context *ctx = NULL;
    CHECK(phi4_context_create(model, NULL, &ctx) == PHI4_OK);
    const char *bad[] = {"{not json", "[]", "{\"prompt\": 5}", "{\"prompt\": \"x\", \"temperature\": \"hot\"}",
                         "{\"prompt\": \"x\", \"n\": 2}", "{\"prompt\": \"x\", \"tools\": [{}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_openai_start(ctx, PHI4_OPENAI_COMPLETION, bad[i], strlen(bad[i])));
    CHECK(strstr(phi4_last_error(), "tools") != NULL);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_openai_start(ctx, 7, "{}", 2));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_openai_start(ctx, PHI4_OPENAI_CHAT, NULL, 3));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_openai_start(ctx, PHI4_OPENAI_CHAT, "{\"messages\": []}", 16));
    size_t len = 0;
    char small[8], body[8192];
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_openai_next(ctx, body, sizeof body, &len)); /* nothing started */
    CHECK(phi4_context_token_count(ctx) == 0);
    const char *req = "{\"prompt\": \"Hello\", \"max_tokens\": 6, \"temperature\": 0}";
    CHECK(phi4_openai_start(ctx, PHI4_OPENAI_COMPLETION, req, strlen(req)) == PHI4_OK);
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_openai_next(ctx, small, sizeof small, &len));
    CHECK(len > sizeof small);
    CHECK(phi4_openai_next(ctx, body, sizeof body - 1, &len) == PHI4_OK && len > 0);
    body[len] = 0;
    CHECK(strstr(body, "\"object\":\"text_completion\"") != NULL && strstr(body, "\"completion_tokens\":") != NULL);
    CHECK(phi4_openai_next(ctx, body, sizeof body, &len) == PHI4_OK && len == 0);
    const char *sreq = "{\"prompt\": \"Hello\", \"max_tokens\": 6, \"temperature\": 0, \"stream\": true, "
                       "\"stream_options\": {\"include_usage\": true}}";
    CHECK(phi4_openai_start(ctx, PHI4_OPENAI_COMPLETION, sreq, strlen(sreq)) == PHI4_OK);
    int chunks = 0, usage = 0;
    while (phi4_openai_next(ctx, body, sizeof body - 1, &len) == PHI4_OK && len > 0 && chunks < 100) {
        body[len] = 0;
        chunks++;
        usage += strstr(body, "\"choices\":[]") != NULL;
    }
    CHECK(chunks >= 2 && usage == 1);
    phi4_context_free(ctx);
}

struct text_buf { char text[512]; size_t len; };

static int32_t collect_text(const char *piece, size_t len, int32_t token, void *user) {
    (void)token;
    struct text_buf *b = user;
    if (b->len + len < sizeof b->text) { memcpy(b->text + b->len, piece, len); b->len += len; b->text[b->len] = 0; }
    return 1;
}

/* Constrained output through phi4_generate_params: the output matches (checked here by hand),
 * bad constraints fail before anything is evaluated and leave the context as it was. */
static void test_constraints(phi4_model *model, const int32_t *prompt, size_t n_prompt) {
    const char *re = "[a-c]{3}x";
    CHECK(phi4_constraint_check(model, PHI4_CONSTRAINT_REGEX, re, strlen(re)) == PHI4_OK);
    CHECK(phi4_constraint_check(model, PHI4_CONSTRAINT_JSON_OBJECT, NULL, 0) == PHI4_OK);
    CHECK(phi4_constraint_check(model, PHI4_CONSTRAINT_NONE, NULL, 0) == PHI4_OK);
    const char *bad_schema = "{\"type\": \"string\", \"$dynamicRef\": \"#meta\"}";
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_check(model, PHI4_CONSTRAINT_JSON_SCHEMA, bad_schema, strlen(bad_schema)));
    CHECK(strstr(phi4_last_error(), "$dynamicRef") != NULL);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_check(model, PHI4_CONSTRAINT_GRAMMAR, "root ::= (", 10));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_check(model, PHI4_CONSTRAINT_REGEX, NULL, 3));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_check(model, PHI4_CONSTRAINT_REGEX, "\xff", 1));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_check(model, 99, "x", 1));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_check(NULL, PHI4_CONSTRAINT_REGEX, re, strlen(re)));

    /* Matching a whole text, without a model; errors leave *matches as it was. */
    int32_t m = 7;
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_REGEX, re, strlen(re), "abcx", 4, &m) == PHI4_OK && m == 1);
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_REGEX, re, strlen(re), "abc", 3, &m) == PHI4_OK && m == 0);
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_REGEX, re, strlen(re), "abcxx", 5, &m) == PHI4_OK && m == 0);
    const char *schema = "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\", \"minimum\": 1}}, \"required\": [\"n\"]}";
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_JSON_SCHEMA, schema, strlen(schema), "{\"n\":3}", 7, &m) == PHI4_OK && m == 1);
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_JSON_SCHEMA, schema, strlen(schema), "{\"n\":0}", 7, &m) == PHI4_OK && m == 0);
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_JSON_OBJECT, NULL, 0, "{}", 2, &m) == PHI4_OK && m == 1);
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_JSON_OBJECT, NULL, 0, "[]", 2, &m) == PHI4_OK && m == 0);
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_GRAMMAR, "root ::= \"hi\"", 13, "hi", 2, &m) == PHI4_OK && m == 1);
    CHECK(phi4_constraint_match(PHI4_CONSTRAINT_NONE, NULL, 0, NULL, 0, &m) == PHI4_OK && m == 1);
    m = 7;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_match(PHI4_CONSTRAINT_GRAMMAR, "root ::= (", 10, "x", 1, &m));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_match(PHI4_CONSTRAINT_REGEX, re, strlen(re), "\xff", 1, &m));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_match(PHI4_CONSTRAINT_REGEX, re, strlen(re), NULL, 3, &m));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_match(99, "x", 1, "x", 1, &m));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_constraint_match(PHI4_CONSTRAINT_REGEX, re, strlen(re), "abcx", 4, NULL));
    CHECK(m == 7);

    phi4_context *ctx = NULL;
    CHECK(phi4_context_create(model, NULL, &ctx) == PHI4_OK);
    phi4_generate_params g;
    phi4_generate_params_init(&g, sizeof g);
    CHECK(g.constraint_type == PHI4_CONSTRAINT_NONE && g.constraint == NULL && g.constraint_len == 0);
    phi4_sampling_params sp;
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.temperature = 1;
    g.sampling = &sp;
    g.max_tokens = 20;
    g.constraint_type = PHI4_CONSTRAINT_REGEX;
    g.constraint = re;
    g.constraint_len = strlen(re);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        sp.seed = seed;
        struct text_buf b = {{0}, 0};
        phi4_stop_reason why = PHI4_STOP_NONE;
        CHECK(phi4_context_reset(ctx) == PHI4_OK);
        CHECK(phi4_generate(ctx, prompt, n_prompt, &g, collect_text, &b, &why) == PHI4_OK);
        CHECK(why == PHI4_STOP_EOS && b.len == 4 && strspn(b.text, "abc") == 3 && b.text[3] == 'x');
    }
    /* Too few tokens for the shortest match, a bad grammar: refused, the context unchanged. */
    CHECK(phi4_context_reset(ctx) == PHI4_OK);
    g.max_tokens = 3;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(ctx, prompt, n_prompt, &g, NULL, NULL, NULL));
    g.max_tokens = 20;
    g.constraint_type = PHI4_CONSTRAINT_GRAMMAR;
    g.constraint = "root ::= [";
    g.constraint_len = 10;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_generate(ctx, prompt, n_prompt, &g, NULL, NULL, NULL));
    CHECK(phi4_context_token_count(ctx) == 0);
    phi4_context_free(ctx);
}

/* Load progress (0.7): an HF checkpoint quantized at load reports every matrix, in order, ending at
 * done == total; the user pointer comes back as given. */
static int progress_calls, progress_last_done, progress_last_total, progress_in_order = 1;
static void on_progress(void *user, int32_t done, int32_t total) {
    if (user != &progress_calls || done != progress_last_done + 1 || done > total) progress_in_order = 0;
    progress_calls++;
    progress_last_done = done;
    progress_last_total = total;
}

static void test_load_progress(const char *model_dir) {
    phi4_model_params mp;
    phi4_model_params_init(&mp, sizeof mp);
    CHECK(mp.progress == NULL && mp.progress_user_data == NULL);
    mp.weight_format = PHI4_WEIGHTS_Q8_0;
    mp.progress = on_progress;
    mp.progress_user_data = &progress_calls;
    phi4_model *m = NULL;
    CHECK(phi4_model_load(model_dir, &mp, &m) == PHI4_OK && m != NULL);
    CHECK(progress_calls > 0 && progress_in_order && progress_last_done == progress_last_total);
    phi4_model_free(m);
}

/* Embeddings, caller-given logits and the context's tokens (0.7): sizes, bad arguments, and a
 * context whose own tokens stay as they were. */
static void test_embeddings_and_sampling(phi4_model *model) {
    phi4_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(phi4_model_get_info(model, &info) == PHI4_OK && info.adds_bos == 0);
    phi4_context *ctx = NULL;
    phi4_context_params cp;
    phi4_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 32;
    cp.n_batch = 4; /* inputs longer than a pass continue over several */
    CHECK(phi4_context_create(model, &cp, &ctx) == PHI4_OK);
    int32_t ids[12] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    CHECK(phi4_eval(ctx, ids, 3, 0) == PHI4_OK);
    int32_t seen[8];
    size_t n_seen = 0;
    CHECK(phi4_context_tokens(ctx, seen, 8, &n_seen) == PHI4_OK && n_seen == 3 && seen[2] == 7);
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_context_tokens(ctx, seen, 2, &n_seen));
    CHECK(n_seen == 3);

    size_t lengths[3] = {5, 2, 5}, n_out = 0;
    const size_t d = (size_t)info.hidden_size;
    float *out = malloc(sizeof(float) * d * 12);
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_embed(ctx, ids, lengths, 3, PHI4_POOLING_MEAN, 0, out, d, &n_out));
    CHECK(n_out == 3 * d);
    CHECK(phi4_embed(ctx, ids, lengths, 3, PHI4_POOLING_MEAN, 1, out, 3 * d, &n_out) == PHI4_OK && n_out == 3 * d);
    double norm = 0;
    for (size_t j = 0; j < d; j++) norm += (double)out[j] * out[j];
    CHECK(fabs(norm - 1) < 1e-4);
    CHECK(phi4_embed(ctx, ids, lengths, 3, PHI4_POOLING_NONE, 0, out, 12 * d, &n_out) == PHI4_OK && n_out == 12 * d);
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_embed(ctx, ids, lengths, 3, 7, 0, out, 12 * d, &n_out));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_embed(ctx, ids, NULL, 3, PHI4_POOLING_MEAN, 0, out, 12 * d, &n_out));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_embed(ctx, ids, lengths, 3, PHI4_POOLING_MEAN, 0, out, 12 * d, NULL));
    size_t empty[2] = {2, 0};
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_embed(ctx, ids, empty, 2, PHI4_POOLING_MEAN, 0, out, 12 * d, &n_out));
    int32_t bad[2] = {1, info.vocab_size};
    size_t two[1] = {2};
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_embed(ctx, bad, two, 1, PHI4_POOLING_LAST, 0, out, 12 * d, &n_out));
    size_t huge[1] = {(size_t)-1};
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_embed(ctx, ids, huge, 1, PHI4_POOLING_LAST, 0, out, 12 * d, &n_out));
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_embed((phi4_context *)out, ids, lengths, 3, 1, 0, out, 12 * d, &n_out));
    CHECK(phi4_embed(ctx, ids, lengths, 0, PHI4_POOLING_MEAN, 0, NULL, 0, &n_out) == PHI4_OK && n_out == 0);
    CHECK(phi4_context_token_count(ctx) == 3); /* untouched */

    /* phi4_sample_logits: greedy picks the arg-max of the caller's row; bad rows are refused. */
    phi4_sampler *sampler = NULL;
    phi4_sampling_params sp;
    phi4_sampling_params_init(&sp, sizeof sp);
    CHECK(sp.typical_p == 1.0f && sp.mirostat == 0 && sp.mirostat_tau == 5.0f && sp.penalize_prompt == 1);
    sp.temperature = 0;
    CHECK(phi4_sampler_create(&sp, &sampler) == PHI4_OK);
    float row[6] = {0.5f, 2, 1, 3.5f, -1, 0};
    int32_t tok = -1;
    CHECK(phi4_sample_logits(sampler, row, 6, NULL, 0, &tok) == PHI4_OK && tok == 3);
    row[2] = NAN;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sample_logits(sampler, row, 6, NULL, 0, &tok));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sample_logits(sampler, NULL, 6, NULL, 0, &tok));
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sample_logits(sampler, row, 6, NULL, 3, &tok));
    phi4_sampler_free(sampler);
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.mirostat = 2;
    sp.seed = 1;
    sp.use_seed = 1;
    CHECK(phi4_sampler_create(&sp, &sampler) == PHI4_OK);
    row[2] = 1;
    CHECK(phi4_sample_logits(sampler, row, 6, NULL, 0, &tok) == PHI4_OK && tok >= 0 && tok < 6);
    phi4_sampler_free(sampler);
    sp.mirostat = 3;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sampler_create(&sp, &sampler));
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.typical_p = 0;
    EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_sampler_create(&sp, &sampler));
    free(out);
    phi4_context_free(ctx);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL_DIR TOKENIZER_DIR PROMPT_IDS EXPECTED_IDS [cycles]\n", argv[0]);
        return 2;
    }
    int cycles = argc > 5 ? atoi(argv[5]) : 100;
    test_versions();
    test_model_errors(argv[1]);
    phi4_model *model = NULL;
    CHECK(phi4_model_load(argv[1], NULL, &model) == PHI4_OK && model != NULL);
    if (!model) return 1;
    phi4_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(phi4_model_get_info(model, &info) == PHI4_OK && info.vocab_size > 0 && info.layer_count > 0);
    /* An older, shorter info struct: fields past its size are not written. */
    struct { size_t struct_size; int32_t vocab_size; int32_t sentinel; } small = {sizeof(size_t) + 4, 0, 12345};
    CHECK(phi4_model_get_info(model, (phi4_model_info *)&small) == PHI4_OK && small.vocab_size == info.vocab_size &&
          small.sentinel == 12345);
    int32_t eog[8];
    size_t n_eog = 0;
    CHECK(phi4_model_eog_tokens(model, eog, 8, &n_eog) == PHI4_OK && n_eog >= 2);
    EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_model_eog_tokens(model, eog, 1, &n_eog));

    /* The library installs no signal handlers: the host's stay as they were. (Sanitizer runtimes
     * install their own; tools/sanitize.sh sets PHI4_TEST_SANITIZER to skip this check.) */
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGPIPE, SIGINT, SIGTERM, SIGCHLD, SIGUSR1};
    for (size_t i = 0; !getenv("PHI4_TEST_SANITIZER") && i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        CHECK(sigaction(sigs[i], NULL, &sa) == 0 && sa.sa_handler == SIG_DFL);
    }

    test_tokenizer_errors(model, argv[2]);
    test_context_errors(model);
    test_embeddings_and_sampling(model);
    test_load_progress(argv[1]);

    int32_t prompt[1024], expected[256];
    size_t n_prompt = parse_ids(argv[3], prompt, 1024), n_expected = parse_ids(argv[4], expected, 256);
    test_greedy(model, prompt, n_prompt, expected, n_expected);
    test_prompt_lookup(model, prompt, n_prompt, expected, n_expected);
    test_batch(model, prompt, n_prompt, expected, n_expected);
    test_openai(model);
    test_constraints(model, prompt, n_prompt);

    /* Saved states: a restored context continues exactly like the original; bad states are
     * refused and change nothing; prefix reuse keeps the shared part. */
    {
        phi4_context *a = NULL, *b = NULL;
        CHECK(phi4_context_create(model, NULL, &a) == PHI4_OK && phi4_context_create(model, NULL, &b) == PHI4_OK);
        phi4_generate_params g;
        phi4_generate_params_init(&g, sizeof g);
        g.max_tokens = 8;
        phi4_sampling_params g_sampling;
        phi4_sampling_params_init(&g_sampling, sizeof g_sampling);
        g.sampling = &g_sampling;
        g_sampling.temperature = 0;
        phi4_stop_reason why;
        CHECK(phi4_generate(a, prompt, n_prompt / 2, &g, NULL, NULL, &why) == PHI4_OK);
        size_t size = 0;
        EXPECT(PHI4_ERR_BUFFER_TOO_SMALL, phi4_context_save_state(a, NULL, 0, &size));
        CHECK(size > 0);
        unsigned char *state = malloc(size);
        CHECK(phi4_context_save_state(a, state, size, &size) == PHI4_OK);
        CHECK(phi4_context_save_file(a, ".build-ctest/state.bin") == PHI4_OK);
        int32_t out_a[16], out_b[16];
        size_t na = 0, nb = 0;
        const int32_t saved_len = phi4_context_token_count(a);
        for (int k = 0; k < 2; k++) {
            phi4_context *c = k == 0 ? a : b;
            if (k == 1) CHECK(phi4_context_load_state(b, state, size) == PHI4_OK);
            CHECK(phi4_context_token_count(c) == saved_len);
            int32_t *out = k == 0 ? out_a : out_b;
            size_t *n = k == 0 ? &na : &nb;
            CHECK(phi4_eval(c, prompt + n_prompt / 2, 3, 0) == PHI4_OK);
            float *lg = malloc(sizeof(float) * (size_t)info.vocab_size);
            for (int i = 0; i < 8; i++) {
                phi4_get_logits(c, -1, lg, (size_t)info.vocab_size, NULL);
                int32_t best = 0;
                for (int32_t v = 1; v < info.vocab_size; v++) if (lg[v] > lg[best]) best = v;
                out[(*n)++] = best;
                phi4_eval(c, &best, 1, 0);
            }
            free(lg);
        }
        CHECK(na == nb && memcmp(out_a, out_b, na * sizeof(int32_t)) == 0);
        phi4_context *f = NULL;
        CHECK(phi4_context_create(model, NULL, &f) == PHI4_OK);
        CHECK(phi4_context_load_file(f, ".build-ctest/state.bin") == PHI4_OK);
        CHECK(phi4_context_token_count(f) == saved_len);
        int32_t before = phi4_context_token_count(b);
        state[size / 2] ^= 1;
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_load_state(b, state, size));
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_load_state(b, state, size - 1));
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_load_state(b, NULL, size));
        EXPECT(PHI4_ERR_IO, phi4_context_load_file(b, "/nonexistent/state.bin"));
        CHECK(phi4_context_token_count(b) == before);
        size_t kept = 0;
        CHECK(phi4_context_reset(f) == PHI4_OK && phi4_eval(f, prompt, n_prompt, 0) == PHI4_OK);
        CHECK(phi4_context_reuse_prefix(f, prompt, n_prompt / 2, &kept) == PHI4_OK && kept == n_prompt / 2 - 1);
        CHECK(phi4_context_token_count(f) == (int32_t)kept);
        EXPECT(PHI4_ERR_INVALID_ARGUMENT, phi4_context_reuse_prefix(f, prompt, 0, &kept));
        free(state);
        phi4_context_free(a);
        phi4_context_free(b);
        phi4_context_free(f);
    }

    /* A context keeps its model alive after the caller frees the model. */
    phi4_context *ctx = NULL;
    CHECK(phi4_context_create(model, NULL, &ctx) == PHI4_OK);
    phi4_model_free(model);
    EXPECT(PHI4_ERR_INVALID_HANDLE, phi4_model_get_info(model, &info));
    phi4_generate_params gp;
    phi4_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 4;
    phi4_stop_reason reason;
    CHECK(phi4_generate(ctx, prompt, n_prompt, &gp, NULL, NULL, &reason) == PHI4_OK);
    phi4_context_free(ctx);

    /* Load / use / free cycles. */
    int cycle_ok = 0;
    for (int i = 0; i < cycles; i++) {
        phi4_model *m = NULL;
        phi4_context *c = NULL;
        if (phi4_model_load(argv[1], NULL, &m) != PHI4_OK) break;
        if (phi4_context_create(m, NULL, &c) == PHI4_OK && phi4_generate(c, prompt, n_prompt, &gp, NULL, NULL, &reason) == PHI4_OK)
            cycle_ok++;
        phi4_context_free(c);
        phi4_model_free(m);
    }
    CHECK(cycle_ok == cycles);

    printf("C ABI: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
