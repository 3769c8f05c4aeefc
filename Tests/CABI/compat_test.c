/* compat_test.c — the params structs across header versions.
 *
 * "Old" programs: each params struct is declared the way an older header would have declared
 * it (a prefix of today's fields), allocated on the heap at exactly that size, initialised and
 * passed to the library through its own size. Run under valgrind by scripts/test-c.sh: the
 * library must neither read nor write one byte past the caller's struct, and the fields the old
 * struct lacks must take their defaults.
 *
 * "New" programs: each struct is declared longer than this library's (a newer header's fields
 * appended). Accepted when the unknown tail is all zero bytes; otherwise PHI4_ERR_UNSUPPORTED
 * with both sizes in the message.
 *
 *   compat_test MODEL_DIR
 */
#include <phi4.h>
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

/* ---- Older headers: prefixes of today's structs --------------------------------------------- */

typedef struct { size_t struct_size; } old_model_params;                       /* no fields yet */
typedef struct { size_t struct_size; int32_t weight_format; } old_model_params_1;  /* sizeof 16:
    check_memory falls in its padding, which phi4_model_params_init fills with the default */
typedef struct { size_t struct_size; int32_t n_ctx; } old_context_params;       /* sizeof 16 */
typedef struct { size_t struct_size; float temperature; } old_sampling_params;  /* sizeof 16 */
typedef struct { size_t struct_size; int32_t max_tokens; } old_generate_params; /* sizeof 16 */
typedef struct {
    size_t struct_size;
    int32_t max_tokens;
    const phi4_sampling_params *sampling;
    const char *const *stop_strings;
    size_t n_stop_strings;
} old_generate_params_2; /* no parse_special, top_logprobs, lookup */
typedef struct { size_t struct_size; int32_t vocab_size; } old_model_info;
typedef struct { size_t struct_size; int32_t n_slots; } old_batch_params;      /* sizeof 16 */
typedef struct { size_t struct_size; int64_t request; } old_batch_update;     /* sizeof 16 */

/* ---- A newer header: today's structs with fields appended ---------------------------------- */

typedef struct { phi4_model_params base; int64_t future[4]; } new_model_params;
typedef struct { phi4_context_params base; int64_t future[4]; } new_context_params;
typedef struct { phi4_sampling_params base; int64_t future[4]; } new_sampling_params;
typedef struct { phi4_generate_params base; int64_t future[4]; } new_generate_params;
typedef struct { phi4_model_info base; int64_t future[4]; } new_model_info;
typedef struct { phi4_batch_params base; int64_t future[4]; } new_batch_params;
typedef struct { phi4_batch_update base; int64_t future[4]; } new_batch_update;

/* A heap copy of exactly `size` bytes, so that valgrind sees any access past it. */
static void *exact(size_t size) {
    void *p = malloc(size);
    if (!p) abort();
    memset(p, 0xAB, size); /* garbage: init must set every byte the library will read */
    return p;
}

static int32_t pieces;
static int32_t count_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    (void)piece, (void)len, (void)token, (void)user_data;
    pieces++;
    return 1;
}

static int message_names(size_t a, size_t b) {
    char sa[32], sb[32];
    snprintf(sa, sizeof sa, "%zu", a);
    snprintf(sb, sizeof sb, "%zu", b);
    return strstr(phi4_last_error(), sa) != NULL && strstr(phi4_last_error(), sb) != NULL;
}

static void test_init_errors(void) {
    phi4_model_params mp;
    CHECK(phi4_model_params_init(NULL, sizeof mp) == PHI4_ERR_INVALID_ARGUMENT);
    CHECK(phi4_model_params_init(&mp, 4) == PHI4_ERR_INVALID_ARGUMENT);
    CHECK(phi4_model_params_init(&mp, (size_t)1 << 20) == PHI4_ERR_INVALID_ARGUMENT);
    CHECK(phi4_model_params_init(&mp, sizeof mp) == PHI4_OK);
    CHECK(mp.struct_size == sizeof mp && mp.weight_format == PHI4_WEIGHTS_F32 && mp.check_memory == 1);
    phi4_context_params cp;
    CHECK(phi4_context_params_init(&cp, sizeof cp) == PHI4_OK);
    CHECK(cp.struct_size == sizeof cp && cp.n_ctx == 0 && cp.n_batch == 512 && cp.n_threads == 0 &&
          cp.kv_type == PHI4_KV_DEFAULT);
    phi4_sampling_params sp;
    CHECK(phi4_sampling_params_init(&sp, sizeof sp) == PHI4_OK);
    CHECK(sp.struct_size == sizeof sp && sp.top_k == 40 && sp.n_logit_bias == 0 && sp.logit_bias_tokens == NULL);
    phi4_generate_params gp;
    CHECK(phi4_generate_params_init(&gp, sizeof gp) == PHI4_OK);
    CHECK(gp.struct_size == sizeof gp && gp.max_tokens == 256 && gp.sampling == NULL && gp.top_logprobs == -1 &&
          gp.lookup == 0 && gp.n_stop_strings == 0);
}

/* Batches through an older header (short params and update structs) and a newer one (longer). */
static void test_batch_layouts(phi4_model *model) {
    int32_t prompt[3] = {1, 2, 3};
    old_batch_params *op = exact(sizeof *op);
    CHECK(phi4_batch_params_init((phi4_batch_params *)op, sizeof *op) == PHI4_OK && op->n_slots == 4);
    op->n_slots = 2;
    phi4_batch *b = NULL;
    CHECK(phi4_batch_create(model, (const phi4_batch_params *)op, &b) == PHI4_OK); /* the rest: defaults */
    free(op);
    int64_t id = 0;
    old_generate_params *gp = exact(sizeof *gp);
    CHECK(phi4_generate_params_init((phi4_generate_params *)gp, sizeof *gp) == PHI4_OK);
    gp->max_tokens = 2;
    CHECK(b && phi4_batch_submit(b, prompt, 3, (const phi4_generate_params *)gp, &id) == PHI4_OK && id == 1);
    free(gp);
    size_t n = 0;
    CHECK(phi4_batch_step(b, &n) == PHI4_OK && n == 1);
    old_batch_update *ou = exact(sizeof *ou);
    ou->struct_size = sizeof *ou;
    CHECK(phi4_batch_get_update(b, 0, (phi4_batch_update *)ou) == PHI4_OK && ou->request == 1 && ou->struct_size == sizeof *ou);
    free(ou);
    new_batch_update *nu = exact(sizeof *nu);
    memset(nu, 0xAB, sizeof *nu);
    nu->base.struct_size = sizeof *nu;
    CHECK(phi4_batch_get_update(b, 0, &nu->base) == PHI4_OK && nu->base.request == 1 && nu->future[0] == 0 && nu->future[3] == 0);
    free(nu);
    phi4_batch_free(b);

    new_batch_params *np = exact(sizeof *np);
    CHECK(phi4_batch_params_init(&np->base, sizeof *np) == PHI4_OK && np->future[0] == 0 && np->base.prefill_chunk == 32);
    np->base.n_slots = 1;
    b = NULL;
    CHECK(phi4_batch_create(model, &np->base, &b) == PHI4_OK);
    phi4_batch_free(b);
    np->future[1] = 5;
    b = (phi4_batch *)0x1;
    CHECK(phi4_batch_create(model, &np->base, &b) == PHI4_ERR_UNSUPPORTED && b == NULL);
    CHECK(message_names(sizeof *np, sizeof(phi4_batch_params)));
    free(np);
}

/* An older program: every struct short, on the heap at its exact size. */
static void test_old_header(const char *model_dir) {
    phi4_model *model = NULL;
    old_model_params *mp0 = exact(sizeof *mp0);
    CHECK(phi4_model_params_init((phi4_model_params *)mp0, sizeof *mp0) == PHI4_OK && mp0->struct_size == sizeof *mp0);
    CHECK(phi4_model_load(model_dir, (const phi4_model_params *)mp0, &model) == PHI4_OK);
    phi4_model_free(model);
    free(mp0);

    old_model_params_1 *mp = exact(sizeof *mp);
    CHECK(phi4_model_params_init((phi4_model_params *)mp, sizeof *mp) == PHI4_OK);
    CHECK(mp->struct_size == sizeof *mp && mp->weight_format == PHI4_WEIGHTS_F32);
    mp->weight_format = PHI4_WEIGHTS_Q8_0;
    model = NULL;
    CHECK(phi4_model_load(model_dir, (const phi4_model_params *)mp, &model) == PHI4_OK);
    free(mp);
    if (!model) return;

    old_model_info *info = exact(sizeof *info);
    info->struct_size = sizeof *info;
    CHECK(phi4_model_get_info(model, (phi4_model_info *)info) == PHI4_OK && info->vocab_size > 0 &&
          info->struct_size == sizeof *info);
    free(info);

    old_context_params *cp = exact(sizeof *cp);
    CHECK(phi4_context_params_init((phi4_context_params *)cp, sizeof *cp) == PHI4_OK && cp->n_ctx == 0);
    cp->n_ctx = 64;
    phi4_context *ctx = NULL;
    CHECK(phi4_context_create(model, (const phi4_context_params *)cp, &ctx) == PHI4_OK);
    free(cp);
    if (!ctx) { phi4_model_free(model); return; }
    CHECK(phi4_context_capacity(ctx) == 64);

    old_sampling_params *sp = exact(sizeof *sp);
    CHECK(phi4_sampling_params_init((phi4_sampling_params *)sp, sizeof *sp) == PHI4_OK && sp->temperature > 0.5f);
    sp->temperature = 0; /* greedy; top_k, penalties, logit bias: defaults */
    phi4_sampler *sampler = NULL;
    CHECK(phi4_sampler_create((const phi4_sampling_params *)sp, &sampler) == PHI4_OK);
    phi4_sampler_free(sampler);

    int32_t prompt[3] = {10, 20, 30};
    old_generate_params *gp = exact(sizeof *gp);
    CHECK(phi4_generate_params_init((phi4_generate_params *)gp, sizeof *gp) == PHI4_OK && gp->max_tokens == 256);
    gp->max_tokens = 3;
    pieces = 0;
    phi4_stop_reason why = PHI4_STOP_NONE;
    CHECK(phi4_generate(ctx, prompt, 3, (const phi4_generate_params *)gp, count_piece, NULL, &why) == PHI4_OK);
    CHECK(phi4_generation_token_count(ctx) <= 3 && phi4_generation_token_count(ctx) >= 1);
    /* top_logprobs is past the old struct: its default (-1, none recorded) applies. */
    phi4_token_logprob lp;
    CHECK(phi4_generation_logprob(ctx, 0, &lp, NULL, 0, NULL) == PHI4_ERR_INVALID_ARGUMENT);
    free(gp);

    /* A struct that has the sampling pointer but not the later fields; the pointed-to sampling
     * params are themselves an old, short struct. */
    old_generate_params_2 *g2 = exact(sizeof *g2);
    CHECK(phi4_generate_params_init((phi4_generate_params *)g2, sizeof *g2) == PHI4_OK && g2->sampling == NULL);
    g2->max_tokens = 4;
    g2->sampling = (const phi4_sampling_params *)sp;
    CHECK(phi4_context_reset(ctx) == PHI4_OK);
    CHECK(phi4_generate(ctx, prompt, 3, (const phi4_generate_params *)g2, NULL, NULL, &why) == PHI4_OK);
    int32_t n_greedy = phi4_generation_token_count(ctx);
    /* The same through today's full struct gives the same greedy tokens. */
    phi4_context_params full_cp;
    phi4_context_params_init(&full_cp, sizeof full_cp);
    full_cp.n_ctx = 64;
    phi4_context *ctx2 = NULL;
    CHECK(phi4_context_create(model, &full_cp, &ctx2) == PHI4_OK);
    phi4_sampling_params full_sp;
    phi4_sampling_params_init(&full_sp, sizeof full_sp);
    full_sp.temperature = 0;
    phi4_generate_params full_gp;
    phi4_generate_params_init(&full_gp, sizeof full_gp);
    full_gp.max_tokens = 4;
    full_gp.sampling = &full_sp;
    CHECK(phi4_generate(ctx2, prompt, 3, &full_gp, NULL, NULL, &why) == PHI4_OK);
    CHECK(phi4_generation_token_count(ctx2) == n_greedy);
    CHECK(phi4_context_token_count(ctx2) == phi4_context_token_count(ctx));
    phi4_context_free(ctx2);
    free(g2);
    free(sp);

    phi4_context_free(ctx);
    phi4_model_free(model);
}

/* A newer program against this library. */
static void test_new_header(const char *model_dir) {
    new_model_params *mp = exact(sizeof *mp);
    CHECK(phi4_model_params_init(&mp->base, sizeof *mp) == PHI4_OK);
    CHECK(mp->base.struct_size == sizeof *mp && mp->future[0] == 0 && mp->future[3] == 0);
    phi4_model *model = NULL;
    CHECK(phi4_model_load(model_dir, &mp->base, &model) == PHI4_OK); /* zero tail: accepted */
    mp->future[2] = 7;
    phi4_model *m2 = (phi4_model *)0x1;
    CHECK(phi4_model_load(model_dir, &mp->base, &m2) == PHI4_ERR_UNSUPPORTED && m2 == NULL);
    CHECK(message_names(sizeof *mp, sizeof(phi4_model_params)));
    free(mp);
    if (!model) return;

    new_model_info *info = exact(sizeof *info);
    info->base.struct_size = sizeof *info;
    CHECK(phi4_model_get_info(model, &info->base) == PHI4_OK);
    CHECK(info->base.vocab_size > 0 && info->future[0] == 0 && info->future[3] == 0); /* tail zeroed */
    free(info);

    new_context_params *cp = exact(sizeof *cp);
    CHECK(phi4_context_params_init(&cp->base, sizeof *cp) == PHI4_OK);
    cp->base.n_ctx = 32;
    phi4_context *ctx = NULL;
    CHECK(phi4_context_create(model, &cp->base, &ctx) == PHI4_OK);
    cp->future[0] = 1;
    phi4_context *c2 = (phi4_context *)0x1;
    CHECK(phi4_context_create(model, &cp->base, &c2) == PHI4_ERR_UNSUPPORTED && c2 == NULL);
    CHECK(message_names(sizeof *cp, sizeof(phi4_context_params)));
    free(cp);

    new_sampling_params *sp = exact(sizeof *sp);
    CHECK(phi4_sampling_params_init(&sp->base, sizeof *sp) == PHI4_OK);
    sp->base.temperature = 0;
    phi4_sampler *sampler = NULL;
    CHECK(phi4_sampler_create(&sp->base, &sampler) == PHI4_OK);
    phi4_sampler_free(sampler);
    sp->future[3] = -1;
    CHECK(phi4_sampler_create(&sp->base, &sampler) == PHI4_ERR_UNSUPPORTED);
    CHECK(message_names(sizeof *sp, sizeof(phi4_sampling_params)));
    sp->future[3] = 0;

    new_generate_params *gp = exact(sizeof *gp);
    CHECK(phi4_generate_params_init(&gp->base, sizeof *gp) == PHI4_OK);
    gp->base.max_tokens = 2;
    gp->base.sampling = &sp->base;
    int32_t prompt[3] = {10, 20, 30};
    phi4_stop_reason why = PHI4_STOP_NONE;
    if (ctx) {
        CHECK(phi4_generate(ctx, prompt, 3, &gp->base, NULL, NULL, &why) == PHI4_OK);
        int32_t before = phi4_context_token_count(ctx);
        gp->future[1] = 5;
        CHECK(phi4_generate(ctx, prompt, 3, &gp->base, NULL, NULL, &why) == PHI4_ERR_UNSUPPORTED);
        CHECK(message_names(sizeof *gp, sizeof(phi4_generate_params)));
        CHECK(phi4_context_token_count(ctx) == before); /* the failed call changed nothing */
        gp->future[1] = 0;
        /* The nested sampling struct is checked the same way. */
        sp->future[0] = 9;
        CHECK(phi4_generate(ctx, prompt, 3, &gp->base, NULL, NULL, &why) == PHI4_ERR_UNSUPPORTED);
        CHECK(message_names(sizeof *sp, sizeof(phi4_sampling_params)));
    }
    free(gp);
    free(sp);
    phi4_context_free(ctx);
    phi4_model_free(model);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: compat_test MODEL_DIR\n");
        return 2;
    }
    test_init_errors();
    test_old_header(argv[1]);
    test_new_header(argv[1]);
    phi4_model *model = NULL;
    CHECK(phi4_model_load(argv[1], NULL, &model) == PHI4_OK);
    if (model) test_batch_layouts(model);
    phi4_model_free(model);
    printf("compat_test: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
