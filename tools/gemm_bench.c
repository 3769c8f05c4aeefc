// Times the quantized matrix kernels alone: p4k_matvec (one token) and p4k_gemm (t tokens) on one
// thread, over a weight matrix larger than the caches (read from memory, as in decoding), and
// prints the median rate of several runs in GMAC/s (multiply-adds per second) and the weight
// bytes read per second.
//
//   clang -O2 -I Sources/CPhi4Kernels/include tools/gemm_bench.c Sources/CPhi4Kernels/*.c -lm -o gemm_bench
//   ./gemm_bench q4_0 [rows 20000] [cols 5120] [runs 21]
//
// To compare two versions of the kernels, build this file against each and run the two
// binaries in alternation: this machine's speed drifts by 10-20 % over minutes.
#include "CPhi4Kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const int format = argc > 1 && !strcmp(argv[1], "q8_0") ? P4K_Q8_0 : P4K_Q4_0;
    const size_t rows = argc > 2 ? (size_t)atol(argv[2]) : 20000, cols = argc > 3 ? (size_t)atol(argv[3]) : 5120;
    const int runs = argc > 4 ? atoi(argv[4]) : 21;
    if (cols % 32 || rows == 0 || runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: gemm_bench q4_0|q8_0 [rows] [cols, a multiple of 32] [runs]\n");
        return 2;
    }
    const size_t rb = p4k_row_bytes(format, cols), nb = cols / 32, tmax = 64;
    uint8_t *w = malloc(rows * rb);
    float *x = malloc(cols * sizeof(float));
    int8_t *aq = malloc(tmax * cols);
    float *ad = malloc(tmax * nb * sizeof(float)), *out = malloc(tmax * rows * sizeof(float));
    int32_t *as = malloc(tmax * nb * sizeof(int32_t));
    double *times = malloc((size_t)runs * sizeof(double));
    if (!w || !x || !aq || !ad || !out || !as || !times) return 1;
    srand(1);
    for (size_t r = 0; r < rows; r++) {  // real blocks: quantized random rows
        for (size_t i = 0; i < cols; i++) x[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
        if (format == P4K_Q8_0) p4k_quantize_q8_0(x, w + r * rb, cols);
        else p4k_quantize_q4_0(x, w + r * rb, cols);
    }
    for (size_t i = 0; i < tmax; i++) {
        for (size_t j = 0; j < cols; j++) x[j] = (float)(rand() % 2001 - 1000) / 1000.0f;
        p4k_quantize_activation(x, cols, aq + i * cols, ad + i * nb, as + i * nb);
    }
    printf("%s, %zu x %zu (%.0f MB), kernels %s, median of %d\n", format == P4K_Q8_0 ? "q8_0" : "q4_0", rows, cols,
           (double)(rows * rb) / 1e6, p4k_isa_name(p4k_isa_best()), runs);
    const size_t ts[] = {1, 2, 3, 4, 5, 6, 7, 8, 16, 64};
    for (size_t k = 0; k < sizeof(ts) / sizeof(ts[0]); k++) {
        const size_t t = ts[k];
        for (int i = 0; i < runs; i++) {
            const double t0 = now();
            if (t == 1) p4k_matvec(format, -1, w, cols, rows, aq, ad, as, out, 0);
            else p4k_gemm(format, -1, w, cols, rows, t, aq, ad, as, out, rows, 0);
            times[i] = now() - t0;
        }
        qsort(times, (size_t)runs, sizeof(double), by_value);
        const double s = times[runs / 2];
        printf("t=%2zu  %6.1f GMAC/s  %5.1f GB/s of weights  %8.2f ms\n", t, (double)(rows * cols * t) / s * 1e-9,
               (double)(rows * rb) / s * 1e-9, s * 1e3);
    }
    return 0;
}
