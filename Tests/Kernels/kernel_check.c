// Checks, on the CPU it runs on, that every matrix kernel this CPU can run (every entry of the
// dispatch table: Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; rows and panels; every ISA) gives the scalar
// path's bits on one token and on batches, with and without accumulation; that the kernels the
// calibration chose do too; that an unknown format is refused; and the activation quantizer
// p4k_quantize_activation against the plain loop (roundf, half away from zero). The Swift test suite checks the same;
// this standalone program covers machines without a Swift toolchain (e.g. one with AVX-512 VNNI,
// whose paths the build machine may not be able to run).
//
//   cc -O2 -pthread -I Sources/CPhi4Kernels/include Tests/Kernels/kernel_check.c Sources/CPhi4Kernels/*.c -lm -o kernel_check
//   ./kernel_check        # prints the CPU, the chosen kernels, each kernel checked or skipped;
//                         # exit status 1 on any mismatch
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
static char checked[256], skipped[256];

// extreme: every 4-bit weight 15 (all quant bytes 0xFF; Q8_0: 127) and activations of +127 and
// −127 (tokens 0 and 1), the largest integer sums the kernels' int16 steps must hold.
static void check(int format, size_t cols, size_t rows, size_t t, int extreme) {
    const size_t rb = p4k_row_bytes(format, cols), nb = cols / 32, kb = p4k_kquant_block_bytes(format);
    uint8_t *w = malloc(rows * rb);
    float *x = malloc(cols * sizeof(float));
    const int bytes_only = kb || (format != P4K_Q8_0 && format != P4K_Q4_0);
    if (bytes_only) {
        // Random (or all-0xFF) quant bytes with sane fp16 scales at the format's scale fields.
        const size_t bs = p4k_format((uint32_t)format)->block_bytes;
        for (size_t i = 0; i < rows * rb; i++) w[i] = extreme ? 0xFF : (uint8_t)next_u32();
        for (size_t b = 0; b < rows * rb / bs; b++) {
            const uint16_t h = p4k_f32_to_fp16(0.001f + 0.02f * (float)(next_u32() % 1000) / 1000.0f);
            const uint16_t m = p4k_f32_to_fp16(-0.01f * (float)(next_u32() % 1000) / 1000.0f);
            switch (format) {
            case P4K_Q6_K: memcpy(w + b * bs + 208, &h, 2); break;
            case P4K_Q2_K: memcpy(w + b * bs + 80, &h, 2); memcpy(w + b * bs + 82, &h, 2); break;
            case P4K_Q3_K: memcpy(w + b * bs + 108, &h, 2); break;
            case P4K_Q4_1: case P4K_Q5_1: memcpy(w + b * bs, &h, 2); memcpy(w + b * bs + 2, &m, 2); break;
            case P4K_Q5_0: case P4K_IQ4_NL: case P4K_IQ4_XS: memcpy(w + b * bs, &h, 2); break;
            case P4K_IQ2_XXS: case P4K_IQ2_XS: case P4K_IQ2_S: case P4K_IQ3_XXS: case P4K_IQ3_S: case P4K_IQ1_S:
                memcpy(w + b * bs, &h, 2);
                break;
            case P4K_IQ1_M:  // d's fp16 bits in the top nibbles of the four scale words
                for (int k = 0; k < 4; k++) w[b * bs + 49 + 2 * k] = (uint8_t)((w[b * bs + 49 + 2 * k] & 0x0F) | (((h >> (4 * k)) & 0xF) << 4));
                break;
            default: memcpy(w + b * bs, &h, 2); memcpy(w + b * bs + 2, &h, 2); break;  // Q4_K, Q5_K
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
    // Every kernel of this format that the CPU can run, whatever batch class it serves, on t tokens.
    for (int k = 0; k < p4k_kernel_count(); k++) {
        int kf, isa;
        const char *name;
        p4k_kernel_info(k, &kf, &isa, NULL, &name);
        if (kf != format) continue;
        if (!p4k_isa_available(isa)) {
            skipped[k] = 1;
            continue;
        }
        checked[k] = 1;
        memset(out, 0, t * rows * sizeof(float));
        if (p4k_kernel_run(k, w, cols, rows, t, aq, ad, as, out, rows, 0) != 0 || memcmp(out, ref, t * rows * sizeof(float))) {
            printf("MISMATCH %s format %d cols %zu rows %zu t %zu\n", name, format, cols, rows, t);
            failures++;
        }
        // accumulate = 1 adds each result to what the output held.
        for (size_t i = 0; i < t * rows; i++) out[i] = (float)(i % 13) - 6.5f;
        p4k_kernel_run(k, w, cols, rows, t, aq, ad, as, out, rows, 1);
        for (size_t i = 0; i < t * rows; i++) {
            const float want = ((float)(i % 13) - 6.5f) + ref[i];
            if (memcmp(&out[i], &want, sizeof want)) {
                printf("MISMATCH %s (accumulate) format %d cols %zu rows %zu t %zu\n", name, format, cols, rows, t);
                failures++;
                break;
            }
        }
    }
    // The chosen kernels (after calibration) through the public entry points.
    memset(out, 0, t * rows * sizeof(float));
    if (p4k_gemm(format, -1, w, cols, rows, t, aq, ad, as, out, rows, 0) != 0 || memcmp(out, ref, t * rows * sizeof(float))) {
        printf("MISMATCH p4k_gemm (chosen kernel) format %d cols %zu rows %zu t %zu\n", format, cols, rows, t);
        failures++;
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
    char model[64], flags[160];
    p4k_cpu_model(model, sizeof model);
    p4k_cpu_flags(flags, sizeof flags);
    printf("CPU: %s [%s]\nISA families on this CPU:", model, flags);
    for (int isa = P4K_ISA_SCALAR; isa <= P4K_ISA_TOP; isa++)
        if (p4k_isa_available(isa)) printf(" %s", p4k_isa_name(isa));
    printf("\n");
    const int all_formats[] = {P4K_Q8_0, P4K_Q4_0, P4K_Q4_K, P4K_Q5_K, P4K_Q6_K, P4K_Q4_1,
                               P4K_Q5_0, P4K_Q5_1, P4K_Q2_K, P4K_Q3_K, P4K_IQ4_NL, P4K_IQ4_XS, P4K_IQ2_XXS,
                               P4K_IQ2_XS, P4K_IQ2_S, P4K_IQ3_XXS, P4K_IQ3_S, P4K_IQ1_S, P4K_IQ1_M};
    const int nformats = (int)(sizeof all_formats / sizeof all_formats[0]);
    if (p4k_kernels_calibrate(all_formats, (size_t)nformats) != 0) {
        printf("calibration failed\n");
        failures++;
    }
    printf("calibration: %.1f ms\n", p4k_kernels_calibration_ms());
    if (p4k_kernel_count() >= 128) {  // dispatch.c's MAX_KERNELS: a full list may have dropped kernels
        printf("the dispatch table is full (%d kernels): raise MAX_KERNELS\n", p4k_kernel_count());
        failures++;
    }
    for (int f = 0; f < nformats; f++)
        printf("  %-6s 1 token: %-12s 2-16: %-12s 17+: %s\n", p4k_format((uint32_t)all_formats[f])->name, p4k_kernel_choice(all_formats[f], P4K_BATCH_ONE),
               p4k_kernel_choice(all_formats[f], P4K_BATCH_SMALL), p4k_kernel_choice(all_formats[f], P4K_BATCH_LARGE));
    const int formats[] = {P4K_Q8_0, P4K_Q4_0, P4K_Q4_1, P4K_Q5_0, P4K_Q5_1, P4K_IQ4_NL};
    const size_t shapes[][3] = {{32, 8, 1}, {96, 7, 2}, {224, 13, 5}, {1056, 8, 67}, {5152, 1, 3}, {640, 16, 4}, {5120, 24, 9}, {1312, 6, 6}, {5152, 5, 7}, {2080, 40, 70}, {5120, 33, 16}, {2048, 17, 1}};
    for (int f = 0; f < (int)(sizeof formats / sizeof formats[0]); f++)
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            check(formats[f], shapes[s][0], shapes[s][1], shapes[s][2], 0);
            check(formats[f], shapes[s][0], shapes[s][1], shapes[s][2], 1);
        }
    const int kformats[] = {P4K_Q4_K, P4K_Q5_K, P4K_Q6_K, P4K_Q2_K, P4K_Q3_K, P4K_IQ4_XS, P4K_IQ2_XXS, P4K_IQ2_XS,
                            P4K_IQ2_S, P4K_IQ3_XXS, P4K_IQ3_S, P4K_IQ1_S, P4K_IQ1_M};
    for (int f = 0; f < (int)(sizeof kformats / sizeof kformats[0]); f++) {
        for (int e = 0; e < 2; e++) {
            check(kformats[f], 256, 5, 3, e);
            check(kformats[f], 2304, 9, 2, e);
            check(kformats[f], 5120, 17, 9, e);
            check(kformats[f], 1024, 40, 20, e);
            check(kformats[f], 512, 3, 1, e);
        }
    }
    check_activation_quantizer();
    // Errors: an unknown format is refused, never computed as another.
    float o[4];
    int8_t q[32] = {0};
    float d[1] = {1};
    int32_t sm[1] = {0};
    uint8_t wz[64] = {0};
    if (p4k_gemm(9, -1, wz, 32, 1, 1, q, d, sm, o, 1, 0) != P4K_EFORMAT || p4k_dequantize_rows(9, wz, 32, 1, o) != P4K_EFORMAT) {
        printf("an unknown format was not refused\n");
        failures++;
    }
    for (int k = 0; k < p4k_kernel_count(); k++) {
        int f, isa;
        const char *name;
        p4k_kernel_info(k, &f, &isa, NULL, &name);
        printf("  kernel %-12s format %2d: %s\n", name, f, checked[k] ? "checked" : skipped[k] ? "SKIPPED (this CPU cannot run it)" : "not exercised");
        if (!checked[k] && !skipped[k]) failures++;
    }
    printf(failures ? "%d mismatches\n" : "all kernels agree with the scalar path bit for bit\n", failures);
    return failures ? 1 : 0;
}
