// NEON kernels for aarch64 (Graviton, Apple Silicon under Linux, Raspberry Pi 5), in two
// flavours: plain Advanced SIMD (every ARMv8-A CPU: widening multiplies, pairwise adds) and the
// dot-product extension (ARMv8.2 `sdot`, compiled for it per function and chosen at run time
// only where the CPU has it). Both follow kernels.h's contract: each block's exact int32 sum,
// its float term added into lane b % 8 in block order, the lanes combined by p4k_combine8, no
// fused multiply-add, so they give the scalar path's bits.
//
// One kernel per format serves every batch size: a weight block is unpacked to int8 once and
// then meets each activation row in turn (a one-token call is the t = 1 case), with one set of
// eight float lanes per activation row.
//
// Only correctness is checked here (under qemu-aarch64, with and without the dot-product
// extension: tools/arm_kernel_check.sh); no speed of these kernels has been measured.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <stdlib.h>

#if defined(__clang__)
#define P4K_DOTPROD __attribute__((target("dotprod")))
#else
#define P4K_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

/// Σ w·a over 16 int8 pairs (|w·a| ≤ 128·127, so two products fit an int16 lane).
static inline int32_t dot16_plain(int8x16_t w, const int8_t *a) {
    const int8x16_t av = vld1q_s8(a);
    int16x8_t p = vmull_s8(vget_low_s8(w), vget_low_s8(av));
    p = vmlal_s8(p, vget_high_s8(w), vget_high_s8(av));
    return vaddvq_s32(vpaddlq_s16(p));
}

/// The same with `sdot`.
P4K_DOTPROD static inline int32_t dot16_sdot(int8x16_t w, const int8_t *a) {
    return vaddvq_s32(vdotq_s32(vdupq_n_s32(0), w, vld1q_s8(a)));
}

/// Q4_0 / Q4_K nibbles: the low (hi = 0) or high (hi = 1) four bits of each byte.
static inline int8x16_t nibbles(uint8x16_t raw, int hi) {
    return vreinterpretq_s8_u8(hi ? vshrq_n_u8(raw, 4) : vandq_u8(raw, vdupq_n_u8(0x0F)));
}

/// Bits `shift`, `shift + 1` … (`mask`) of each byte of v, moved to bit 4 and up.
static inline uint8x16_t high_bits(uint8x16_t v, int shift, uint8_t mask) {
    return vshlq_n_u8(vandq_u8(vshlq_u8(v, vdupq_n_s8((int8_t)-shift)), vdupq_n_u8(mask)), 4);
}

/// Runs `row_fn` on every weight row with fresh lanes (eight per activation row), then combines
/// and stores each row's results. The row functions below add block terms into the lanes.
static int each_row(const p4k_job *j, void (*row_fn)(const p4k_job *, const uint8_t *, float *)) {
    const size_t rb = p4k_row_bytes(j->format, j->cols);
    float *lanes = malloc(j->t * 8 * sizeof(float));
    if (!lanes) return -1;
    for (size_t r = 0; r < j->rows; r++) {
        for (size_t k = 0; k < 8 * j->t; k++) lanes[k] = 0;
        row_fn(j, j->w + r * rb, lanes);
        for (size_t i = 0; i < j->t; i++) p4k_put(j->out + i * j->ldo + r, p4k_combine8(lanes + 8 * i), j->accumulate);
    }
    free(lanes);
    return 0;
}

// The row functions, written once and compiled for each flavour: ATTR is the function attribute
// and DOT16 the dot product of that flavour.
#define P4K_NEON_KERNELS(SUFFIX, ATTR, DOT16)                                                              \
    ATTR static void legacy_row_##SUFFIX(const p4k_job *j, const uint8_t *row, float *lanes) {            \
        const int q8 = j->format == P4K_Q8_0;                                                             \
        const size_t nb = j->cols / 32, stride = q8 ? sizeof(p4k_block_q8_0) : sizeof(p4k_block_q4_0);    \
        for (size_t b = 0; b < nb; b++) {                                                                 \
            int8x16_t w0, w1;                                                                             \
            if (q8) {                                                                                     \
                const p4k_block_q8_0 *blk = (const p4k_block_q8_0 *)(row + b * stride);                   \
                w0 = vld1q_s8(blk->qs);                                                                   \
                w1 = vld1q_s8(blk->qs + 16);                                                              \
            } else {                                                                                      \
                const uint8x16_t raw = vld1q_u8(((const p4k_block_q4_0 *)(row + b * stride))->qs);        \
                w0 = nibbles(raw, 0);                                                                     \
                w1 = nibbles(raw, 1);                                                                     \
            }                                                                                             \
            const float scale = p4k_block_scale(row, stride, b);                                          \
            for (size_t i = 0; i < j->t; i++) {                                                           \
                const int8_t *a = j->aq + i * j->cols + 32 * b;                                           \
                int32_t s = DOT16(w0, a) + DOT16(w1, a + 16);                                             \
                if (!q8) s -= 8 * j->asum[i * nb + b];                                                    \
                float *l = lanes + 8 * i + (b & 7);                                                       \
                *l = *l + (float)s * (scale * j->ad[i * nb + b]);                                         \
            }                                                                                             \
        }                                                                                                 \
    }                                                                                                     \
                                                                                                          \
    ATTR static void kquant_row_##SUFFIX(const p4k_job *j, const uint8_t *row, float *lanes) {            \
        const size_t nb = j->cols / 32, nsb = j->cols / 256;                                              \
        const int six = j->format == P4K_Q6_K, five = j->format == P4K_Q5_K;                              \
        for (size_t sb = 0; sb < nsb; sb++) {                                                             \
            if (six) {                                                                                    \
                const p4k_block_q6_k *blk = (const p4k_block_q6_k *)(row + sb * sizeof(p4k_block_q6_k));     \
                const float d = p4k_h2f(blk->d);                                           \
                for (int sub = 0; sub < 8; sub++) {                                                       \
                    const size_t b = 8 * sb + (size_t)sub;                                                \
                    const int h = sub / 4, k = sub % 4;                                                   \
                    const uint8_t *ql = blk->ql + 64 * h + 32 * (k & 1), *qh = blk->qh + 32 * h;          \
                    const int8x16_t m32 = vdupq_n_s8(32);                                                 \
                    const int8x16_t q0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(                           \
                        vreinterpretq_u8_s8(nibbles(vld1q_u8(ql), k >= 2)), high_bits(vld1q_u8(qh), 2 * k, 3))), m32);     \
                    const int8x16_t q1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(                           \
                        vreinterpretq_u8_s8(nibbles(vld1q_u8(ql + 16), k >= 2)), high_bits(vld1q_u8(qh + 16), 2 * k, 3))), m32);     \
                    const int32_t sc0 = blk->scales[2 * sub], sc1 = blk->scales[2 * sub + 1];              \
                    for (size_t i = 0; i < j->t; i++) {                                                   \
                        const int8_t *a = j->aq + i * j->cols + 32 * b;                                   \
                        const int32_t isum = sc0 * DOT16(q0, a) + sc1 * DOT16(q1, a + 16);                \
                        float *l = lanes + 8 * i + sub;                                                   \
                        *l = *l + (float)isum * (d * j->ad[i * nb + b]);                                  \
                    }                                                                                     \
                }                                                                                         \
            } else {                                                                                      \
                const uint8_t *blk = row + sb * (five ? sizeof(p4k_block_q5_k) : sizeof(p4k_block_q4_k));     \
                const p4k_block_q4_k *b4 = (const p4k_block_q4_k *)blk;                                   \
                const p4k_block_q5_k *b5 = (const p4k_block_q5_k *)blk;                                   \
                const float d = p4k_h2f(b4->d), dmin = p4k_h2f(b4->dmin);     \
                uint8_t sc[8], m[8];                                                                      \
                p4k_kscales_bytes(b4->scales, sc, m);                                                     \
                const uint8_t *qs = five ? b5->qs : b4->qs;                                               \
                for (int sub = 0; sub < 8; sub++) {                                                       \
                    const size_t b = 8 * sb + (size_t)sub;                                                \
                    int8x16_t q0 = nibbles(vld1q_u8(qs + 32 * (sub / 2)), sub & 1);                       \
                    int8x16_t q1 = nibbles(vld1q_u8(qs + 32 * (sub / 2) + 16), sub & 1);                  \
                    if (five) {                                                                           \
                        q0 = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(q0), high_bits(vld1q_u8(b5->qh), sub, 1)));          \
                        q1 = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(q1), high_bits(vld1q_u8(b5->qh + 16), sub, 1)));     \
                    }                                                                                     \
                    const float ds = d * (float)sc[sub], dm = dmin * (float)m[sub];                       \
                    for (size_t i = 0; i < j->t; i++) {                                                   \
                        const int8_t *a = j->aq + i * j->cols + 32 * b;                                   \
                        const int32_t isum = DOT16(q0, a) + DOT16(q1, a + 16);                            \
                        const float t1 = ds * (float)isum, t2 = dm * (float)j->asum[i * nb + b];          \
                        float *l = lanes + 8 * i + sub;                                                   \
                        *l = *l + j->ad[i * nb + b] * (t1 - t2);                                          \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
    }                                                                                                     \
    static int legacy_##SUFFIX(const p4k_job *j) { return each_row(j, legacy_row_##SUFFIX); }            \
    static int kquant_##SUFFIX(const p4k_job *j) { return each_row(j, kquant_row_##SUFFIX); }

P4K_NEON_KERNELS(neon, , dot16_plain)
P4K_NEON_KERNELS(sdot, P4K_DOTPROD, dot16_sdot)

const p4k_kernel p4k_kernels_neon[] = {
    {P4K_Q8_0, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", legacy_neon},
    {P4K_Q4_0, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", legacy_neon},
    {P4K_Q4_K, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", kquant_neon},
    {P4K_Q5_K, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", kquant_neon},
    {P4K_Q6_K, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", kquant_neon},
    {P4K_Q8_0, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", legacy_sdot},
    {P4K_Q4_0, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", legacy_sdot},
    {P4K_Q4_K, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", kquant_sdot},
    {P4K_Q5_K, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", kquant_sdot},
    {P4K_Q6_K, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", kquant_sdot},
    {0, 0, 0, NULL, NULL},
};
#endif
