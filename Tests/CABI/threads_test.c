/* threads_test.c — one model shared by threads with their own contexts; cancellation from
 * another thread; a busy context refuses a second thread.
 *
 *   threads_test MODEL_DIR "prompt A ids" "prompt B ids"
 */
#include <phi4.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (cond) passed++;                                                                             \
        else {                                                                                          \
            failed++;                                                                                   \
            fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", __FILE__, __LINE__, #cond, phi4_last_error()); \
        }                                                                                               \
    } while (0)

enum { MAX_OUT = 512 };

typedef struct {
    phi4_model *model;
    int32_t prompt[1024];
    size_t n_prompt;
    int32_t out[MAX_OUT];
    size_t n_out;
    int max_tokens;
    phi4_status status;
    phi4_stop_reason reason;
    phi4_context *ctx;             /* set by the worker once created */
    volatile int started;          /* set on the first piece */
    int slow_first_piece;          /* sleep on the first piece (to test BUSY) */
} job;

/* A long evaluation on its own thread, for cancellation during prefill. */
typedef struct {
    phi4_context *ctx;
    const int32_t *ids;
    size_t n;
    phi4_status status;
    volatile int started;
} prefill_job;

static void *run_prefill(void *arg) {
    prefill_job *p = arg;
    p->started = 1;
    p->status = phi4_eval(p->ctx, p->ids, p->n, 0);
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int32_t collect(const char *piece, size_t len, int32_t token, void *user_data) {
    (void)piece;
    (void)len;
    job *j = user_data;
    if (j->n_out < MAX_OUT) j->out[j->n_out++] = token;
    if (!j->started) {
        j->started = 1;
        if (j->slow_first_piece) usleep(300 * 1000);
    }
    return 1;
}

static void *run_job(void *arg) {
    job *j = arg;
    phi4_context_params cp;
    phi4_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 1024;
    cp.n_threads = 1;
    if (phi4_context_create(j->model, &cp, &j->ctx) != PHI4_OK) {
        j->status = PHI4_ERR_INTERNAL;
        return NULL;
    }
    phi4_generate_params gp;
    phi4_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = j->max_tokens;
    phi4_sampling_params gp_sampling;
    phi4_sampling_params_init(&gp_sampling, sizeof gp_sampling);
    gp.sampling = &gp_sampling;
    gp_sampling.temperature = 0;
    j->n_out = 0;
    j->status = phi4_generate(j->ctx, j->prompt, j->n_prompt, &gp, collect, j, &j->reason);
    return NULL;
}

static size_t parse_ids(const char *s, int32_t *out, size_t cap) {
    size_t n = 0;
    while (*s && n < cap) {
        out[n++] = (int32_t)strtol(s, (char **)&s, 10);
        while (*s == ',' || *s == ' ') s++;
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT_A PROMPT_B\n", argv[0]);
        return 2;
    }
    phi4_model *model = NULL;
    CHECK(phi4_model_load(argv[1], NULL, &model) == PHI4_OK);
    if (!model) return 1;

    /* Alone, one after the other. */
    static job a, b, a2, b2;
    a.model = b.model = model;
    a.n_prompt = parse_ids(argv[2], a.prompt, 1024);
    b.n_prompt = parse_ids(argv[3], b.prompt, 1024);
    a.max_tokens = b.max_tokens = 64;
    run_job(&a);
    run_job(&b);
    CHECK(a.status == PHI4_OK && b.status == PHI4_OK && a.n_out > 0 && b.n_out > 0);

    /* Together, on two threads, one shared model. */
    a2 = a;
    b2 = b;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_job, &a2);
    pthread_create(&tb, NULL, run_job, &b2);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a2.status == PHI4_OK && b2.status == PHI4_OK);
    CHECK(a2.n_out == a.n_out && memcmp(a2.out, a.out, a.n_out * sizeof(int32_t)) == 0);
    CHECK(b2.n_out == b.n_out && memcmp(b2.out, b.out, b.n_out * sizeof(int32_t)) == 0);
    phi4_context_free(a.ctx);
    phi4_context_free(b.ctx);
    phi4_context_free(a2.ctx);
    phi4_context_free(b2.ctx);

    /* Cancel from another thread stops a long generation promptly; the context stays usable. */
    static job c;
    c = a;
    c.ctx = NULL;
    c.started = 0;
    c.max_tokens = 100000; /* bounded by n_ctx: CONTEXT_FULL if never cancelled */
    c.slow_first_piece = 0;
    pthread_t tc;
    pthread_create(&tc, NULL, run_job, &c);
    while (!c.started) usleep(1000);
    double t0 = now();
    CHECK(phi4_cancel(c.ctx) == PHI4_OK);
    pthread_join(tc, NULL);
    double waited = now() - t0;
    CHECK(c.status == PHI4_OK && c.reason == PHI4_STOP_CANCELLED);
    CHECK(waited < 0.5);
    CHECK(phi4_context_token_count(c.ctx) < 1024);
    phi4_generate_params gp;
    phi4_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 8;
    phi4_stop_reason reason = 0;
    CHECK(phi4_context_reset(c.ctx) == PHI4_OK);
    CHECK(phi4_generate(c.ctx, a.prompt, a.n_prompt, &gp, NULL, NULL, &reason) == PHI4_OK && reason != PHI4_STOP_CANCELLED);
    phi4_context_free(c.ctx);

    /* Cancel during prefill (1000 tokens in chunks of 128) at moments spread over its run: each
     * attempt finishes (all 1000 tokens) or is cancelled (PHI4_ERR_CANCELLED, whole chunks kept, no
     * logits); either way evaluating the rest then gives the logits of an uninterrupted run. */
    {
        enum { N = 1000, CHUNK = 128 };
        static int32_t long_ids[N];
        for (int i = 0; i < N; i++) long_ids[i] = (int32_t)((i * 7919 + 13) % 500);
        phi4_context_params cp;
        phi4_context_params_init(&cp, sizeof cp);
        cp.n_ctx = 1024;
        cp.n_batch = CHUNK;
        phi4_context *ref = NULL, *pc = NULL;
        CHECK(phi4_context_create(model, &cp, &ref) == PHI4_OK && phi4_context_create(model, &cp, &pc) == PHI4_OK);
        phi4_model_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        phi4_model_get_info(model, &info);
        float *want = malloc(sizeof(float) * (size_t)info.vocab_size), *got = malloc(sizeof(float) * (size_t)info.vocab_size);
        double t0 = now();
        CHECK(phi4_eval(ref, long_ids, N, 0) == PHI4_OK);
        double full = now() - t0;
        CHECK(phi4_get_logits(ref, -1, want, (size_t)info.vocab_size, NULL) == PHI4_OK);
        int cancelled = 0, consistent = 0, attempts = 24;
        for (int k = 0; k < attempts; k++) {
            CHECK(phi4_context_reset(pc) == PHI4_OK);
            prefill_job pj = {pc, long_ids, N, PHI4_OK, 0};
            pthread_t tp;
            pthread_create(&tp, NULL, run_prefill, &pj);
            while (!pj.started) usleep(10);
            usleep((useconds_t)(full * 1e6 * k / attempts));
            phi4_cancel(pc);
            pthread_join(tp, NULL);
            int32_t len = phi4_context_token_count(pc);
            if (pj.status == PHI4_ERR_CANCELLED) {
                cancelled++;
                if (len % CHUNK != 0 || len >= N || phi4_get_logits(pc, -1, got, (size_t)info.vocab_size, NULL) == PHI4_OK) continue;
                if (phi4_eval(pc, long_ids + len, (size_t)(N - len), 0) != PHI4_OK) continue;
            } else if (pj.status != PHI4_OK || len != N) {
                continue;
            }
            if (phi4_get_logits(pc, -1, got, (size_t)info.vocab_size, NULL) != PHI4_OK) continue;
            float diff = 0;
            for (int32_t v = 0; v < info.vocab_size; v++) diff = fmaxf(diff, fabsf(got[v] - want[v]));
            consistent += diff < 1e-4f;
        }
        CHECK(consistent == attempts);
        printf("prefill cancellation: %d of %d attempts cancelled, %d consistent (prefill %.1f ms)\n", cancelled, attempts,
               consistent, full * 1e3);
        free(want);
        free(got);
        phi4_context_free(ref);
        phi4_context_free(pc);
    }

    /* A second thread calling into a busy context gets PHI4_ERR_BUSY, and nothing breaks. */
    static job d;
    d = a;
    d.ctx = NULL;
    d.started = 0;
    d.max_tokens = 16;
    d.slow_first_piece = 1;
    pthread_t td;
    pthread_create(&td, NULL, run_job, &d);
    while (!d.started) usleep(1000);
    int32_t one = 1;
    CHECK(phi4_eval(d.ctx, &one, 1, 0) == PHI4_ERR_BUSY);
    CHECK(phi4_context_reset(d.ctx) == PHI4_ERR_BUSY);
    pthread_join(td, NULL);
    /* Same pieces as the first run (the last may differ: a shorter run flushes earlier). */
    CHECK(d.status == PHI4_OK && d.n_out > 1 && d.n_out <= a.n_out &&
          memcmp(d.out, a.out, (d.n_out - 1) * sizeof(int32_t)) == 0);
    CHECK(phi4_eval(d.ctx, &one, 1, 0) == PHI4_OK);
    phi4_context_free(d.ctx);

    phi4_model_free(model);
    printf("C threads: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
