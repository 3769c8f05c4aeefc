/* soak.c — concurrency soak over the C ABI: THREADS threads × ITERATIONS generations on one
 * shared model, with random cancellations (from the piece callback, and from a separate thread
 * calling phi4_cancel on whatever context is running). Checks that:
 *   - a generation that is not cancelled gives exactly the text of a single-threaded reference run
 *     with the same prompt and seed; a cancelled one gives a prefix of it;
 *   - resident memory after the run is not above resident memory after a warm-up (+ a small margin).
 *
 *   soak MODEL [THREADS=4] [ITERATIONS=200]
 * Prints "soak: N generations (C cancelled), RSS warm X MB, end Y MB" and exits 0 when all held.
 */
#define _GNU_SOURCE
#include <phi4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { PROMPTS = 4, SEEDS = 3, MAX_TEXT = 8192, MAX_THREADS = 64 };

static const char *prompts[PROMPTS] = {
    "Once upon a time", "def fibonacci(n):", "The capital of France is", "1, 2, 3, 4,",
};
static char reference[PROMPTS][SEEDS][MAX_TEXT];
static phi4_model *model;
static phi4_context *volatile running[MAX_THREADS];
static volatile int done;
static int mismatches, cancelled_total, generations;
static pthread_mutex_t stats = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    char text[MAX_TEXT];
    size_t len;
    int stop_after; /* pieces before the callback cancels; -1: never */
    int pieces;
} collect;

static int32_t on_piece(const char *piece, size_t len, int32_t token, void *user) {
    (void)token;
    collect *c = user;
    if (c->len + len < MAX_TEXT) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = 0;
    }
    c->pieces++;
    return c->stop_after < 0 || c->pieces < c->stop_after;
}

static phi4_status run(phi4_context *ctx, int p, int s, collect *c, phi4_stop_reason *why) {
    phi4_generate_params gp;
    phi4_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 24;
    phi4_sampling_params gp_sampling;
    phi4_sampling_params_init(&gp_sampling, sizeof gp_sampling);
    gp.sampling = &gp_sampling;
    gp_sampling.use_seed = 1;
    gp_sampling.seed = (uint64_t)(s + 1) * 7919;
    gp_sampling.temperature = 0.9f;
    c->len = 0;
    c->text[0] = 0;
    c->pieces = 0;
    phi4_context_reset(ctx);
    return phi4_generate_text(ctx, prompts[p], &gp, on_piece, c, why);
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

typedef struct {
    int index, iterations;
    unsigned seed;
} worker_arg;

static void *worker(void *arg) {
    worker_arg *w = arg;
    unsigned r = w->seed;
    phi4_context *ctx = NULL;
    collect *c = malloc(sizeof *c);
    for (int i = 0; i < w->iterations; i++) {
        if (!ctx || rand_r(&r) % 4 == 0) { /* sometimes a fresh context */
            running[w->index] = NULL;
            phi4_context_free(ctx);
            phi4_context_params cp;
            phi4_context_params_init(&cp, sizeof cp);
            cp.n_ctx = 128;
            cp.n_threads = 1 + rand_r(&r) % 2;
            if (phi4_context_create(model, &cp, &ctx) != PHI4_OK) {
                fprintf(stderr, "context: %s\n", phi4_last_error());
                exit(1);
            }
            running[w->index] = ctx;
        }
        int p = rand_r(&r) % PROMPTS, s = rand_r(&r) % SEEDS;
        c->stop_after = rand_r(&r) % 5 == 0 ? 1 + rand_r(&r) % 6 : -1;
        phi4_stop_reason why = 0;
        phi4_status st = run(ctx, p, s, c, &why);
        int cancelled = why == PHI4_STOP_CANCELLED;
        int ok = st == PHI4_OK &&
                 (cancelled ? strncmp(reference[p][s], c->text, c->len) == 0 : strcmp(reference[p][s], c->text) == 0);
        pthread_mutex_lock(&stats);
        generations++;
        cancelled_total += cancelled;
        if (!ok) {
            mismatches++;
            fprintf(stderr, "mismatch (thread %d, prompt %d, seed %d, %s, %s): \"%s\" vs \"%s\"\n", w->index, p, s,
                    phi4_status_name(st), cancelled ? "cancelled" : "complete", c->text, reference[p][s]);
        }
        pthread_mutex_unlock(&stats);
    }
    running[w->index] = NULL;
    phi4_context_free(ctx);
    free(c);
    return NULL;
}

/* Cancels a random running context every few milliseconds. */
static void *chaos(void *arg) {
    int threads = *(int *)arg;
    unsigned r = 12345;
    while (!done) {
        usleep(5000 + rand_r(&r) % 20000);
        phi4_context *ctx = running[rand_r(&r) % threads];
        if (ctx) phi4_cancel(ctx); /* may race with its free: an invalid handle is only an error */
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: soak MODEL [THREADS] [ITERATIONS]\n");
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 4, iterations = argc > 3 ? atoi(argv[3]) : 200;
    if (threads < 1 || threads > MAX_THREADS || iterations < 1) return 2;
    if (phi4_model_load(argv[1], NULL, &model) != PHI4_OK) {
        fprintf(stderr, "load: %s\n", phi4_last_error());
        return 1;
    }
    /* References: one thread, one context per run. */
    collect *c = malloc(sizeof *c);
    for (int p = 0; p < PROMPTS; p++) {
        for (int s = 0; s < SEEDS; s++) {
            phi4_context *ctx = NULL;
            phi4_context_params cp;
            phi4_context_params_init(&cp, sizeof cp);
            cp.n_ctx = 128;
            phi4_context_create(model, &cp, &ctx);
            phi4_stop_reason why = 0;
            c->stop_after = -1;
            if (run(ctx, p, s, c, &why) != PHI4_OK) {
                fprintf(stderr, "reference: %s\n", phi4_last_error());
                return 1;
            }
            memcpy(reference[p][s], c->text, c->len + 1);
            phi4_context_free(ctx);
        }
    }
    free(c);

    pthread_t t[MAX_THREADS], ct;
    worker_arg args[MAX_THREADS];
    /* Warm-up: a short round on every thread, then the resident memory baseline. */
    for (int i = 0; i < threads; i++) {
        args[i] = (worker_arg){i, iterations < 10 ? 1 : iterations / 10, (unsigned)(1000 + i)};
        pthread_create(&t[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    long warm = rss_kb();

    pthread_create(&ct, NULL, chaos, &threads);
    for (int i = 0; i < threads; i++) {
        args[i] = (worker_arg){i, iterations, (unsigned)(2000 + i)};
        pthread_create(&t[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    done = 1;
    pthread_join(ct, NULL);
    long end = rss_kb();
    phi4_model_free(model);

    int grew = end > warm + 16 * 1024; /* 16 MB: allocator caches, not a leak per generation */
    printf("soak: %d generations (%d cancelled), %d mismatches, RSS warm %.1f MB, end %.1f MB\n", generations,
           cancelled_total, mismatches, warm / 1024.0, end / 1024.0);
    return mismatches == 0 && !grew ? 0 : 1;
}
