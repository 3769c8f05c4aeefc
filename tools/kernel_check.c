// Checks, on the CPU it runs on, that every available ISA path of the quantized kernels gives the
// scalar path's bits: p4k_matvec (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) and p4k_gemm (the multi-row
// kernel, which must also equal p4k_matvec token by token), and the activation quantizer
// p4k_quantize_activation against the plain loop (roundf, half away from zero). The Swift test suite checks the same;
// this standalone program covers machines without a Swift toolchain (e.g. one with AVX-512 VNNI,
// whose paths the build machine may not be able to run).
//
//   cc -O2 -I Sources/CPhi4Kernels/include tools/kernel_check.c Sources/CPhi4Kernels/*.c -lm -o kernel_check
//   ./kernel_check        # prints each ISA checked; exit status 1 on any mismatch
#include "CPhi4Kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static float next_float(void) { return (float)((int)(next_u32() % 2000001) - 1000000) / 1000000.0f; }

static int failures = 0;

// extreme: every 4-bit weight 15 (all quant bytes 0xFF; Q8_0: 127) and activations of +127 and
// −127 (tokens 0 and 1), the largest integer sums the kernels' int16 steps must hold.
static void check(int format, size_t cols, size_t rows, size_t t, int extreme) {
    const size_t rb = p4k_row_bytes(format, cols), nb = cols / 32, kb = p4k_kquant_block_bytes(format);
    uint8_t *w = malloc(rows * rb);
    float *x = malloc(cols * sizeof(float));
    if (kb) {
        for (size_t i = 0; i < rows * rb; i++) w[i] = extreme ? 0xFF : (uint8_t)next_u32();
        for (size_t b = 0; b < rows * rb / kb; b++) {
            const uint16_t h = p4k_f32_to_fp16(0.001f + 0.02f * (float)(next_u32() % 1000) / 1000.0f);
            if (format == P4K_Q6_K) memcpy(w + b * kb + 208, &h, 2);
            else {
                memcpy(w + b * kb, &h, 2);
                memcpy(w + b * kb + 2, &h, 2);
            }
        }
    } else if (extreme) {
        const size_t bs = format == P4K_Q8_0 ? 34 : 18;
        memset(w, format == P4K_Q8_0 ? 0x7F : 0xFF, rows * rb);
        // Q8_0: odd rows hold −128 (|q| = 128 in the sign-and-magnitude products).
        if (format == P4K_Q8_0)
            for (size_t r = 1; r < rows; r += 2) memset(w + r * rb, 0x80, rb);
        for (size_t b = 0; b < rows * rb / bs; b++) {
            const uint16_t h = p4k_f32_to_fp16(0.01f);
            memcpy(w + b * bs, &h, 2);
        }
    } else {
        for (size_t r = 0; r < rows; r++) {
            for (size_t i = 0; i < cols; i++) x[i] = next_float() * (i % 97 == 0 ? 50.0f : 1.0f);
            if (format == P4K_Q8_0) p4k_quantize_q8_0(x, w + r * rb, cols);
            else p4k_quantize_q4_0(x, w + r * rb, cols);
        }
    }
    int8_t *aq = malloc(t * cols);
    float *ad = malloc(t * nb * sizeof(float));
    int32_t *as = malloc(t * nb * sizeof(int32_t));
    for (size_t i = 0; i < t; i++) {
        for (size_t j = 0; j < cols; j++)
            x[j] = extreme && i < 2 ? (i ? -1.0f : 1.0f)
                   : i == 1         ? (j % 2 ? -1.0f : 1.0f)
                                    : next_float() * (j % 31 == 0 ? 40.0f : 3.0f);
        p4k_quantize_activation(x, cols, aq + i * cols, ad + i * nb, as + i * nb);
    }
    float *ref = malloc(t * rows * sizeof(float)), *out = malloc(t * rows * sizeof(float));
    for (size_t i = 0; i < t; i++) p4k_matvec(format, P4K_ISA_SCALAR, w, cols, rows, aq + i * cols, ad + i * nb, as + i * nb, ref + i * rows, 0);
    for (int isa = P4K_ISA_SCALAR; isa <= P4K_ISA_VNNI; isa++) {
        if (!p4k_isa_available(isa)) continue;
        for (size_t i = 0; i < t; i++) p4k_matvec(format, isa, w, cols, rows, aq + i * cols, ad + i * nb, as + i * nb, out + i * rows, 0);
        if (memcmp(out, ref, t * rows * sizeof(float))) {
            printf("MISMATCH matvec format %d isa %s cols %zu rows %zu\n", format, p4k_isa_name(isa), cols, rows);
            failures++;
        }
        memset(out, 0, t * rows * sizeof(float));
        if (p4k_gemm(format, isa, w, cols, rows, t, aq, ad, as, out, rows, 0) != 0 || memcmp(out, ref, t * rows * sizeof(float))) {
            printf("MISMATCH gemm format %d isa %s cols %zu rows %zu t %zu\n", format, p4k_isa_name(isa), cols, rows, t);
            failures++;
        }
        // accumulate = 1 adds each result to what the output held.
        for (size_t i = 0; i < t * rows; i++) out[i] = (float)(i % 13) - 6.5f;
        p4k_gemm(format, isa, w, cols, rows, t, aq, ad, as, out, rows, 1);
        for (size_t i = 0; i < t * rows; i++) {
            const float want = ((float)(i % 13) - 6.5f) + ref[i];
            if (memcmp(&out[i], &want, sizeof want)) {
                printf("MISMATCH gemm (accumulate) format %d isa %s cols %zu rows %zu t %zu\n", format, p4k_isa_name(isa), cols, rows, t);
                failures++;
                break;
            }
        }
    }
    free(w); free(x); free(aq); free(ad); free(as); free(ref); free(out);
}

// p4k_quantize_activation (vector path where the CPU has one) against the definition, on random
// blocks and on blocks whose scale is exactly 1 (a ±127 entry), so that values such as ±0.5,
// ±2.5, ±126.5 and the largest float below 0.5 reach the rounding unchanged.
static void check_activation_quantizer(void) {
    enum { N = 32 * 40 };
    float x[N];
    for (size_t i = 0; i < N; i++) x[i] = next_float() * (float)(1 + i % 7) * 3.0f;
    const float edges[] = {0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 126.5f, -126.5f, 0.49999997f, -0.49999997f,
                           0.0f, -0.0f, 63.49999f, -63.50001f, 1e-30f, -1e-30f};
    for (size_t b = 0; b < 8; b++) {  // blocks 0…7: scale 1, the edge values at varying places
        x[32 * b + (b % 32)] = b % 2 ? -127.0f : 127.0f;
        for (size_t k = 0; k < sizeof(edges) / sizeof(edges[0]); k++) x[32 * b + (b + 1 + k) % 32] = edges[k];
    }
    for (size_t j = 0; j < 32; j++) x[32 * 8 + j] = 0.0f;  // an all-zero block: scale 0
    int8_t q[N];
    float d[N / 32];
    int32_t sums[N / 32];
    p4k_quantize_activation(x, N, q, d, sums);
    int bad = 0;
    for (size_t b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        const float db = amax / 127.0f, id = db ? 1.0f / db : 0.0f;
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            const int8_t r = (int8_t)roundf(x[32 * b + j] * id);
            s += r;
            if (q[32 * b + j] != r) bad++;
        }
        if (memcmp(&d[b], &db, 4) != 0 || sums[b] != s) bad++;
    }
    if (bad) {
        printf("activation quantizer: %d mismatches\n", bad);
        failures += bad;
    }
}

int main(void) {
    printf("ISA paths on this CPU:");
    for (int isa = P4K_ISA_SCALAR; isa <= P4K_ISA_VNNI; isa++)
        if (p4k_isa_available(isa)) printf(" %s", p4k_isa_name(isa));
    printf(" (best: %s)\n", p4k_isa_name(p4k_isa_best()));
    const int formats[] = {P4K_Q8_0, P4K_Q4_0};
    const size_t shapes[][3] = {{32, 8, 1}, {96, 7, 2}, {224, 13, 5}, {1056, 8, 67}, {5152, 1, 3}, {640, 16, 4}, {5120, 24, 9}, {1312, 6, 6}, {5152, 5, 7}, {2080, 40, 70}};
    for (int f = 0; f < 2; f++)
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            check(formats[f], shapes[s][0], shapes[s][1], shapes[s][2], 0);
            check(formats[f], shapes[s][0], shapes[s][1], shapes[s][2], 1);
        }
    const int kformats[] = {P4K_Q4_K, P4K_Q5_K, P4K_Q6_K};
    for (int f = 0; f < 3; f++) {
        for (int e = 0; e < 2; e++) {
            check(kformats[f], 256, 5, 3, e);
            check(kformats[f], 2304, 9, 2, e);
            check(kformats[f], 5120, 17, 9, e);
        }
    }
    check_activation_quantizer();
    printf(failures ? "%d mismatches\n" : "all paths agree with the scalar path bit for bit\n", failures);
    return failures ? 1 : 0;
}
