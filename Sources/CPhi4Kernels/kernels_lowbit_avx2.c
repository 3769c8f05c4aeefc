// AVX2 row kernels for the formats of published low-bit files: Q2_K, Q3_K, IQ4_XS (super-blocks of
// 256) and IQ4_NL, Q4_1, Q5_0, Q5_1 (blocks of 32). One token row by row; several tokens over panels
// of 16 rows, which stay in cache while every token passes over them (for larger batches each also
// has panel kernels, gemm_avx2.c: its blocks decoded into panels; calibration picks per batch size).
// Each keeps the scalar kernels' arithmetic (kernels_scalar.c), so results equal theirs bit for bit.
//
// How each pays for its decoding, per 32 weights:
//  - IQ4_NL / IQ4_XS: the 4-bit indices become signed values through one byte shuffle
//    (`vpshufb` over the 16-entry table, in both 128-bit lanes); the products are signed × signed,
//    so the weights' sign moves onto the activations (|w| · sign(a, w)) for `maddubs`.
//  - Q3_K / Q2_K: 2 low bits by shift and mask, Q3_K's third bit from hmask by a shift into bit 2
//    (the value u = q + 4 ≥ 0, so `maddubs` takes it unsigned; the 4 comes off once per
//    super-block through the activations' 16-value sums, as Q6_K's 32 does); the 16-value scales
//    multiply the int16 pair sums in one `madd`.
//  - Q4_1 / Q5_0 / Q5_1: nibbles as Q4_0's, the fifth bit from qh by a byte shuffle and compare.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#define _GNU_SOURCE
#include "kernels.h"
#if defined(__x86_64__)
#include "simd.h"
#include <immintrin.h>
#include <stdlib.h>

// ---- Blocks of 32: IQ4_NL, Q4_1, Q5_0, Q5_1 ---------------------------------------------------

// The exact integer sum of one block against its 32 activations: IQ4_NL Σ kv[q]·a; Q5_0 Σ q·a
// (the 16·Σa offset comes off with the float step); Q4_1 / Q5_1 Σ q·a. As 8 int32 partials.
__attribute__((target("avx2"), always_inline)) static inline __m256i block_partials(int format, const uint8_t *blk,
                                                                                    const int8_t *a) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)a);
    if (format == P4K_IQ4_NL) {
        const __m256i v = _mm256_shuffle_epi8(p4k_iq4_table(), p4k_nibbles32(((const p4k_block_iq4_nl *)blk)->qs));
        return p4k_dot_signed(v, x);
    }
    __m256i q;
    if (format == P4K_Q4_1) q = p4k_nibbles32(((const p4k_block_q4_1 *)blk)->qs);
    else if (format == P4K_Q5_0) {
        const p4k_block_q5_0 *b = (const p4k_block_q5_0 *)blk;
        q = _mm256_or_si256(p4k_nibbles32(b->qs), p4k_fifth_bits(b->qh));
    } else {
        const p4k_block_q5_1 *b = (const p4k_block_q5_1 *)blk;
        q = _mm256_or_si256(p4k_nibbles32(b->qs), p4k_fifth_bits(b->qh));
    }
    // q ≤ 31 unsigned, |pair sums| ≤ 2·31·128: no saturation.
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), _mm256_set1_epi16(1));
}

// The fp16 fields at byte `offset` of eight consecutive blocks, widened.
__attribute__((target("avx2,f16c"))) static inline __m256 fp16_fields8(const uint8_t *w, size_t stride, size_t offset) {
    return p4k_scales8(w + offset, stride);
}

// One row of 32-blocks against one token: eight blocks at a time (lane k = block 8n + k, as the
// scalar kernel's lanes), the float step of each format in the scalar order, then the tail blocks
// one by one.
__attribute__((target("avx2,f16c"), always_inline)) static inline float
row_blocks32(int format, const uint8_t *w, const int8_t *aq, const float *ad, const int32_t *asum, size_t nb) {
    const size_t stride = p4k_format((uint32_t)format)->block_bytes;
    __m256 acc = _mm256_setzero_ps();
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *wb = w + b * stride;
        _mm_prefetch((const char *)(wb + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(wb + 1088), _MM_HINT_T0);
        __m256i s[8];
        for (int k = 0; k < 8; k++) s[k] = block_partials(format, wb + (size_t)k * stride, aq + 32 * (b + (size_t)k));
        __m256i isum = p4k_reduce8_i32(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
        const __m256 d = fp16_fields8(wb, stride, 0), a = _mm256_loadu_ps(ad + b);
        if (format == P4K_Q4_1 || format == P4K_Q5_1) {
            const __m256 m = fp16_fields8(wb, stride, 2);
            const __m256 t1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum));
            const __m256 t2 = _mm256_mul_ps(m, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(asum + b))));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(a, _mm256_add_ps(t1, t2)));
        } else {
            if (format == P4K_Q5_0)
                isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(asum + b)), 4));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, a)));
        }
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    for (; b < nb; b++) {
        const uint8_t *blk = w + b * stride;
        const __m256i p = block_partials(format, blk, aq + 32 * b);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
        int32_t s = _mm_cvtsi128_si32(s4);
        const float d = p4k_h2f(p4k_load_u16(blk));
        if (format == P4K_Q4_1 || format == P4K_Q5_1) {
            const float t1 = d * (float)s, t2 = p4k_h2f(p4k_load_u16(blk + 2)) * (float)asum[b];
            l[b & 7] = l[b & 7] + ad[b] * (t1 + t2);
        } else {
            if (format == P4K_Q5_0) s -= 16 * asum[b];
            l[b & 7] = l[b & 7] + (float)s * (d * ad[b]);
        }
    }
    return p4k_combine8(l);
}

// ---- Super-blocks of 256: IQ4_XS, Q3_K, Q2_K --------------------------------------------------

// For sub-blocks 2m and 2m + 1 of a half: the int16 scale pattern [sc(4m) ×4, sc(4m+2) ×4 |
// sc(4m+1) ×4, sc(4m+3) ×4] from the half's eight 16-value scales (in both lanes).
static const uint8_t pick_pair[2][32] = {
    {0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5, 2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7, 6, 7},
    {8, 9, 8, 9, 8, 9, 8, 9, 12, 13, 12, 13, 12, 13, 12, 13, 10, 11, 10, 11, 10, 11, 10, 11, 14, 15, 14, 15, 14, 15, 14, 15}};

// One row of super-blocks against one token; a16: the activations' 16-value sums (Q2_K, Q3_K).
__attribute__((target("avx2,f16c"), always_inline)) static inline float
row_super(int format, const uint8_t *w, const int8_t *aq, const float *ad, const int16_t *a16, size_t nsb) {
    const size_t bb = p4k_format((uint32_t)format)->block_bytes;
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < nsb; i++, w += bb) {
        const int8_t *a = aq + 256 * i;
        for (int k = 0; k < 4; k++) _mm_prefetch((const char *)(w + 2048 + 64 * k), _MM_HINT_T0);
        const __m256 ai = _mm256_loadu_ps(ad + 8 * i);
        if (format == P4K_IQ4_XS) {
            const p4k_block_iq4_xs *x = (const p4k_block_iq4_xs *)w;
            // `aq` holds the activations in IQ4 order (iq4_order): per 64 values, those that the low
            // nibbles of 32 weight bytes meet, then those the high nibbles meet. Each P holds
            // sub-block 2p's partial sums in its low lane and 2p + 1's in its high lane.
            const __m256i table = p4k_iq4_table(), nib = _mm256_set1_epi8(0xF);
            __m256i P[4];
            for (int p = 0; p < 4; p++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * p));
                const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(q, nib));
                const __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(q, 4), nib));
                P[p] = _mm256_add_epi32(p4k_dot_signed(lo, _mm256_loadu_si256((const __m256i *)(a + 64 * p))),
                                        p4k_dot_signed(hi, _mm256_loadu_si256((const __m256i *)(a + 64 * p + 32))));
            }
            // Lane sums: [P0 P1 P2 P3] per 128-bit lane (sub-blocks 0 2 4 6 | 1 3 5 7), then in order.
            const __m256i u0 = _mm256_add_epi32(_mm256_unpacklo_epi32(P[0], P[1]), _mm256_unpackhi_epi32(P[0], P[1]));
            const __m256i u1 = _mm256_add_epi32(_mm256_unpacklo_epi32(P[2], P[3]), _mm256_unpackhi_epi32(P[2], P[3]));
            const __m256i v = _mm256_add_epi32(_mm256_unpacklo_epi64(u0, u1), _mm256_unpackhi_epi64(u0, u1));
            const __m256i isum = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            const __m256 dsc = _mm256_mul_ps(_mm256_set1_ps(p4k_h2f(x->d)), _mm256_cvtepi32_ps(p4k_iq4xs_scales8(x)));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dsc, ai)));
            continue;
        }
        const int q3 = format == P4K_Q3_K;
        const p4k_block_q3_k *x3 = (const p4k_block_q3_k *)w;
        const p4k_block_q2_k *x2 = (const p4k_block_q2_k *)w;
        // The 16 scales as int16: Q3_K's 6-bit (−32…31), Q2_K's 4-bit (0…15) and its mins.
        __m256i scv, mv = _mm256_setzero_si256();
        if (q3) {
            scv = p4k_q3k_scales16(x3->scales);
        } else {
            const __m128i b = _mm_loadu_si128((const __m128i *)x2->scales), low4 = _mm_set1_epi8(0xF);
            scv = _mm256_cvtepu8_epi16(_mm_and_si128(b, low4));
            mv = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(b, 4), low4));
        }
        const __m256i half[2] = {_mm256_permute4x64_epi64(scv, 0x44), _mm256_permute4x64_epi64(scv, 0xEE)};
        const uint8_t *qs = q3 ? x3->qs : x2->qs;
        const __m256i hm = q3 ? _mm256_loadu_si256((const __m256i *)x3->hmask) : _mm256_setzero_si256();
        // Sub-blocks j and j + 1 at once: their maddubs pair sums (|·| ≤ 2·7·127) are first added
        // within each 16-value group in int16 (≤ 4·7·127), so that one `madd` applies four scales.
        __m256i s[4];
        for (int h = 0; h < 2; h++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
            __m256i p[4];
            for (int k = 0; k < 4; k++) {
                const int j = 4 * h + k;
                __m256i u = p4k_crumbs(qv, k);
                if (q3) u = _mm256_or_si256(u, p4k_bit_to_4(hm, j));  // u = q + 4 (0…7)
                p[k] = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(a + 32 * j)));
            }
            for (int k = 0; k < 4; k += 2) {
                // [j: 4 sums of group 2j, j+1: 4 of group 2j+2 | j: group 2j+1, j+1: group 2j+3]
                const __m256i t = _mm256_add_epi16(_mm256_unpacklo_epi64(p[k], p[k + 1]), _mm256_unpackhi_epi64(p[k], p[k + 1]));
                const __m256i scale = _mm256_shuffle_epi8(half[h], _mm256_loadu_si256((const __m256i *)pick_pair[k / 2]));
                s[2 * h + k / 2] = _mm256_madd_epi16(t, scale);  // [j j j+1 j+1 | j j j+1 j+1]
            }
        }
        // Per sub-block totals in order: [j0 j1 j2 j3 | same] and [j4 … j7 | same], then the lanes.
        __m256i w[2];
        for (int h = 0; h < 2; h++) {
            const __m256 e = _mm256_castsi256_ps(s[2 * h]), f = _mm256_castsi256_ps(s[2 * h + 1]);
            w[h] = _mm256_add_epi32(_mm256_castps_si256(_mm256_shuffle_ps(e, f, 0x88)),
                                    _mm256_castps_si256(_mm256_shuffle_ps(e, f, 0xDD)));
        }
        __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(w[0], w[1], 0x20), _mm256_permute2x128_si256(w[0], w[1], 0x31));
        const __m256i sums16 = _mm256_loadu_si256((const __m256i *)(a16 + 16 * i));
        if (q3) {
            // Σ sc·(u − 4)·a = Σ sc·u·a − 4·Σ sc·A (A: 16-value activation sums).
            isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_madd_epi16(scv, sums16), 2));
            const __m256 d = _mm256_set1_ps(p4k_h2f(x3->d));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, ai)));
        } else {
            const __m256i msum = _mm256_madd_epi16(mv, sums16);
            const __m256 t1 = _mm256_mul_ps(_mm256_set1_ps(p4k_h2f(x2->d)), _mm256_cvtepi32_ps(isum));
            const __m256 t2 = _mm256_mul_ps(_mm256_set1_ps(p4k_h2f(x2->dmin)), _mm256_cvtepi32_ps(msum));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(ai, _mm256_sub_ps(t1, t2)));
        }
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    return p4k_combine8(l);
}

// IQ4_XS's activation order: per 64 values a[0…15], a[32…47], a[16…31], a[48…63], so that the low
// nibbles of 32 weight bytes (sub-blocks 2p and 2p + 1, first halves) meet the first 32 and the high
// nibbles the next 32 with no lane shuffle of the weights.
__attribute__((target("avx2"))) static void iq4_order(const int8_t *a, size_t cols, int8_t *out) {
    for (size_t k = 0; k < cols; k += 64) {
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)(a + k)), x1 = _mm256_loadu_si256((const __m256i *)(a + k + 32));
        _mm256_storeu_si256((__m256i *)(out + k), _mm256_permute2x128_si256(x0, x1, 0x20));
        _mm256_storeu_si256((__m256i *)(out + k + 32), _mm256_permute2x128_si256(x0, x1, 0x31));
    }
}

// One specialized copy per format (the constants drop the other formats' branches).
typedef float (*row_fn)(const uint8_t *w, const int8_t *aq, const float *ad, const int32_t *asum, const int16_t *a16,
                        size_t cols);
#define ROW32(NAME, FMT)                                                                                               \
    __attribute__((target("avx2,f16c"))) static float NAME(const uint8_t *w, const int8_t *aq, const float *ad,       \
                                                           const int32_t *asum, const int16_t *a16, size_t cols) {     \
        (void)a16;                                                                                                     \
        return row_blocks32(FMT, w, aq, ad, asum, cols / 32);                                                          \
    }
#define ROW256(NAME, FMT)                                                                                              \
    __attribute__((target("avx2,f16c"))) static float NAME(const uint8_t *w, const int8_t *aq, const float *ad,       \
                                                           const int32_t *asum, const int16_t *a16, size_t cols) {     \
        (void)asum;                                                                                                    \
        return row_super(FMT, w, aq, ad, a16, cols / 256);                                                             \
    }
ROW32(row_iq4nl, P4K_IQ4_NL)
ROW32(row_q4_1, P4K_Q4_1)
ROW32(row_q5_0, P4K_Q5_0)
ROW32(row_q5_1, P4K_Q5_1)
ROW256(row_iq4xs, P4K_IQ4_XS)
ROW256(row_q3k, P4K_Q3_K)
ROW256(row_q2k, P4K_Q2_K)

static row_fn row_for(int format) {
    switch (format) {
    case P4K_IQ4_NL: return row_iq4nl;
    case P4K_Q4_1: return row_q4_1;
    case P4K_Q5_0: return row_q5_0;
    case P4K_Q5_1: return row_q5_1;
    case P4K_IQ4_XS: return row_iq4xs;
    case P4K_Q3_K: return row_q3k;
    default: return row_q2k;
    }
}

// The entry point: one token row by row; several tokens over panels of 16 rows. Q2_K / Q3_K get
// each token's 16-value activation sums once.
__attribute__((target("avx2,f16c"))) static int lowbit_rows(const p4k_job *job) {
    const int format = job->format;
    const size_t cols = job->cols, nb = cols / 32, rb = p4k_row_bytes(format, cols);
    const row_fn row = row_for(format);
    int16_t stack[2048], *a16 = NULL;
    if (format == P4K_Q2_K || format == P4K_Q3_K) {
        const size_t n16 = job->t * (cols / 16);
        a16 = n16 <= 2048 ? stack : malloc(n16 * sizeof(int16_t));
        if (!a16) return -1;
        for (size_t i = 0; i < job->t; i++) p4k_sums16(job->aq + i * cols, cols, a16 + i * (cols / 16));
    }
    _Alignas(64) int8_t ordered_stack[8192];
    int8_t *ordered = NULL;
    if (format == P4K_IQ4_XS) {
        ordered = job->t * cols <= sizeof ordered_stack ? ordered_stack : aligned_alloc(64, (job->t * cols + 63) / 64 * 64);
        if (!ordered) {
            if (a16 && a16 != stack) free(a16);
            return -1;
        }
        for (size_t i = 0; i < job->t; i++) iq4_order(job->aq + i * cols, cols, ordered + i * cols);
    }
    const int8_t *acts = ordered ? ordered : job->aq;
    const size_t panel = job->t == 1 ? job->rows : 16;
    for (size_t r0 = 0; r0 < job->rows; r0 += panel) {
        const size_t n = job->rows - r0 < panel ? job->rows - r0 : panel;
        for (size_t i = 0; i < job->t; i++) {
            const int8_t *a = acts + i * cols;
            const float *ad = job->ad + i * nb;
            const int32_t *as = job->asum + i * nb;
            const int16_t *s16 = a16 ? a16 + i * (cols / 16) : NULL;
            for (size_t r = r0; r < r0 + n; r++)
                p4k_put(job->out + i * job->ldo + r, row(job->w + r * rb, a, ad, as, s16, cols), job->accumulate);
        }
    }
    if (a16 && a16 != stack) free(a16);
    if (ordered && ordered != ordered_stack) free(ordered);
    return 0;
}

const p4k_kernel p4k_kernels_lowbit_avx2[] = {
    {P4K_IQ4_XS, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", lowbit_rows},
    {P4K_Q3_K, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", lowbit_rows},
    {P4K_Q2_K, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", lowbit_rows},
    {P4K_IQ4_NL, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", lowbit_rows},
    {P4K_Q4_1, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", lowbit_rows},
    {P4K_Q5_0, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", lowbit_rows},
    {P4K_Q5_1, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", lowbit_rows},
    {0, 0, 0, NULL, NULL},
};
#endif
