/* fuzz_abi.c — a seeded mutation fuzzer over the C ABI (no coverage instrumentation needed).
 *
 * Each target feeds mutated bytes to one entry point of libphi4 the way an application would:
 *
 *   gguf         a GGUF model file                        -> phi4_model_load
 *   safetensors  model.safetensors in an HF directory      -> phi4_model_load
 *   config       config.json in an HF directory            -> phi4_model_load
 *   tokenizer    tokenizer.json in a tokenizer directory   -> phi4_tokenizer_load
 *   encode       arbitrary bytes                           -> phi4_tokenize / phi4_detokenize
 *   chat         NUL-separated role/content fields         -> phi4_chat_template
 *   state        a saved context state                     -> phi4_context_load_state
 *
 * A model or tokenizer that loads is then used (info, a short context, eval of ids taken from
 * the input, greedy generation, tokenize/detokenize), so a file that passes validation with
 * inconsistent numbers is caught when it is used. Besides "never crash", the encode target checks
 * an oracle: valid UTF-8 encoded without specials decodes back to the same bytes, and invalid
 * UTF-8 is refused with PHI4_ERR_INVALID_ARGUMENT. A violation calls abort(), so it is found like
 * a crash.
 *
 * Before every execution the input is written to WORK/current, so when the process dies the
 * input that killed it is on disk (tools/fuzz.sh copies it into Tests/Fuzz/regressions/).
 *
 *   fuzz_abi TARGET --work DIR --fixtures DIR [--seconds S] [--runs N] [--seed K]
 *   fuzz_abi TARGET --work DIR --fixtures DIR --replay FILE...
 *
 * FIXTURES is Tests/Phi4Tests/Fixtures. The last line printed is
 *   "TARGET: N executions, A accepted, R refused".
 */
#define _GNU_SOURCE
#include <phi4.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- small helpers ---------------------------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len;
} bytes;

static void die(const char *what) {
    fprintf(stderr, "fuzz_abi: %s: %s\n", what, strerror(errno));
    exit(2);
}

static bytes read_file(const char *path) {
    bytes b = {0, 0};
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc((size_t)n + 1);
    if (!b.data) die("malloc");
    b.len = fread(b.data, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void write_file(const char *path, const uint8_t *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    if (len && fwrite(data, 1, len, f) != len) die(path);
    if (fclose(f) != 0) die(path);
}

static void copy_file(const char *from, const char *to) {
    bytes b = read_file(from);
    write_file(to, b.data, b.len);
    free(b.data);
}

static uint64_t rng;
static uint64_t rnd(void) { /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}
static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- mutation engine ---------------------------------------------------------------------- */

static const char *const json_dict[] = {
    "\"", "\\", "\\u", "\\ud800", "\\udc00", "\\u0000", "{", "}", "[", "]", ":", ",", "null", "true", "false",
    "0", "-1", "1e999", "-0", "2147483648", "4294967296", "9223372036854775807", "18446744073709551616",
    "1.5", "NaN", "\"vocab_size\":", "\"hidden_size\":", "\"num_hidden_layers\":", "\"num_attention_heads\":",
    "\"num_key_value_heads\":", "\"intermediate_size\":", "\"max_position_embeddings\":", "\"rope_theta\":",
    "\"rope_scaling\":", "\"partial_rotary_factor\":", "\"merges\":", "\"vocab\":", "\"added_tokens\":",
    "\"id\":", "\"content\":", "\"special\":", "\"model\":", "\"type\":", "\"BPE\"", "\"Ġ\"", "\"\xc4\xa0\"",
    "<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>", "<|dummy_85|>", "\xff", "\xc3", "\xe2\x82",
    "\xf0\x9f\x98", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\x80", "\r\n", "\t", " ", "\xe3\x80\x80", "'s", "'S",
    "123456789", "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9", "\xcc\x81", "\0",
};
static const size_t json_dict_n = sizeof(json_dict) / sizeof(json_dict[0]);

static const uint64_t interesting[] = {
    0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 1024, 4096, 32767, 32768, 65535,
    65536, 0x7fffffffULL, 0x80000000ULL, 0xffffffffULL, 0x100000000ULL, 1ULL << 40, 0x7fffffffffffffffULL,
    0x8000000000000000ULL, 0xffffffffffffffffULL,
};

/* Mutates b in place (1–6 stacked mutations). `bias` > 0 sends half the positions into the first
 * `bias` bytes (the file's header, where the structure is). `pool` gives splice partners. */
static void mutate(bytes *b, size_t cap, size_t bias, int text, bytes *pool, size_t pool_n) {
    int n = 1 + (int)below(6);
    for (int m = 0; m < n; m++) {
        size_t len = b->len;
        size_t pos = (bias && (rnd() & 1)) ? below(bias < len ? bias : len) : below(len);
        switch (below(text ? 12 : 11)) {
        case 0: /* flip a bit */
            if (len) b->data[pos] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* random byte */
            if (len) b->data[pos] = (uint8_t)rnd();
            break;
        case 2: { /* an interesting little-endian value of 1, 2, 4 or 8 bytes */
            size_t w = (size_t)1 << below(4);
            uint64_t v = interesting[below(sizeof(interesting) / sizeof(interesting[0]))];
            if (rnd() & 1) v = len + below(3) - 1; /* sizes near the file's length */
            for (size_t i = 0; i < w && pos + i < len; i++) b->data[pos + i] = (uint8_t)(v >> (8 * i));
            break;
        }
        case 3: { /* add or subtract a small delta to a 4- or 8-byte value */
            size_t w = (rnd() & 1) ? 8 : 4;
            if (pos + w > len) break;
            uint64_t v = 0;
            for (size_t i = 0; i < w; i++) v |= (uint64_t)b->data[pos + i] << (8 * i);
            v += (rnd() & 1) ? (1 + below(16)) : (uint64_t)-(int64_t)(1 + below(16));
            for (size_t i = 0; i < w; i++) b->data[pos + i] = (uint8_t)(v >> (8 * i));
            break;
        }
        case 4: { /* delete a chunk */
            size_t k = 1 + below(len > pos ? (len - pos < 64 ? len - pos : 64) : 1);
            if (pos + k <= len) {
                memmove(b->data + pos, b->data + pos + k, len - pos - k);
                b->len -= k;
            }
            break;
        }
        case 5: { /* insert random bytes */
            size_t k = 1 + below(32);
            if (len + k > cap) break;
            memmove(b->data + pos + k, b->data + pos, len - pos);
            for (size_t i = 0; i < k; i++) b->data[pos + i] = (uint8_t)rnd();
            b->len += k;
            break;
        }
        case 6: { /* copy a chunk over another place */
            if (len < 2) break;
            size_t from = below(len), k = 1 + below(64);
            if (from + k > len) k = len - from;
            if (pos + k > len) k = len - pos;
            memmove(b->data + pos, b->data + from, k);
            break;
        }
        case 7: /* truncate */
            b->len = pos;
            break;
        case 8: { /* splice: the tail of another input */
            if (!pool_n) break;
            bytes *o = &pool[below(pool_n)];
            if (!o->len) break;
            size_t from = below(o->len), k = o->len - from;
            if (pos + k > cap) k = cap - pos;
            memcpy(b->data + pos, o->data + from, k);
            b->len = pos + k;
            break;
        }
        case 9: { /* a run of one byte */
            size_t k = 1 + below(128);
            if (len + k > cap) break;
            memmove(b->data + pos + k, b->data + pos, len - pos);
            memset(b->data + pos, (rnd() & 1) ? b->data[pos ? pos - 1 : 0] : (int)below(256), k);
            b->len += k;
            break;
        }
        case 10: /* zero a region */
            if (len) {
                size_t k = 1 + below(16);
                if (pos + k > len) k = len - pos;
                memset(b->data + pos, 0, k);
            }
            break;
        case 11: { /* insert a dictionary token (text formats) */
            const char *t = json_dict[below(json_dict_n)];
            size_t k = strlen(t) + (t[0] == 0);
            if (len + k > cap) break;
            memmove(b->data + pos + k, b->data + pos, len - pos);
            memcpy(b->data + pos, t, k);
            b->len += k;
            break;
        }
        }
    }
}

/* ---- targets ------------------------------------------------------------------------------ */

static char work[1024], fixtures[1024];
static phi4_tokenizer *shared_tokenizer; /* for encode and chat */
static phi4_model *shared_model;         /* for state */
static phi4_context *shared_context;

static void path_join(char *out, size_t cap, const char *a, const char *b) { snprintf(out, cap, "%s/%s", a, b); }

/* Uses a model that loaded: everything must return a status, nothing may trap. */
static void exercise_model(phi4_model *model, const bytes *in) {
    phi4_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (phi4_model_get_info(model, &info) != PHI4_OK) abort();
    int32_t eog[16];
    size_t n_eog = 0;
    phi4_model_eog_tokens(model, eog, 16, &n_eog);
    const phi4_tokenizer *tok = phi4_model_tokenizer(model);
    int32_t ids[64];
    size_t n_ids = 0;
    phi4_tokenize(tok, "Hello world", 11, 1, ids, 64, &n_ids);

    phi4_context_params cp;
    phi4_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 24;
    cp.n_threads = 2;
    phi4_context *ctx = NULL;
    if (phi4_context_create(model, &cp, &ctx) != PHI4_OK) return;
    /* ids from the input bytes, some out of range */
    int32_t prompt[8];
    size_t n = 0;
    for (size_t i = 0; i + 1 < in->len && n < 8; i += 1 + in->len / 9) {
        int32_t v = (int32_t)(in->data[i] | (in->data[i + 1] << 8));
        prompt[n++] = (i % 3 == 0) ? v : (info.vocab_size > 0 ? v % info.vocab_size : v);
    }
    if (n) phi4_eval(ctx, prompt, n, (int32_t)(in->len & 1));
    phi4_context_reset(ctx);
    if (n_ids > 8) n_ids = 8;
    phi4_generate_params gp;
    phi4_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 4;
    phi4_sampling_params gp_sampling;
    phi4_sampling_params_init(&gp_sampling, sizeof gp_sampling);
    gp.sampling = &gp_sampling;
    gp_sampling.temperature = 0;
    phi4_stop_reason why = 0;
    phi4_generate(ctx, ids, n_ids, &gp, NULL, NULL, &why);
    float logits[8];
    size_t rows = 0;
    phi4_get_logits(ctx, -1, logits, 8, &rows);
    /* Embeddings of the input-derived ids (some out of range, some inputs empty), any pooling code;
     * the context's tokens, and sampling of input-derived logits (NaN and infinities included). */
    if (n) {
        size_t lengths[3] = {n / 2, n - n / 2, (size_t)(in->len % 3)};
        size_t n_inputs = 1 + in->len % 3, n_out = 0, total = 0;
        for (size_t i = 0; i < n_inputs; i++) total += lengths[i];
        int32_t all[16];
        for (size_t i = 0; i < total && i < 16; i++) all[i] = prompt[i % n];
        size_t cap = (size_t)(info.hidden_size > 0 ? info.hidden_size : 1) * 16;
        float *out = malloc(sizeof(float) * cap);
        if (out && total <= 16) {
            phi4_embed(ctx, all, lengths, n_inputs, (int32_t)(in->len % 6) - 1, (int32_t)(in->len & 2), out, cap, &n_out);
        }
        free(out);
    }
    int32_t seen[32];
    size_t n_seen = 0;
    phi4_context_tokens(ctx, seen, 32, &n_seen);
    phi4_sampler *sampler = NULL;
    phi4_sampling_params sp;
    phi4_sampling_params_init(&sp, sizeof sp);
    sp.mirostat = (int32_t)(in->len % 3);
    sp.typical_p = (in->len & 4) ? 0.5f : 1.0f;
    if (phi4_sampler_create(&sp, &sampler) == PHI4_OK) {
        float row[8];
        for (size_t i = 0; i < 8; i++) {
            uint32_t bits = 0;
            for (size_t k = 0; k < 4; k++) bits |= (uint32_t)(in->len ? in->data[(i * 4 + k) % in->len] : 0) << (8 * k);
            memcpy(&row[i], &bits, sizeof bits);
        }
        int32_t tok = 0;
        phi4_sample_logits(sampler, row, 8, prompt, n, &tok);
        phi4_sampler_free(sampler);
    }
    phi4_context_free(ctx);
}

static void exercise_tokenizer(const phi4_tokenizer *tok, const bytes *in) {
    int32_t ids[4096];
    size_t n = 0;
    const char *texts[] = {"Hello, world! <|im_end|> 123 'll  \n", "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80"};
    for (int t = 0; t < 2; t++) {
        if (phi4_tokenize(tok, texts[t], strlen(texts[t]), t, ids, 4096, &n) == PHI4_OK) {
            char text[8192];
            size_t m = 0;
            phi4_detokenize(tok, ids, n, text, sizeof text, &m);
        }
    }
    size_t len = in->len < 2048 ? in->len : 2048;
    if (phi4_tokenize(tok, (const char *)in->data, len, 1, ids, 4096, &n) == PHI4_OK && n <= 4096) {
        char text[16384];
        size_t m = 0;
        phi4_detokenize(tok, ids, n, text, sizeof text, &m);
    }
    char piece[64];
    size_t m = 0;
    for (int32_t id = -2; id < 700; id += 37) phi4_token_to_piece(tok, id, piece, sizeof piece, &m);
    int32_t special = 0;
    phi4_token_lookup(tok, "<|im_end|>", &special);
}

/* Is b valid UTF-8 (no surrogates, no overlongs, ≤ U+10FFFF)? */
static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
        else return 0;
        if (i + k >= n) return 0; /* cut short */
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000)) return 0;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

/* Runs one input; returns 1 when the library accepted it (loaded / encoded), 0 when refused. */
static int run_one(const char *target, const bytes *in) {
    char path[8192];
    if (!strcmp(target, "gguf")) {
        path_join(path, sizeof path, work, "model.gguf");
        phi4_model *m = NULL;
        phi4_model_params p;
        phi4_model_params_init(&p, sizeof p);
        p.weight_format = (int32_t)(in->len % 4);
        if (phi4_model_load(path, &p, &m) != PHI4_OK) {
            if (m) abort(); /* a failed load leaves *out NULL */
            if (!phi4_last_error()[0]) abort();
            return 0;
        }
        exercise_model(m, in);
        phi4_model_free(m);
        return 1;
    }
    if (!strcmp(target, "safetensors") || !strcmp(target, "config")) {
        path_join(path, sizeof path, work, "model");
        phi4_model *m = NULL;
        if (phi4_model_load(path, NULL, &m) != PHI4_OK) {
            if (m || !phi4_last_error()[0]) abort();
            return 0;
        }
        exercise_model(m, in);
        phi4_model_free(m);
        return 1;
    }
    if (!strcmp(target, "tokenizer")) {
        path_join(path, sizeof path, work, "tok");
        phi4_tokenizer *t = NULL;
        if (phi4_tokenizer_load(path, &t) != PHI4_OK) {
            if (t || !phi4_last_error()[0]) abort();
            return 0;
        }
        exercise_tokenizer(t, in);
        phi4_tokenizer_free(t);
        return 1;
    }
    if (!strcmp(target, "encode")) {
        static int32_t ids[1 << 16];
        static char back[1 << 18];
        size_t n = 0;
        int accepted = 0;
        for (int special = 0; special < 2; special++) {
            phi4_status s = phi4_tokenize(shared_tokenizer, (const char *)in->data, in->len, special, ids,
                                          1 << 16, &n);
            int valid = valid_utf8(in->data, in->len);
            if (s == PHI4_OK && !valid) {
                fprintf(stderr, "oracle: invalid UTF-8 was accepted\n");
                abort();
            }
            if (s != PHI4_OK) {
                if (valid || s != PHI4_ERR_INVALID_ARGUMENT) {
                    fprintf(stderr, "oracle: valid UTF-8 refused: %s\n", phi4_last_error());
                    abort();
                }
                continue;
            }
            accepted = 1;
            size_t m = 0;
            if (phi4_detokenize(shared_tokenizer, ids, n, back, sizeof back, &m) != PHI4_OK) abort();
            if (special == 0 && (m != in->len || memcmp(back, in->data, m) != 0)) {
                fprintf(stderr, "oracle: decode(encode(text)) != text\n");
                abort();
            }
        }
        return accepted;
    }
    if (!strcmp(target, "chat")) {
        /* fields separated by NUL: role, content, role, content, ... (the copy is NUL-ended) */
        char *copy = malloc(in->len + 1);
        if (!copy) die("malloc");
        memcpy(copy, in->data, in->len);
        copy[in->len] = 0;
        phi4_chat_message msgs[16];
        size_t n = 0;
        char *p = copy, *end = copy + in->len;
        while (p <= end && n < 16) {
            char *role = p;
            p += strlen(p) + 1;
            char *content = p <= end ? p : NULL;
            if (content) p += strlen(p) + 1;
            msgs[n].role = (in->len % 7 == 3) ? NULL : role;
            msgs[n].content = content;
            n++;
        }
        static int32_t ids[1 << 16];
        size_t n_ids = 0;
        phi4_status s = phi4_chat_template(shared_tokenizer, msgs, n, (int32_t)(in->len & 1), ids, 1 << 16,
                                           &n_ids);
        free(copy);
        return s == PHI4_OK;
    }
    if (!strcmp(target, "state")) {
        /* A restored state must be refused with PHI4_ERR_INVALID_ARGUMENT or be usable. Half the
         * inputs get a valid checksum (FNV-1a of all but the last 8 bytes), so the checks behind
         * the checksum — counts, sizes, token ids — see mutated data too. */
        uint8_t *buf = malloc(in->len ? in->len : 1);
        memcpy(buf, in->data, in->len);
        if (in->len >= 8 && (in->len & 1)) {
            uint64_t h = 0xcbf29ce484222325ULL;
            for (size_t k = 0; k < in->len - 8; k++) h = (h ^ buf[k]) * 0x100000001b3ULL;
            for (int k = 0; k < 8; k++) buf[in->len - 8 + k] = (uint8_t)(h >> (8 * k));
        }
        phi4_status st = phi4_context_load_state(shared_context, buf, in->len);
        free(buf);
        if (st != PHI4_OK) {
            if (st != PHI4_ERR_INVALID_ARGUMENT) abort();
            return 0;
        }
        int32_t next = 1;
        if (phi4_context_token_count(shared_context) < phi4_context_capacity(shared_context) &&
            phi4_eval(shared_context, &next, 1, 0) != PHI4_OK)
            abort();
        return 1;
    }
    fprintf(stderr, "fuzz_abi: unknown target %s\n", target);
    exit(2);
}

/* Writes the input where the target reads it (and to WORK/current). */
static void stage(const char *target, const bytes *in) {
    char path[8192];
    path_join(path, sizeof path, work, "current");
    write_file(path, in->data, in->len);
    if (!strcmp(target, "gguf")) {
        path_join(path, sizeof path, work, "model.gguf");
        write_file(path, in->data, in->len);
    } else if (!strcmp(target, "safetensors")) {
        path_join(path, sizeof path, work, "model/model.safetensors");
        write_file(path, in->data, in->len);
    } else if (!strcmp(target, "config")) {
        path_join(path, sizeof path, work, "model/config.json");
        write_file(path, in->data, in->len);
    } else if (!strcmp(target, "tokenizer")) {
        path_join(path, sizeof path, work, "tok/tokenizer.json");
        write_file(path, in->data, in->len);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_abi TARGET --work DIR --fixtures DIR [--seconds S] [--runs N] [--seed K] "
                        "[--replay FILE...]\n");
        return 2;
    }
    const char *target = argv[1];
    double seconds = 0;
    long runs = 0;
    uint64_t seed = 1;
    int replay = 0;
    int i = 2;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--work") && i + 1 < argc) snprintf(work, sizeof work, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--fixtures") && i + 1 < argc) snprintf(fixtures, sizeof fixtures, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--replay")) { replay = ++i; break; }
        else { fprintf(stderr, "fuzz_abi: bad argument %s\n", argv[i]); return 2; }
    }
    if (!work[0] || !fixtures[0]) { fprintf(stderr, "fuzz_abi: --work and --fixtures are required\n"); return 2; }
    mkdir(work, 0755);
    rng = seed * 0x9E3779B97F4A7C15ULL + 1;

    /* Seeds and the fixed parts of the directories the file targets load. */
    char a[8192], b[8192];
    bytes seeds[4];
    size_t n_seeds = 0, bias = 0;
    int text = 0;
    const char *model_dir = "models/gqa4";
    if (!strcmp(target, "gguf")) {
        path_join(a, sizeof a, fixtures, "quant/gqa8-q8_0-gguf-package.gguf");
        seeds[n_seeds++] = read_file(a);
        bias = 32768;
    } else if (!strcmp(target, "safetensors") || !strcmp(target, "config")) {
        path_join(b, sizeof b, work, "model");
        mkdir(b, 0755);
        const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                               "generation_config.json"};
        for (int f = 0; f < 5; f++) {
            char from[16384], to[16384];
            snprintf(from, sizeof from, "%s/%s/%s", fixtures, model_dir, files[f]);
            snprintf(to, sizeof to, "%s/%s", b, files[f]);
            copy_file(from, to);
        }
        snprintf(a, sizeof a, "%s/%s/%s", fixtures, model_dir,
                 !strcmp(target, "config") ? "config.json" : "model.safetensors");
        seeds[n_seeds++] = read_file(a);
        if (!strcmp(target, "config")) {
            text = 1;
        } else { /* the safetensors header: 8-byte length + JSON */
            uint64_t h = 0;
            for (int k = 0; k < 8; k++) h |= (uint64_t)seeds[0].data[k] << (8 * k);
            bias = (size_t)(8 + h);
        }
    } else if (!strcmp(target, "tokenizer")) {
        path_join(b, sizeof b, work, "tok");
        mkdir(b, 0755);
        snprintf(a, sizeof a, "%s/tokenizer/small/tokenizer_config.json", fixtures);
        snprintf(b, sizeof b, "%s/tok/tokenizer_config.json", work);
        copy_file(a, b);
        snprintf(a, sizeof a, "%s/tokenizer/small/tokenizer.json", fixtures);
        seeds[n_seeds++] = read_file(a);
        text = 1;
    } else if (!strcmp(target, "encode") || !strcmp(target, "chat")) {
        snprintf(a, sizeof a, "%s/tokenizer/phi4", fixtures);
        if (phi4_tokenizer_load(a, &shared_tokenizer) != PHI4_OK) {
            fprintf(stderr, "fuzz_abi: %s\n", phi4_last_error());
            return 2;
        }
        static const char enc_seed[] = "Hello, world! It's  12345 \xe4\xbd\xa0\xe5\xa5\xbd\r\n\t<|im_start|>user"
                                       "<|im_sep|>caf\xc3\xa9 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd   \n\n  def f(x):\n    return x";
        static const char chat_seed[] = "system\0You are helpful.\0user\0Hi <|im_end|> there\0assistant\0Hello!";
        bytes s;
        const char *src = !strcmp(target, "encode") ? enc_seed : chat_seed;
        size_t n = !strcmp(target, "encode") ? sizeof enc_seed - 1 : sizeof chat_seed - 1;
        s.data = malloc(n);
        memcpy(s.data, src, n);
        s.len = n;
        seeds[n_seeds++] = s;
        text = 1;
    } else if (!strcmp(target, "state")) {
        /* The seed: the state of a context that evaluated 20 tokens of the fixture model. */
        snprintf(a, sizeof a, "%s/%s", fixtures, model_dir);
        phi4_context_params cp;
        phi4_context_params_init(&cp, sizeof cp);
        cp.n_ctx = 64;
        if (phi4_model_load(a, NULL, &shared_model) != PHI4_OK ||
            phi4_context_create(shared_model, &cp, &shared_context) != PHI4_OK) {
            fprintf(stderr, "fuzz_abi: %s\n", phi4_last_error());
            return 2;
        }
        int32_t ids[20];
        for (int k = 0; k < 20; k++) ids[k] = 3 + 7 * k;
        size_t size = 0;
        phi4_eval(shared_context, ids, 20, 0);
        phi4_context_save_state(shared_context, NULL, 0, &size);
        bytes st = {malloc(size), size};
        if (!st.data || phi4_context_save_state(shared_context, st.data, size, &size) != PHI4_OK) return 2;
        seeds[n_seeds++] = st;
        bias = 64;
    } else {
        fprintf(stderr, "fuzz_abi: unknown target %s (gguf, safetensors, config, tokenizer, encode, chat, state)\n", target);
        return 2;
    }

    long executions = 0, accepted = 0;
    if (replay) {
        for (; replay < argc; replay++) {
            bytes in = read_file(argv[replay]);
            stage(target, &in);
            accepted += run_one(target, &in);
            executions++;
            free(in.data);
        }
        printf("%s: %ld executions, %ld accepted, %ld refused\n", target, executions, accepted,
               executions - accepted);
        return 0;
    }

    /* The pool: the seeds, plus mutants that were accepted (they reach deeper code). */
    enum { POOL_MAX = 64 };
    bytes pool[POOL_MAX];
    size_t pool_n = 0;
    for (size_t s = 0; s < n_seeds; s++) pool[pool_n++] = seeds[s];
    size_t cap = seeds[0].len * 2 + 4096;
    bytes cur = {malloc(cap), 0};
    if (!cur.data) die("malloc");
    double start = now();
    while ((runs && executions < runs) || (!runs && now() - start < seconds) || (!runs && seconds <= 0 && executions < 1000)) {
        bytes *base = &pool[below(pool_n)];
        memcpy(cur.data, base->data, base->len);
        cur.len = base->len;
        mutate(&cur, cap, bias, text, pool, pool_n);
        stage(target, &cur);
        int ok = run_one(target, &cur);
        executions++;
        accepted += ok;
        if (ok && (rnd() % 8 == 0)) { /* keep some accepted mutants as bases */
            size_t slot;
            if (pool_n < POOL_MAX) {
                slot = pool_n++;
            } else {
                slot = n_seeds + below(POOL_MAX - n_seeds);
                free(pool[slot].data);
            }
            pool[slot].data = malloc(cur.len ? cur.len : 1);
            memcpy(pool[slot].data, cur.data, cur.len);
            pool[slot].len = cur.len;
        }
    }
    printf("%s: %ld executions, %ld accepted, %ld refused\n", target, executions, accepted, executions - accepted);
    return 0;
}
