// Times p4k_attend_tile over one layer of the Phi-4 shape's KV cache (10 key-value heads of
// dimension 128, 4 query heads each), one thread, as decoding one token does it: tiles of 256
// positions, the cache laid out head-major as KVCache stores it. Prints the best of the repeats.
//
//   clang -O2 -I Sources/CPhi4Kernels/include tools/attention_bench.c Sources/CPhi4Kernels/*.c -lm -o attention_bench
//   ./attention_bench [positions=4096] [f16|q8_0|f32] [repeats=20]
//
// (clang is the compiler SwiftPM builds the kernels with; gcc gives the same speed.)
#include "CPhi4Kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float next_float(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) - 0.5f;
}

int main(int argc, char **argv) {
    const size_t positions = argc > 1 ? (size_t)atol(argv[1]) : 4096;
    const char *type_name = argc > 2 ? argv[2] : "f16";
    const int repeats = argc > 3 ? atoi(argv[3]) : 20;
    const size_t hd = 128, heads = 10, group = 4, tile = 256;
    const int type = !strcmp(type_name, "q8_0") ? P4K_KV_Q8_0 : !strcmp(type_name, "f32") ? P4K_KV_F32 : P4K_KV_F16;
    const size_t row_bytes = type == P4K_KV_Q8_0 ? hd / 32 * 34 : type == P4K_KV_F32 ? 4 * hd : 2 * hd;
    const size_t n = heads * positions * hd;
    if (positions == 0 || repeats <= 0) {
        fprintf(stderr, "usage: %s [positions] [f16|q8_0|f32] [repeats]\n", argv[0]);
        return 2;
    }

    float *x = malloc(n * sizeof(float));
    uint8_t *keys = malloc(heads * positions * row_bytes), *values = malloc(heads * positions * row_bytes);
    float *q = malloc(heads * group * hd * sizeof(float)), *scores = malloc(group * tile * sizeof(float));
    if (!x || !keys || !values || !q || !scores) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    unsigned state = 1;
    for (int which = 0; which < 2; which++) {
        uint8_t *dst = which ? values : keys;
        for (size_t i = 0; i < n; i++) x[i] = next_float(&state);
        if (type == P4K_KV_Q8_0) p4k_quantize_q8_0(x, dst, n);
        else if (type == P4K_KV_F16) p4k_f32_to_f16(x, (uint16_t *)dst, n);
        else memcpy(dst, x, n * sizeof(float));
    }
    for (size_t i = 0; i < heads * group * hd; i++) q[i] = next_float(&state);

    double best = 1e30;
    float check = 0;
    for (int r = 0; r < repeats; r++) {
        const double t0 = now();
        for (size_t g = 0; g < heads; g++) {
            float run_max[4], run_sum[4], acc[4 * 128];
            for (size_t m = 0; m < group; m++) {
                run_max[m] = -INFINITY;
                run_sum[m] = 0;
            }
            memset(acc, 0, sizeof(acc));
            const uint8_t *kh = keys + g * positions * row_bytes, *vh = values + g * positions * row_bytes;
            for (size_t k0 = 0; k0 < positions; k0 += tile) {
                const size_t kn = positions - k0 < tile ? positions - k0 : tile;
                p4k_attend_tile(-1, type, q + g * group * hd, hd, group, kh + k0 * row_bytes, vh + k0 * row_bytes, hd, kn,
                                hd, 1.0f / sqrtf((float)hd), scores, run_max, run_sum, acc);
            }
            check += acc[0] / run_sum[0];
        }
        const double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%zu positions, %s, one layer (%zu KV heads × %zu query heads), one thread, %s path: %.3f ms "
           "(%.1f GB/s of cache, %.1f GMAC/s)  [checksum %g]\n",
           positions, type_name, heads, group, p4k_attend_vectorized(-1, hd) ? "vector" : "scalar", best * 1e3,
           2.0 * (double)(heads * positions * row_bytes) / best / 1e9,
           (double)(heads * group * positions * hd * 2) / best / 1e9, check / (float)repeats);
    free(x);
    free(keys);
    free(values);
    free(q);
    free(scores);
    return 0;
}
