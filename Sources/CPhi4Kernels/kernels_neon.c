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

/// The fifth bits of a Q5 block's elements 16·half … 16·half + 15 (bit e of the 32-bit qh), as 0x10.
static inline uint8x16_t fifth16(const uint8_t qh[4], int half) {
    const uint8x16_t bytes = vcombine_u8(vdup_n_u8(qh[2 * half]), vdup_n_u8(qh[2 * half + 1]));
    const uint8x16_t bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return vandq_u8(vtstq_u8(bytes, bit), vdupq_n_u8(0x10));
}

/// Block `sub` of a Q2_K / Q3_K / IQ4_XS super-block, or the block of 32 at `blk`, decoded as
/// kernels_scalar.c reads it: two int8x16 of values (Q2_K q; Q3_K q in −4…3; IQ4 table values;
/// Q5_0 q − 16; Q4_1 / Q5_1 q), the float scale d (IQ4_XS: d·sc), Q4_1 / Q5_1's m and Q2_K's dmin in
/// `m`, the 16-value scales s0, s1 and Q2_K's mins m0, m1.
static inline void low_decode(int f, const uint8_t *blk, int sub, int8x16_t *w0, int8x16_t *w1, float *d, float *m,
                              int32_t *s0, int32_t *s1, int32_t *m0, int32_t *m1) {
    const int8x16_t table = vld1q_s8(p4k_iq4nl_values);
    switch (f) {
    case P4K_IQ4_NL: case P4K_IQ4_XS: {
        const uint8_t *qs = f == P4K_IQ4_NL ? ((const p4k_block_iq4_nl *)blk)->qs : ((const p4k_block_iq4_xs *)blk)->qs + 16 * sub;
        const uint8x16_t raw = vld1q_u8(qs);
        *w0 = vqtbl1q_s8(table, vandq_u8(raw, vdupq_n_u8(0x0F)));
        *w1 = vqtbl1q_s8(table, vshrq_n_u8(raw, 4));
        *d = p4k_h2f(p4k_load_u16(blk));
        if (f == P4K_IQ4_XS) {
            int8_t sc[8];
            p4k_iq4xs_scales((const p4k_block_iq4_xs *)blk, sc);
            *d = *d * (float)sc[sub];
        }
        break;
    }
    case P4K_Q4_1: case P4K_Q5_0: case P4K_Q5_1: {
        const uint8_t *qs = f == P4K_Q4_1 ? ((const p4k_block_q4_1 *)blk)->qs
                            : f == P4K_Q5_0 ? ((const p4k_block_q5_0 *)blk)->qs : ((const p4k_block_q5_1 *)blk)->qs;
        const uint8x16_t raw = vld1q_u8(qs);
        uint8x16_t lo = vandq_u8(raw, vdupq_n_u8(0x0F)), hi = vshrq_n_u8(raw, 4);
        if (f != P4K_Q4_1) {
            const uint8_t *qh = f == P4K_Q5_0 ? ((const p4k_block_q5_0 *)blk)->qh : ((const p4k_block_q5_1 *)blk)->qh;
            lo = vorrq_u8(lo, fifth16(qh, 0));
            hi = vorrq_u8(hi, fifth16(qh, 1));
        }
        *w0 = vreinterpretq_s8_u8(lo);
        *w1 = vreinterpretq_s8_u8(hi);
        if (f == P4K_Q5_0) {
            *w0 = vsubq_s8(*w0, vdupq_n_s8(16));
            *w1 = vsubq_s8(*w1, vdupq_n_s8(16));
        }
        *d = p4k_h2f(p4k_load_u16(blk));
        if (f != P4K_Q5_0) *m = p4k_h2f(p4k_load_u16(blk + 2));
        break;
    }
    default: {  // Q2_K, Q3_K: 2 low bits of element e at bits 2·(sub % 4) of qs[32·(sub / 4) + e]
        const int q3 = f == P4K_Q3_K;
        const uint8_t *qs = q3 ? ((const p4k_block_q3_k *)blk)->qs : ((const p4k_block_q2_k *)blk)->qs;
        const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * (sub % 4)));
        uint8x16_t l0 = vandq_u8(vshlq_u8(vld1q_u8(qs + 32 * (sub / 4)), shift), vdupq_n_u8(3));
        uint8x16_t l1 = vandq_u8(vshlq_u8(vld1q_u8(qs + 32 * (sub / 4) + 16), shift), vdupq_n_u8(3));
        if (q3) {
            const p4k_block_q3_k *x = (const p4k_block_q3_k *)blk;
            const int8x16_t hs = vdupq_n_s8((int8_t)-sub);
            const uint8x16_t h0 = vandq_u8(vshlq_u8(vld1q_u8(x->hmask), hs), vdupq_n_u8(1));
            const uint8x16_t h1 = vandq_u8(vshlq_u8(vld1q_u8(x->hmask + 16), hs), vdupq_n_u8(1));
            // q = low − 4 unless the bit is set: (low | bit·4) − 4
            *w0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l0, vshlq_n_u8(h0, 2))), vdupq_n_s8(4));
            *w1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l1, vshlq_n_u8(h1, 2))), vdupq_n_s8(4));
            int8_t sc[16];
            p4k_q3k_scales(x->scales, sc);
            *s0 = sc[2 * sub];
            *s1 = sc[2 * sub + 1];
            *d = p4k_h2f(x->d);
        } else {
            const p4k_block_q2_k *x = (const p4k_block_q2_k *)blk;
            *w0 = vreinterpretq_s8_u8(l0);
            *w1 = vreinterpretq_s8_u8(l1);
            *s0 = x->scales[2 * sub] & 0xF;
            *s1 = x->scales[2 * sub + 1] & 0xF;
            *m0 = x->scales[2 * sub] >> 4;
            *m1 = x->scales[2 * sub + 1] >> 4;
            *d = p4k_h2f(x->d);
            *m = p4k_h2f(x->dmin);
        }
        break;
    }
    }
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
                                                                                                          \
    /* The types of low-bit files: each block of 32 decoded to two int8x16 (signed values), then */      \
    /* each token's integer sums and float step as kernels_scalar.c forms them. */                       \
    ATTR static void lowbit_row_##SUFFIX(const p4k_job *j, const uint8_t *row, float *lanes) {            \
        const int f = j->format;                                                                          \
        const size_t nb = j->cols / 32, bs = p4k_format((uint32_t)f)->block_bytes;                        \
        const int per256 = f == P4K_Q2_K || f == P4K_Q3_K || f == P4K_IQ4_XS;                            \
        for (size_t b = 0; b < nb; b++) {                                                                 \
            const uint8_t *blk = per256 ? row + (b / 8) * bs : row + b * bs;                              \
            const int sub = (int)(b % 8);                                                                 \
            int8x16_t w0, w1;                                                                             \
            float d, m = 0;                                                                               \
            int32_t s0 = 1, s1 = 1, m0 = 0, m1 = 0; /* 16-value scales and mins (Q2_K, Q3_K) */          \
            low_decode(f, blk, sub, &w0, &w1, &d, &m, &s0, &s1, &m0, &m1);                               \
            for (size_t i = 0; i < j->t; i++) {                                                           \
                const int8_t *a = j->aq + i * j->cols + 32 * b;                                           \
                const float ad = j->ad[i * nb + b];                                                       \
                float *l = lanes + 8 * i + (b & 7);                                                       \
                if (f == P4K_Q2_K) {                                                                      \
                    const int8x16_t one = vdupq_n_s8(1);                                                  \
                    const int32_t isum = s0 * DOT16(w0, a) + s1 * DOT16(w1, a + 16);                      \
                    const int32_t msum = m0 * DOT16(one, a) + m1 * DOT16(one, a + 16);                    \
                    const float t1 = d * (float)isum, t2 = m * (float)msum;                               \
                    *l = *l + ad * (t1 - t2);                                                             \
                } else if (f == P4K_Q3_K) {                                                               \
                    const int32_t isum = s0 * DOT16(w0, a) + s1 * DOT16(w1, a + 16);                      \
                    *l = *l + (float)isum * (d * ad);                                                     \
                } else if (f == P4K_Q4_1 || f == P4K_Q5_1) {                                              \
                    const int32_t isum = DOT16(w0, a) + DOT16(w1, a + 16);                                \
                    const float t1 = d * (float)isum, t2 = m * (float)j->asum[i * nb + b];                \
                    *l = *l + ad * (t1 + t2);                                                             \
                } else { /* IQ4_NL, IQ4_XS (d = d·sc), Q5_0 (values q − 16) */                            \
                    const int32_t sum = DOT16(w0, a) + DOT16(w1, a + 16);                                 \
                    *l = *l + (float)sum * (d * ad);                                                      \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
    }                                                                                                     \
                                                                                                          \
    /* The lattice IQ types: each sub-block of 32 decoded once (p4k_iq_decode32, scalar: grid */         \
    /* lookups and signs) into two int8x16, then per token isum = m0·Σ0 + m1·Σ1, term = isum·(D·d_a). */ \
    ATTR static void iq_row_##SUFFIX(const p4k_job *j, const uint8_t *row, float *lanes) {                \
        const size_t nb = j->cols / 32, bs = p4k_format((uint32_t)j->format)->block_bytes;                \
        for (size_t b = 0; b < nb; b++) {                                                                 \
            int16_t v[32];                                                                                \
            int32_t mm[2];                                                                                \
            const float d = p4k_iq_decode32(j->format, row + (b / 8) * bs, (int)(b % 8), v, mm);          \
            int8_t v8[32];                                                                                \
            for (int e = 0; e < 32; e++) v8[e] = (int8_t)v[e]; /* |v| ≤ 62 */                             \
            const int8x16_t w0 = vld1q_s8(v8), w1 = vld1q_s8(v8 + 16);                                    \
            for (size_t i = 0; i < j->t; i++) {                                                           \
                const int8_t *a = j->aq + i * j->cols + 32 * b;                                           \
                const int32_t isum = mm[0] * DOT16(w0, a) + mm[1] * DOT16(w1, a + 16);                    \
                float *l = lanes + 8 * i + (b & 7);                                                       \
                *l = *l + (float)isum * (d * j->ad[i * nb + b]);                                          \
            }                                                                                             \
        }                                                                                                 \
    }                                                                                                     \
    static int iq_##SUFFIX(const p4k_job *j) { return each_row(j, iq_row_##SUFFIX); }                    \
    static int legacy_##SUFFIX(const p4k_job *j) { return each_row(j, legacy_row_##SUFFIX); }            \
    static int kquant_##SUFFIX(const p4k_job *j) { return each_row(j, kquant_row_##SUFFIX); }            \
    static int lowbit_##SUFFIX(const p4k_job *j) { return each_row(j, lowbit_row_##SUFFIX); }

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
    {P4K_Q2_K, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", lowbit_neon},
    {P4K_Q3_K, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", lowbit_neon},
    {P4K_IQ4_XS, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", lowbit_neon},
    {P4K_IQ4_NL, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", lowbit_neon},
    {P4K_Q4_1, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", lowbit_neon},
    {P4K_Q5_0, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", lowbit_neon},
    {P4K_Q5_1, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", lowbit_neon},
    {P4K_Q2_K, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", lowbit_sdot},
    {P4K_Q3_K, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", lowbit_sdot},
    {P4K_IQ4_XS, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", lowbit_sdot},
    {P4K_IQ4_NL, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", lowbit_sdot},
    {P4K_Q4_1, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", lowbit_sdot},
    {P4K_Q5_0, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", lowbit_sdot},
    {P4K_Q5_1, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", lowbit_sdot},
    {P4K_IQ2_XXS, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", iq_neon},
    {P4K_IQ2_XS, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", iq_neon},
    {P4K_IQ2_S, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", iq_neon},
    {P4K_IQ3_XXS, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", iq_neon},
    {P4K_IQ3_S, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", iq_neon},
    {P4K_IQ1_S, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", iq_neon},
    {P4K_IQ1_M, P4K_ISA_NEON, P4K_ALL_CLASSES, "neon", iq_neon},
    {P4K_IQ2_XXS, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", iq_sdot},
    {P4K_IQ2_XS, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", iq_sdot},
    {P4K_IQ2_S, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", iq_sdot},
    {P4K_IQ3_XXS, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", iq_sdot},
    {P4K_IQ3_S, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", iq_sdot},
    {P4K_IQ1_S, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", iq_sdot},
    {P4K_IQ1_M, P4K_ISA_DOTPROD, P4K_ALL_CLASSES, "neon-dotprod", iq_sdot},
    {0, 0, 0, NULL, NULL},
};
#endif
