// AVX2 kernels of the lattice IQ types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M),
// rows for every batch size: each 32-value sub-block is decoded once into 32 signed bytes and met
// by up to IQ_TOKENS tokens. The scalar kernels' arithmetic (kernels_scalar.c, row_iq): per
// sub-block isum = m₀·Σ₀ v·a + m₁·Σ₁ v·a (exact int32), term = isum·(D·d_a) in lane b % 8, the
// lanes combined by p4k_combine8 — identical bits.
//
// How the grid lookups are paid, per 32 weights: four 64-bit grid entries (IQ3: eight 32-bit)
// loaded straight into one vector (an entry is its values' bytes, iq_grids.c), the sign bits (a
// 7-bit index into p4k_iq_ksigns, or stored bytes) spread to a byte mask by one shuffle and
// compare, and the negation applied as (g ^ mask) − mask; IQ1's ±1/8 shift is folded in as
// 8·g ± 1 (a byte shift and an add). The decoding is shared by every token of the pass; each token
// then costs one `maddubs` (|v| times the activations with v's sign, |pair| ≤ 2·62·127) and one
// `madd` by the halves' multipliers [m₀ … m₁ …] per 32 weights, as Q4_0 does.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#define _GNU_SOURCE
#include "kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>

enum { IQ_TOKENS = 4 };

// Byte k of the result is 0xFF when bit k % 8 of byte k / 8 of `sg` is set (a value's sign).
__attribute__((target("avx2"), always_inline)) static inline __m256i sign_mask(uint32_t sg) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                            3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i s = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)sg), spread), bits);
    return _mm256_cmpeq_epi8(s, bits);
}

__attribute__((target("avx2"), always_inline)) static inline __m256i negate_where(__m256i g, __m256i neg) {
    return _mm256_sub_epi8(_mm256_xor_si256(g, neg), neg);
}

static inline uint32_t ksigns4(uint32_t aux) {
    return (uint32_t)p4k_iq_ksigns[aux & 127] | (uint32_t)p4k_iq_ksigns[(aux >> 7) & 127] << 8 |
           (uint32_t)p4k_iq_ksigns[(aux >> 14) & 127] << 16 | (uint32_t)p4k_iq_ksigns[(aux >> 21) & 127] << 24;
}

static inline long long delta8(int negative) { return negative ? -1LL : 0x0101010101010101LL; }

// Sub-block j of super-block `blk`: its 32 values v as signed bytes, the multipliers [m₀ ×8, m₁ ×8]
// as int16 (low lane: values 0…15), and D (p4k_iq_decode32's; every index masked to its table).
__attribute__((target("avx2"), always_inline)) static inline __m256i iq_values(int format, const uint8_t *blk, int j,
                                                                               __m256i *mult, float *D) {
    int32_t m0, m1;
    __m256i v;
    switch (format) {
    case P4K_IQ2_XXS: {
        const p4k_block_iq2_xxs *x = (const p4k_block_iq2_xxs *)blk;
        uint32_t aux;
        memcpy(&aux, x->qs + 8 * j + 4, 4);
        const uint8_t *i = x->qs + 8 * j;
        const __m256i g = _mm256_set_epi64x((long long)p4k_iq2xxs_grid[i[3]], (long long)p4k_iq2xxs_grid[i[2]],
                                            (long long)p4k_iq2xxs_grid[i[1]], (long long)p4k_iq2xxs_grid[i[0]]);
        v = negate_where(g, sign_mask(ksigns4(aux)));
        m0 = m1 = 2 * (int32_t)(aux >> 28) + 1;
        *D = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        break;
    }
    case P4K_IQ3_XXS: {
        const p4k_block_iq3_xxs *x = (const p4k_block_iq3_xxs *)blk;
        uint32_t aux;
        memcpy(&aux, x->sas + 4 * j, 4);
        const uint8_t *i = x->qs + 8 * j;
        const __m256i g = _mm256_setr_epi32((int)p4k_iq3xxs_grid[i[0]], (int)p4k_iq3xxs_grid[i[1]], (int)p4k_iq3xxs_grid[i[2]],
                                            (int)p4k_iq3xxs_grid[i[3]], (int)p4k_iq3xxs_grid[i[4]], (int)p4k_iq3xxs_grid[i[5]],
                                            (int)p4k_iq3xxs_grid[i[6]], (int)p4k_iq3xxs_grid[i[7]]);
        v = negate_where(g, sign_mask(ksigns4(aux)));
        m0 = m1 = 2 * (int32_t)(aux >> 28) + 1;
        *D = p4k_h2f(p4k_load_u16(&x->d)) * 0.25f;
        break;
    }
    case P4K_IQ2_XS: {
        const p4k_block_iq2_xs *x = (const p4k_block_iq2_xs *)blk;
        uint16_t q[4];
        memcpy(q, x->qs + 4 * j, 8);
        const __m256i g = _mm256_set_epi64x((long long)p4k_iq2xs_grid[q[3] & 511], (long long)p4k_iq2xs_grid[q[2] & 511],
                                            (long long)p4k_iq2xs_grid[q[1] & 511], (long long)p4k_iq2xs_grid[q[0] & 511]);
        const uint32_t sg = (uint32_t)p4k_iq_ksigns[q[0] >> 9] | (uint32_t)p4k_iq_ksigns[q[1] >> 9] << 8 |
                            (uint32_t)p4k_iq_ksigns[q[2] >> 9] << 16 | (uint32_t)p4k_iq_ksigns[q[3] >> 9] << 24;
        v = negate_where(g, sign_mask(sg));
        m0 = 2 * (x->scales[j] & 0xF) + 1;
        m1 = 2 * (x->scales[j] >> 4) + 1;
        *D = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        break;
    }
    case P4K_IQ2_S: {
        const p4k_block_iq2_s *x = (const p4k_block_iq2_s *)blk;
        const uint8_t *i = x->qs + 4 * j;
        const unsigned h = x->qh[j];
        const __m256i g = _mm256_set_epi64x((long long)p4k_iq2s_grid[i[3] | ((h >> 6) & 3) << 8],
                                            (long long)p4k_iq2s_grid[i[2] | ((h >> 4) & 3) << 8],
                                            (long long)p4k_iq2s_grid[i[1] | ((h >> 2) & 3) << 8],
                                            (long long)p4k_iq2s_grid[i[0] | (h & 3) << 8]);
        uint32_t sg;
        memcpy(&sg, x->signs + 4 * j, 4);
        v = negate_where(g, sign_mask(sg));
        m0 = 2 * (x->scales[j] & 0xF) + 1;
        m1 = 2 * (x->scales[j] >> 4) + 1;
        *D = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        break;
    }
    case P4K_IQ3_S: {
        const p4k_block_iq3_s *x = (const p4k_block_iq3_s *)blk;
        const uint8_t *i = x->qs + 8 * j;
        const unsigned h = x->qh[j];
#define G_(l) (int)p4k_iq3s_grid[i[l] | ((h >> (l)) & 1) << 8]
        const __m256i g = _mm256_setr_epi32(G_(0), G_(1), G_(2), G_(3), G_(4), G_(5), G_(6), G_(7));
#undef G_
        uint32_t sg;
        memcpy(&sg, x->signs + 4 * j, 4);
        v = negate_where(g, sign_mask(sg));
        m0 = m1 = 2 * ((x->scales[j / 2] >> (4 * (j % 2))) & 0xF) + 1;
        *D = p4k_h2f(p4k_load_u16(&x->d));
        break;
    }
    case P4K_IQ1_S: {
        const p4k_block_iq1_s *x = (const p4k_block_iq1_s *)blk;
        const uint16_t qh = p4k_load_u16(x->qh + j);
        const uint8_t *i = x->qs + 4 * j;
        const __m256i g = _mm256_set_epi64x((long long)p4k_iq1s_grid[i[3] | ((qh >> 9) & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[2] | ((qh >> 6) & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[1] | ((qh >> 3) & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[0] | (qh & 7) << 8]);
        const __m256i g8 = _mm256_and_si256(_mm256_slli_epi16(g, 3), _mm256_set1_epi8((char)0xF8));  // 8·g per byte
        v = _mm256_add_epi8(g8, _mm256_set1_epi64x(delta8(qh & 0x8000)));
        m0 = m1 = 2 * ((qh >> 12) & 7) + 1;
        *D = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        break;
    }
    default: {  // IQ1_M
        const p4k_block_iq1_m *x = (const p4k_block_iq1_m *)blk;
        uint16_t s[4];
        memcpy(s, x->scales, 8);
        const uint16_t dh = (uint16_t)((s[0] >> 12) | ((s[1] >> 8) & 0xF0) | ((s[2] >> 4) & 0xF00) | (s[3] & 0xF000));
        const uint8_t *i = x->qs + 4 * j;
        const unsigned n01 = x->qh[2 * j], n23 = x->qh[2 * j + 1];
        const __m256i g = _mm256_set_epi64x((long long)p4k_iq1s_grid[i[3] | ((n23 >> 4) & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[2] | (n23 & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[1] | ((n01 >> 4) & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[0] | (n01 & 7) << 8]);
        const __m256i g8 = _mm256_and_si256(_mm256_slli_epi16(g, 3), _mm256_set1_epi8((char)0xF8));
        const __m256i delta = _mm256_set_epi64x(delta8(n23 & 0x80), delta8(n23 & 0x08), delta8(n01 & 0x80), delta8(n01 & 0x08));
        v = _mm256_add_epi8(g8, delta);
        m0 = 2 * ((s[j / 2] >> (6 * (j % 2))) & 7) + 1;
        m1 = 2 * ((s[j / 2] >> (6 * (j % 2) + 3)) & 7) + 1;
        *D = p4k_h2f(dh) * 0.125f;
        break;
    }
    }
    *mult = _mm256_setr_epi16((short)m0, (short)m0, (short)m0, (short)m0, (short)m0, (short)m0, (short)m0, (short)m0,
                              (short)m1, (short)m1, (short)m1, (short)m1, (short)m1, (short)m1, (short)m1, (short)m1);
    return v;
}

// For the panel kernels (panels.c): sub-block j of `blk` as u = v + 64 (0…126) and its multipliers.
__attribute__((target("avx2"))) float p4k_iq_decode_u(int format, const uint8_t *blk, int j, uint8_t u[32], int16_t m[2]) {
    __m256i mult;
    float D;
    const __m256i v = iq_values(format, blk, j, &mult, &D);
    _mm256_storeu_si256((__m256i *)u, _mm256_add_epi8(v, _mm256_set1_epi8(64)));
    m[0] = (int16_t)_mm256_extract_epi16(mult, 0);
    m[1] = (int16_t)_mm256_extract_epi16(mult, 8);
    return D;
}

// Eight int32 vectors → one vector whose lane k is the sum of p[k]'s lanes (exact integers).
__attribute__((target("avx2"), always_inline)) static inline __m256i hsum8(const __m256i p[8]) {
    const __m256i h01 = _mm256_hadd_epi32(p[0], p[1]), h23 = _mm256_hadd_epi32(p[2], p[3]);
    const __m256i h45 = _mm256_hadd_epi32(p[4], p[5]), h67 = _mm256_hadd_epi32(p[6], p[7]);
    const __m256i a = _mm256_hadd_epi32(h01, h23), b = _mm256_hadd_epi32(h45, h67);  // [0 1 2 3 | 0 1 2 3], [4 5 6 7 | …]
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

// One row against `nt` (≤ IQ_TOKENS) tokens: a[k·lda …], ad[k·nbd …]; results to res[k].
__attribute__((target("avx2,f16c"), always_inline)) static inline void
row_iq(int format, const uint8_t *w, size_t bb, size_t nsb, const int8_t *a, size_t lda, const float *ad, size_t nbd,
       int nt, float *res) {
    __m256 acc[IQ_TOKENS];
    for (int k = 0; k < nt; k++) acc[k] = _mm256_setzero_ps();
    for (size_t i = 0; i < nsb; i++, w += bb) {
        __m256i part[IQ_TOKENS][8];
        float D = 0;
        for (int j = 0; j < 8; j++) {
            __m256i mult;
            const __m256i v = iq_values(format, w, j, &mult, &D);
            const __m256i av = _mm256_sign_epi8(v, v);
            for (int k = 0; k < nt; k++) {
                const __m256i x = _mm256_loadu_si256((const __m256i *)(a + k * lda + 256 * i + 32 * j));
                part[k][j] = _mm256_madd_epi16(_mm256_maddubs_epi16(av, _mm256_sign_epi8(x, v)), mult);
            }
        }
        for (int k = 0; k < nt; k++) {
            const __m256 da = _mm256_mul_ps(_mm256_set1_ps(D), _mm256_loadu_ps(ad + k * nbd + 8 * i));
            acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(_mm256_cvtepi32_ps(hsum8(part[k])), da));
        }
    }
    for (int k = 0; k < nt; k++) {
        float l[8];
        _mm256_storeu_ps(l, acc[k]);
        res[k] = p4k_combine8(l);
    }
}

#define IQ_ROWS(FMT)                                                                                                   \
    switch (nt) {                                                                                                      \
    case 1: row_iq(FMT, w, bb, nsb, a, lda, ad, nbd, 1, res); break;                                                   \
    case 2: row_iq(FMT, w, bb, nsb, a, lda, ad, nbd, 2, res); break;                                                   \
    case 3: row_iq(FMT, w, bb, nsb, a, lda, ad, nbd, 3, res); break;                                                   \
    default: row_iq(FMT, w, bb, nsb, a, lda, ad, nbd, 4, res); break;                                                  \
    }

__attribute__((target("avx2,f16c"))) static void row_iq_any(int format, const uint8_t *w, size_t bb, size_t nsb,
                                                            const int8_t *a, size_t lda, const float *ad, size_t nbd,
                                                            int nt, float *res) {
    switch (format) {
    case P4K_IQ2_XXS: IQ_ROWS(P4K_IQ2_XXS) break;
    case P4K_IQ2_XS: IQ_ROWS(P4K_IQ2_XS) break;
    case P4K_IQ2_S: IQ_ROWS(P4K_IQ2_S) break;
    case P4K_IQ3_XXS: IQ_ROWS(P4K_IQ3_XXS) break;
    case P4K_IQ3_S: IQ_ROWS(P4K_IQ3_S) break;
    case P4K_IQ1_S: IQ_ROWS(P4K_IQ1_S) break;
    default: IQ_ROWS(P4K_IQ1_M) break;
    }
}

// Rows one by one; tokens IQ_TOKENS at a time share each decoded sub-block. For several tokens,
// panels of 16 rows stay in cache while the groups of tokens pass over them.
__attribute__((target("avx2,f16c"))) static int iq_rows(const p4k_job *job) {
    const size_t cols = job->cols, nb = cols / 32, nsb = cols / 256, rb = p4k_row_bytes(job->format, cols);
    const size_t bb = p4k_format((uint32_t)job->format)->block_bytes;
    const size_t panel = job->t <= IQ_TOKENS ? job->rows : 16;
    for (size_t r0 = 0; r0 < job->rows; r0 += panel) {
        const size_t n = job->rows - r0 < panel ? job->rows - r0 : panel;
        for (size_t i = 0; i < job->t; i += IQ_TOKENS) {
            const int nt = (int)(job->t - i < IQ_TOKENS ? job->t - i : IQ_TOKENS);
            for (size_t r = r0; r < r0 + n; r++) {
                float res[IQ_TOKENS];
                row_iq_any(job->format, job->w + r * rb, bb, nsb, job->aq + i * cols, cols, job->ad + i * nb, nb, nt, res);
                for (int k = 0; k < nt; k++) p4k_put(job->out + (i + (size_t)k) * job->ldo + r, res[k], job->accumulate);
            }
        }
    }
    return 0;
}

const p4k_kernel p4k_kernels_iq_avx2[] = {
    {P4K_IQ2_XXS, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", iq_rows},
    {P4K_IQ2_XS, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", iq_rows},
    {P4K_IQ2_S, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", iq_rows},
    {P4K_IQ3_XXS, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", iq_rows},
    {P4K_IQ3_S, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", iq_rows},
    {P4K_IQ1_S, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", iq_rows},
    {P4K_IQ1_M, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", iq_rows},
    {0, 0, 0, NULL, NULL},
};
#endif
