// Times every matrix kernel this CPU can run (every entry of the dispatch table) on the batch
// sizes each serves, so that the kernel choice can be checked against measurements on any CPU:
// one token over a weight matrix far larger than the caches (decode: weight GB/s), 8 and 64 tokens
// (batches, prefill: GMAC/s, multiply-adds per second). Each figure is the median of `runs`
// runs, the kernels of a format alternating run by run; threads split the rows as the engine does.
// Also prints what the calibration chose (p4k_kernels_calibrate) and how long it took.
//
//   clang -O2 -pthread -I Sources/CPhi4Kernels/include tools/kernel_bench.c Sources/CPhi4Kernels/*.c -lm -o kernel_bench
//   ./kernel_bench [threads 2] [runs 7] [formats: q8_0 q4_0 q4_k q5_k q6_k q4_1 q5_0 q5_1 q2_k q3_k iq4_nl iq4_xs
//                                                  iq2_xxs iq2_xs iq2_s iq3_xxs iq3_s iq1_s iq1_m]
#include "CPhi4Kernels.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct {
    int kernel;
    const uint8_t *w;
    size_t cols, rows, t, rb;
    const int8_t *aq;
    const float *ad;
    const int32_t *as;
    float *out;
    size_t ldo;
} part_t;

static void *run_part(void *arg) {
    part_t *p = arg;
    p4k_kernel_run(p->kernel, p->w, p->cols, p->rows, p->t, p->aq, p->ad, p->as, p->out, p->ldo, 0);
    return NULL;
}

// One timed run of kernel k over `rows` rows split between `threads` threads (in multiples of 16).
static double timed(int k, const uint8_t *w, size_t cols, size_t rows, size_t t, const int8_t *aq, const float *ad,
                    const int32_t *as, float *out, int threads, size_t rb) {
    pthread_t th[64];
    part_t parts[64];
    const size_t per = (rows / (size_t)threads + 15) / 16 * 16;
    const double t0 = now();
    int n = 0;
    for (size_t r0 = 0; r0 < rows && n < threads; r0 += per, n++) {
        const size_t m = rows - r0 < per ? rows - r0 : per;
        parts[n] = (part_t){k, w + r0 * rb, cols, m, t, rb, aq, ad, as, out + r0, rows};
        pthread_create(&th[n], NULL, run_part, &parts[n]);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    return now() - t0;
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2, runs = argc > 2 ? atoi(argv[2]) : 7;
    enum { NF = 19 };
    const char *names[NF] = {"q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "iq4_nl", "iq4_xs",
                             "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m"};
    const int codes[NF] = {P4K_Q8_0, P4K_Q4_0, P4K_Q4_K, P4K_Q5_K, P4K_Q6_K, P4K_Q4_1,
                           P4K_Q5_0, P4K_Q5_1, P4K_Q2_K, P4K_Q3_K, P4K_IQ4_NL, P4K_IQ4_XS,
                           P4K_IQ2_XXS, P4K_IQ2_XS, P4K_IQ2_S, P4K_IQ3_XXS, P4K_IQ3_S, P4K_IQ1_S, P4K_IQ1_M};
    int want[NF] = {1, 1, 1, 0, 1};
    if (argc > 3) {
        memset(want, 0, sizeof want);
        for (int a = 3; a < argc; a++)
            for (int f = 0; f < NF; f++)
                if (!strcmp(argv[a], names[f])) want[f] = 1;
    }
    char model[64], flags[160];
    p4k_cpu_model(model, sizeof model);
    p4k_cpu_flags(flags, sizeof flags);
    printf("CPU: %s [%s], %d threads, median of %d runs\n", model, flags, threads, runs);
    const size_t cols = 5120, big = (size_t)1 << 30;  // decode: 1 GiB of weights
    uint8_t *w = malloc(big);
    const size_t nb = cols / 32;
    int8_t *aq = malloc(64 * cols);
    float *ad = malloc(64 * nb * sizeof(float)), *out = malloc(64 * (big / p4k_row_bytes(P4K_Q2_K, cols) + 16) * sizeof(float));  // Q2_K: the smallest rows
    int32_t *as = malloc(64 * nb * sizeof(int32_t));
    if (!w || !aq || !ad || !as || !out) return 1;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i + 8 <= big; i += 8) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const uint64_t v = (s & 0x3BFF3BFF3BFF3BFFull) | 0x2000200020002000ull;  // fp16 scales stay finite
        memcpy(w + i, &v, 8);
    }
    for (size_t i = 0; i < 64 * cols; i++) aq[i] = (int8_t)(w[i] % 255 - 127);
    for (size_t i = 0; i < 64 * nb; i++) ad[i] = 0.01f, as[i] = 0;
    for (int f = 0; f < NF; f++) {
        if (!want[f]) continue;
        const int fmt = codes[f];
        const size_t rb = p4k_row_bytes(fmt, cols);
        const size_t sizes[3] = {1, 8, 64};
        for (int c = 0; c < 3; c++) {
            const size_t t = sizes[c];
            const size_t rows = c == 0 ? big / rb : 4096;  // batches: 4096 × 5120 (12–22 MB)
            int ks[16], nk = 0;
            for (int k = 0; k < p4k_kernel_count() && nk < 16; k++) {
                int kf, isa;
                unsigned classes;
                p4k_kernel_info(k, &kf, &isa, &classes, NULL);
                if (kf == fmt && (classes & (1u << c)) && p4k_isa_available(isa) && isa != P4K_ISA_SCALAR)
                    ks[nk++] = k;
            }
            double times[16][64];
            for (int r = -1; r < runs && r < 64; r++)
                for (int i = 0; i < nk; i++) {
                    const double dt = timed(ks[i], w, cols, rows, t, aq, ad, as, out, threads, rb);
                    if (r >= 0) times[i][r] = dt;
                }
            for (int i = 0; i < nk; i++) {
                qsort(times[i], (size_t)runs, sizeof(double), cmp);
                const double med = times[i][runs / 2];
                const char *kn;
                p4k_kernel_info(ks[i], NULL, NULL, NULL, &kn);
                if (c == 0)
                    printf("%-5s t=%-3zu %-12s %7.2f ms  %6.1f GB/s\n", names[f], t, kn, med * 1e3, (double)(rows * rb) / med / 1e9);
                else
                    printf("%-5s t=%-3zu %-12s %7.2f ms  %6.1f GMAC/s\n", names[f], t, kn, med * 1e3,
                           (double)rows * (double)cols * (double)t / med / 1e9);
            }
        }
    }
    const double t0 = now();
    int fl[NF], n = 0;
    for (int f = 0; f < NF; f++)
        if (want[f]) fl[n++] = codes[f];
    p4k_kernels_calibrate(fl, (size_t)n);
    printf("calibration of %d formats: %.1f ms; chosen:\n", n, (now() - t0) * 1e3);
    for (int f = 0; f < NF; f++)
        if (want[f])
            printf("  %-5s 1: %-12s 2-16: %-12s 17+: %s\n", names[f], p4k_kernel_choice(codes[f], 0),
                   p4k_kernel_choice(codes[f], 1), p4k_kernel_choice(codes[f], 2));
    return 0;
}
