// AVX2 row kernels: one token (decode) and small batches, for Q4_0, Q8_0 and the K-quants; and the
// AVX2 activation quantizer. Each keeps the scalar kernels' arithmetic (kernels.h), so results
// equal kernels_scalar.c's bit for bit. The panel kernels for larger batches are in gemm_avx2.c.
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

// ---- Activations -----------------------------------------------------------------------------

// The same computation 32 values at a time, with identical results: the block maximum is exact in
// any order, the scale and x·id are the same float operations, and roundf (half away from zero)
// is trunc(y) + sign(y) where |y − trunc(y)| ≥ 0.5 (that difference is exact).
__attribute__((target("avx2"))) void p4k_quantize_activation_avx2(const float *x, size_t n, int8_t *qs, float *d,
                                                                     int32_t *sums) {
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (size_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const float db = amax / 127.0f;
        const __m256 id = _mm256_set1_ps(db ? 1.0f / db : 0.0f);
        __m256i q[4], total = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            const __m256 y = _mm256_mul_ps(v[k], id);
            const __m256 t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 away = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(y, t)), half, _CMP_GE_OQ);
            const __m256 step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(sign, y)));
            q[k] = _mm256_cvttps_epi32(_mm256_add_ps(t, step));
            total = _mm256_add_epi32(total, q[k]);
        }
        // Pack 4 × 8 int32 into 32 int8 in order (the packs work per 128-bit lane; the permute
        // puts the lanes back in sequence).
        const __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
        const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23),
                                                          _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(qs + 32 * b), bytes);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
        d[b] = db;
        sums[b] = _mm_cvtsi128_si32(s4);
    }
}

// ---- Q8_0 and Q4_0 ---------------------------------------------------------------------------

__attribute__((target("avx2"))) static inline __m256i q8_block_avx2(const uint8_t *w, const int8_t *a) {
    __m256i q = _mm256_loadu_si256((const __m256i *)((const p4k_block_q8_0 *)w)->qs);
    __m256i x = _mm256_loadu_si256((const __m256i *)a);
    // |q| (unsigned) times x with q's sign: maddubs needs one unsigned operand.
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// Fused AVX2 rows: the same integer sums and the same float operations as the separate
// sums + accumulate path, without storing the sums.
// Q4_0 rows read eight blocks at a time and transpose them in registers (4 bytes of each block
// side by side, as the multi-row kernel's panels hold rows), so that one vector holds a group of
// elements of all eight blocks: the products of a block then add up vertically, in int16
// (8 · 2 · 15 · 127 = 30480 < 2^15), and one madd gives the eight block sums, with no horizontal
// reduction. The activations are rearranged to match once per call (transpose_activations).
//
// `nt` ≤ 4 tokens at once (one for decode; up to 4 in speculative verification passes): each group
// of 8 blocks is loaded and transposed once and multiplied by every token's activations. `a` holds
// the activation rows as quantized (`lda` bytes apart; only the tail blocks use them), `at` their
// transposed copies (`ldt` apart). Per token the integer sums and float operations do not depend
// on `nt`, so a batch gives one-token decoding's results bit for bit.
__attribute__((target("avx2,f16c"), always_inline)) static inline void
q4_row_tokens_avx2(const uint8_t *w, size_t nb, int nt, const int8_t *a, size_t lda, const int8_t *at, size_t ldt,
                   const float *ad, const int32_t *asum, float *res) {
    const __m256i nib = _mm256_set1_epi8(0xF);
    __m256 acc[4];
    for (int j = 0; j < nt; j++) acc[j] = _mm256_setzero_ps();
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *wb = w + b * sizeof(p4k_block_q4_0);
        __m256i v[4];
        p4k_q4_load8(wb, v);
        __m256i s16[4];
        for (int j = 0; j < nt; j++) s16[j] = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            const __m256i lo = _mm256_and_si256(v[g], nib), hi = _mm256_and_si256(_mm256_srli_epi16(v[g], 4), nib);
            for (int j = 0; j < nt; j++) {
                const int8_t *ab = at + (size_t)j * ldt + b * 32;
                s16[j] = _mm256_add_epi16(s16[j], _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(ab + 32 * g))));
                s16[j] = _mm256_add_epi16(s16[j], _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(ab + 128 + 32 * g))));
            }
        }
        const __m256 sc = p4k_scales8(wb, sizeof(p4k_block_q4_0));
        for (int j = 0; j < nt; j++) {
            __m256i s = _mm256_madd_epi16(s16[j], _mm256_set1_epi16(1));
            s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(asum + (size_t)j * nb + b)), 3));
            const __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(sc, _mm256_loadu_ps(ad + (size_t)j * nb + b)));
            acc[j] = _mm256_add_ps(acc[j], p);
        }
    }
    for (int j = 0; j < nt; j++) {
        float l[8];
        _mm256_storeu_ps(l, acc[j]);
        int32_t tail[8];
        p4k_sums_q4_0(w + b * sizeof(p4k_block_q4_0), a + (size_t)j * lda + b * 32, asum + (size_t)j * nb + b, nb - b, tail);
        res[j] = p4k_finish_lanes(l, w, sizeof(p4k_block_q4_0), ad + (size_t)j * nb, tail, b, nb);
    }
}

__attribute__((target("avx2,f16c"))) static void q4_row_tokens_any(const uint8_t *w, size_t nb, int nt, const int8_t *a,
                                                                   size_t lda, const int8_t *at, size_t ldt,
                                                                   const float *ad, const int32_t *asum, float *res) {
    switch (nt) {
    case 1: q4_row_tokens_avx2(w, nb, 1, a, lda, at, ldt, ad, asum, res); break;
    case 2: q4_row_tokens_avx2(w, nb, 2, a, lda, at, ldt, ad, asum, res); break;
    case 3: q4_row_tokens_avx2(w, nb, 3, a, lda, at, ldt, ad, asum, res); break;
    default: q4_row_tokens_avx2(w, nb, 4, a, lda, at, ldt, ad, asum, res); break;
    }
}

// The batch kernels' float step for one token and eight blocks: lane k += (float)s[k] ·
// (scale[k] · d_a[k]), the row kernels' operations in their order.
__attribute__((target("avx2"), always_inline)) static inline void lanes_step(float *lanes, __m256i s, __m256 sc,
                                                                             const float *ad) {
    const __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(sc, _mm256_loadu_ps(ad)));
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_loadu_ps(lanes), p));
}

// The batch kernels' end: each token's blocks from `b` on (fewer than 8) by the scalar sums, then
// the lanes combined as the row kernels combine them.
static void finish_batch(int q8, const uint8_t *w, size_t stride, size_t b, size_t nb, int nt, const int8_t *a,
                         size_t lda, const float *ad, const int32_t *asum, float *lanes, float *res) {
    for (int j = 0; j < nt; j++) {
        int32_t tail[8];
        if (q8) p4k_sums_q8_0(w + b * stride, a + (size_t)j * lda + b * 32, nb - b, tail);
        else p4k_sums_q4_0(w + b * stride, a + (size_t)j * lda + b * 32, asum + (size_t)j * nb + b, nb - b, tail);
        res[j] = p4k_finish_lanes(lanes + 8 * j, w, stride, ad + (size_t)j * nb, tail, b, nb);
    }
}

// Batches of 5…8 tokens (prompt-lookup verification passes): each group of 8 blocks is loaded,
// transposed and split into its eight nibble vectors once, kept in registers, and multiplied by
// every token's transposed activations in turn; each token's eight lanes live in `lanes` (memory:
// eight tokens' accumulators and the weights would not fit in 16 registers together; up to 4
// tokens, q4_row_tokens_avx2 keeps its accumulators in registers and is faster). `asum8`
// holds 8·Σa per block (the Q4_0 offset). Per token the integer sums are exact (int16 additions
// in another order give the same sum: every partial sum is within ±30480) and the float
// operations are the one-token kernel's, in its order, so each result equals one-token decoding
// bit for bit.
__attribute__((target("avx2,f16c"))) static void q4_row_batch_avx2(const uint8_t *w, size_t nb, int nt, const int8_t *a,
                                                                   size_t lda, const int8_t *at, size_t ldt,
                                                                   const float *ad, const int32_t *asum,
                                                                   const int32_t *asum8, float *res) {
    const __m256i nib = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
    float lanes[8 * 8];
    for (int j = 0; j < nt; j++) _mm256_storeu_ps(lanes + 8 * j, _mm256_setzero_ps());
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *wb = w + b * sizeof(p4k_block_q4_0);
        __m256i v[4];
        p4k_q4_load8(wb, v);
        const __m256i v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
        const __m256i l0 = _mm256_and_si256(v0, nib), l1 = _mm256_and_si256(v1, nib);
        const __m256i l2 = _mm256_and_si256(v2, nib), l3 = _mm256_and_si256(v3, nib);
        const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib);
        const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nib);
        const __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(v2, 4), nib);
        const __m256i h3 = _mm256_and_si256(_mm256_srli_epi16(v3, 4), nib);
        const __m256 sc = p4k_scales8(wb, sizeof(p4k_block_q4_0));
        for (int j = 0; j < nt; j++) {
            const __m256i *ab = (const __m256i *)(at + (size_t)j * ldt + b * 32);
            const __m256i s0 = _mm256_add_epi16(_mm256_maddubs_epi16(l0, _mm256_loadu_si256(ab)),
                                                _mm256_maddubs_epi16(l1, _mm256_loadu_si256(ab + 1)));
            const __m256i s1 = _mm256_add_epi16(_mm256_maddubs_epi16(l2, _mm256_loadu_si256(ab + 2)),
                                                _mm256_maddubs_epi16(l3, _mm256_loadu_si256(ab + 3)));
            const __m256i s2 = _mm256_add_epi16(_mm256_maddubs_epi16(h0, _mm256_loadu_si256(ab + 4)),
                                                _mm256_maddubs_epi16(h1, _mm256_loadu_si256(ab + 5)));
            const __m256i s3 = _mm256_add_epi16(_mm256_maddubs_epi16(h2, _mm256_loadu_si256(ab + 6)),
                                                _mm256_maddubs_epi16(h3, _mm256_loadu_si256(ab + 7)));
            const __m256i s16 = _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3));
            const __m256i s = _mm256_sub_epi32(_mm256_madd_epi16(s16, ones),
                                               _mm256_loadu_si256((const __m256i *)(asum8 + (size_t)j * nb + b)));
            lanes_step(lanes + 8 * j, s, sc, ad + (size_t)j * nb + b);
        }
    }
    finish_batch(0, w, sizeof(p4k_block_q4_0), b, nb, nt, a, lda, ad, asum, lanes, res);
}

// Q8_0 weights × 1…8 tokens, with the transposed activations of transpose_activations (the
// layout depends only on the 32-element blocks): the low and the high 16 bytes of eight blocks
// are transposed like Q4_0's bytes, so vector v holds the weights that activation vector v
// multiplies. Products as in q8_block_avx2 (|q| times x with q's sign, |pair sum| ≤ 2·128·127 =
// 32512, widened by one madd per vector); the eight |q| vectors stay in registers, the signed ones
// in `wq` (one store per group, read by the sign instructions). Block sums are exact and the
// float operations those of q8_row_avx2, so each result equals one-token decoding bit for bit.
__attribute__((target("avx2,f16c"))) static void q8_row_batch_avx2(const uint8_t *w, size_t nb, int nt, const int8_t *a,
                                                                   size_t lda, const int8_t *at, size_t ldt,
                                                                   const float *ad, const int32_t *asum, float *res) {
    const __m256i ones = _mm256_set1_epi16(1);
    float lanes[8 * 8];
    __m256i wq[8];
    for (int j = 0; j < nt; j++) _mm256_storeu_ps(lanes + 8 * j, _mm256_setzero_ps());
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *wb = w + b * sizeof(p4k_block_q8_0);
        for (int k = 0; k < 5; k++) _mm_prefetch((const char *)(wb + 2048 + 64 * k), _MM_HINT_T0);
        for (int half = 0; half < 2; half++) {
            const p4k_block_q8_0 *blk = (const p4k_block_q8_0 *)wb;  // blocks k and k + 4 share a vector
            const int8_t *q0 = blk[0].qs + 16 * half, *q1 = blk[1].qs + 16 * half, *q2 = blk[2].qs + 16 * half;
            const int8_t *q3 = blk[3].qs + 16 * half, *q4 = blk[4].qs + 16 * half, *q5 = blk[5].qs + 16 * half;
            const int8_t *q6 = blk[6].qs + 16 * half, *q7 = blk[7].qs + 16 * half;
            __m256i v0 = p4k_load_pair(q0, q4), v1 = p4k_load_pair(q1, q5);
            __m256i v2 = p4k_load_pair(q2, q6), v3 = p4k_load_pair(q3, q7);
            P4K_TRANSPOSE4(v0, v1, v2, v3);
            wq[4 * half] = v0;
            wq[4 * half + 1] = v1;
            wq[4 * half + 2] = v2;
            wq[4 * half + 3] = v3;
        }
        __m256i u[8];
        for (int v = 0; v < 8; v++) u[v] = _mm256_sign_epi8(wq[v], wq[v]);
        const __m256 sc = p4k_scales8(wb, sizeof(p4k_block_q8_0));
        for (int j = 0; j < nt; j++) {
            const __m256i *ab = (const __m256i *)(at + (size_t)j * ldt + b * 32);
            __m256i p[8];
            for (int v = 0; v < 8; v++)
                p[v] = _mm256_madd_epi16(_mm256_maddubs_epi16(u[v], _mm256_sign_epi8(_mm256_loadu_si256(ab + v), wq[v])), ones);
            const __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])),
                                               _mm256_add_epi32(_mm256_add_epi32(p[4], p[5]), _mm256_add_epi32(p[6], p[7])));
            lanes_step(lanes + 8 * j, s, sc, ad + (size_t)j * nb + b);
        }
    }
    finish_batch(1, w, sizeof(p4k_block_q8_0), b, nb, nt, a, lda, ad, asum, lanes, res);
}

__attribute__((target("avx2,f16c"))) static float q8_row_avx2(const uint8_t *w, const int8_t *a, const float *ad,
                                                              const int32_t *asum, size_t nb) {
    (void)asum;
    __m256 acc = _mm256_setzero_ps();
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *wb = w + b * sizeof(p4k_block_q8_0);
        const int8_t *ab = a + b * 32;
        for (int k = 0; k < 5; k++) _mm_prefetch((const char *)(wb + 1536 + 64 * k), _MM_HINT_T0);
        const size_t s8 = sizeof(p4k_block_q8_0);
        __m256i s = p4k_reduce8_i32(q8_block_avx2(wb, ab), q8_block_avx2(wb + s8, ab + 32), q8_block_avx2(wb + 2 * s8, ab + 64),
                            q8_block_avx2(wb + 3 * s8, ab + 96), q8_block_avx2(wb + 4 * s8, ab + 128),
                            q8_block_avx2(wb + 5 * s8, ab + 160), q8_block_avx2(wb + 6 * s8, ab + 192),
                            q8_block_avx2(wb + 7 * s8, ab + 224));
        __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(p4k_scales8(wb, sizeof(p4k_block_q8_0)), _mm256_loadu_ps(ad + b)));
        acc = _mm256_add_ps(acc, p);
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    int32_t tail[8];
    p4k_sums_q8_0(w + b * sizeof(p4k_block_q8_0), a + b * 32, nb - b, tail);
    return p4k_finish_lanes(l, w, sizeof(p4k_block_q8_0), ad, tail, b, nb);
}

// ---- K-quants --------------------------------------------------------------------------------

// Bit j of every byte of `v`, moved to 0x10 (16-bit shifts by at most 4 keep it inside its byte).
__attribute__((target("avx2"), always_inline)) static inline __m256i bit_to_16(__m256i v, int j, __m256i bit4) {
    switch (j) {
    case 0: return _mm256_and_si256(_mm256_slli_epi16(v, 4), bit4);
    case 1: return _mm256_and_si256(_mm256_slli_epi16(v, 3), bit4);
    case 2: return _mm256_and_si256(_mm256_slli_epi16(v, 2), bit4);
    case 3: return _mm256_and_si256(_mm256_slli_epi16(v, 1), bit4);
    case 4: return _mm256_and_si256(v, bit4);
    case 5: return _mm256_and_si256(_mm256_srli_epi16(v, 1), bit4);
    case 6: return _mm256_and_si256(_mm256_srli_epi16(v, 2), bit4);
    default: return _mm256_and_si256(_mm256_srli_epi16(v, 3), bit4);
    }
}

__attribute__((target("avx2"))) static inline __m256i prod32(__m256i q, const int8_t *a) {
    return _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)a));
}

__attribute__((target("avx2"))) static inline __m256i dot32(__m256i q, const int8_t *a) {
    return _mm256_madd_epi16(prod32(q, a), _mm256_set1_epi16(1));
}

__attribute__((target("avx2,f16c"), always_inline)) static inline float
row_avx2(int format, const uint8_t *w, const int8_t *aq, const float *ad, const int32_t *asum, const int16_t *a16,
         size_t nsb) {
    // Shuffle controls for Q6_K's scales (int16, the eight of one half in both lanes): sub-block
    // j's first 16 values (lane 0) take scale 2j, its last 16 (lane 1) scale 2j + 1.
    static const uint8_t pick[4][32] = {
        {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
        {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7},
        {8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11},
        {12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15}};
    const size_t bb = p4k_kquant_block_bytes(format);
    const __m256i nib = _mm256_set1_epi8(0xF), hmask = _mm256_set1_epi8(0x30), bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < nsb; i++, w += bb) {
        const int8_t *a = aq + 256 * i;
        // About 3 KB ahead: nearer prefetches left the two-thread DRAM rate 15-20 % lower.
        for (int k = 0; k < 4; k++) _mm_prefetch((const char *)(w + 3072 + 64 * k), _MM_HINT_T0);
        __m256i s[8];
        if (format == P4K_Q6_K) {
            // Unsigned q (0…63) with maddubs; the 32 comes off once per super-block as
            // 32·(sc₀·A₀ + sc₁·A₁) from the activations' 16-value sums A.
            const p4k_block_q6_k *blk = (const p4k_block_q6_k *)w;
            const uint8_t *ql = blk->ql, *qh = blk->qh;
            const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
            const __m256i half[2] = {_mm256_permute4x64_epi64(s16, 0x44), _mm256_permute4x64_epi64(s16, 0xEE)};
            for (int h = 0; h < 2; h++) {
                const __m256i l0 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h));
                const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32));
                const __m256i hv = _mm256_loadu_si256((const __m256i *)(qh + 32 * h));
                for (int k = 0; k < 4; k++) {
                    const int j = 4 * h + k;
                    const __m256i lo = k & 1 ? l1 : l0;
                    const __m256i n4 = k < 2 ? _mm256_and_si256(lo, nib) : _mm256_and_si256(_mm256_srli_epi16(lo, 4), nib);
                    // Bits 2k, 2k+1 of each qh byte moved to 0x30 (16-bit shifts by at most 4
                    // keep them inside their byte).
                    const __m256i hs = k == 0 ? _mm256_slli_epi16(hv, 4) : k == 1 ? _mm256_slli_epi16(hv, 2)
                                       : k == 2 ? hv : _mm256_srli_epi16(hv, 2);
                    const __m256i hb = _mm256_and_si256(hs, hmask);
                    const __m256i q = _mm256_or_si256(n4, hb);
                    const __m256i x = _mm256_loadu_si256((const __m256i *)(a + 32 * j));
                    const __m256i scale = _mm256_shuffle_epi8(half[h], _mm256_loadu_si256((const __m256i *)pick[k]));
                    s[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), scale);
                }
            }
            const __m256i off = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)(a16 + 16 * i)));
            const __m256i isum = _mm256_sub_epi32(p4k_reduce8_i32(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]), _mm256_slli_epi32(off, 5));
            const uint16_t dh = blk->d;
            const __m256 d = _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(dh)));
            const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, _mm256_loadu_ps(ad + 8 * i)));
            acc = _mm256_add_ps(acc, t);
            continue;
        }
        const p4k_block_q4_k *b4 = (const p4k_block_q4_k *)w;
        const p4k_block_q5_k *b5 = (const p4k_block_q5_k *)w;
        const uint8_t *qs = format == P4K_Q5_K ? b5->qs : b4->qs;
        const __m256i hv = format == P4K_Q5_K ? _mm256_loadu_si256((const __m256i *)b5->qh) : _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * p));
            __m256i lo = _mm256_and_si256(q, nib), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nib);
            if (format == P4K_Q5_K) {
                lo = _mm256_or_si256(lo, bit_to_16(hv, 2 * p, bit4));
                hi = _mm256_or_si256(hi, bit_to_16(hv, 2 * p + 1, bit4));
            }
            // Q4_K: the int16 products go to the int16 reduction (|each| ≤ 2·15·127); Q5_K's
            // (≤ 2·31·127) would overflow it, so they are widened first.
            s[2 * p] = format == P4K_Q4_K ? prod32(lo, a + 64 * p) : dot32(lo, a + 64 * p);
            s[2 * p + 1] = format == P4K_Q4_K ? prod32(hi, a + 64 * p + 32) : dot32(hi, a + 64 * p + 32);
        }
        const __m256i isum = format == P4K_Q4_K ? p4k_reduce8_i16(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
                                                : p4k_reduce8_i32(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
        uint64_t sc, m;
        p4k_kscales(b4->scales, &sc, &m);
        const __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
        const __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m)));
        // d and dmin (two fp16 side by side), widened exactly by F16C.
        int32_t dd;
        memcpy(&dd, w, 4);
        const __m128 d2 = _mm_cvtph_ps(_mm_cvtsi32_si128(dd));
        const __m256 ds = _mm256_mul_ps(_mm256_broadcastss_ps(d2), scf);
        const __m256 dm = _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d2)), mf);
        const __m256 t1 = _mm256_mul_ps(ds, _mm256_cvtepi32_ps(isum));
        const __m256 t2 = _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(asum + 8 * i))));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(ad + 8 * i), _mm256_sub_ps(t1, t2)));
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

// One specialized copy per format.
__attribute__((target("avx2,f16c"))) static float row_q4k_avx2(const uint8_t *w, const int8_t *aq, const float *ad,
                                                               const int32_t *asum, const int16_t *a16, size_t nsb) {
    return row_avx2(P4K_Q4_K, w, aq, ad, asum, a16, nsb);
}
__attribute__((target("avx2,f16c"))) static float row_q5k_avx2(const uint8_t *w, const int8_t *aq, const float *ad,
                                                               const int32_t *asum, const int16_t *a16, size_t nsb) {
    return row_avx2(P4K_Q5_K, w, aq, ad, asum, a16, nsb);
}
__attribute__((target("avx2,f16c"))) static float row_q6k_avx2(const uint8_t *w, const int8_t *aq, const float *ad,
                                                               const int32_t *asum, const int16_t *a16, size_t nsb) {
    return row_avx2(P4K_Q6_K, w, aq, ad, asum, a16, nsb);
}

// ---- Kernel entry points ---------------------------------------------------------------------

// Q4_0 / Q8_0 × t activation rows, row by row, in groups of up to 8 tokens (Q4_0:
// q4_row_tokens_avx2 for groups of 1…4, q4_row_batch_avx2 for 5…8; Q8_0: q8_row_avx2 for one
// token, q8_row_batch_avx2 for groups). Scratch: the transposed activations, then (Q4_0) 8·Σa per
// block; 64-byte aligned, as the kernels read the activations 32 bytes at a time (a load across
// two cache lines costs two). One token of up to 32,768 columns uses the stack.
__attribute__((target("avx2,f16c"))) static int legacy_rows(const p4k_job *job) {
    const int q8 = job->format == P4K_Q8_0;
    const size_t t = job->t, cols = job->cols, nb = cols / 32, rb = p4k_row_bytes(job->format, cols);
    const size_t offsets = q8 ? 0 : t * nb * sizeof(int32_t);
    const size_t bytes = (t * cols + offsets + 63) / 64 * 64;
    _Alignas(64) int8_t stack[32768];
    int8_t *at = q8 && t == 1 ? stack : bytes <= sizeof(stack) ? stack : aligned_alloc(64, bytes);
    if (!at) return -1;
    int32_t *asum8 = (int32_t *)(at + t * cols);
    if (!(q8 && t == 1)) {
        for (size_t i = 0; i < t; i++) p4k_transpose_activations(job->aq + i * cols, nb, at + i * cols);
        for (size_t i = 0; offsets && i < t * nb; i++) asum8[i] = 8 * job->asum[i];
    }
    for (size_t r = 0; r < job->rows; r++) {
        const uint8_t *row = job->w + r * rb;
        if (r + 4 < job->rows) __builtin_prefetch(row + 4 * rb, 0, 0);
        for (size_t i = 0; i < t; i += 8) {
            const int nt = (int)(t - i < 8 ? t - i : 8);
            const int8_t *a = job->aq + i * cols, *ai = at + i * cols;
            const float *ad = job->ad + i * nb;
            const int32_t *as = job->asum + i * nb;
            float res[8];
            if (q8 && t == 1) res[0] = q8_row_avx2(row, a, ad, as, nb);
            else if (q8) q8_row_batch_avx2(row, nb, nt, a, cols, ai, cols, ad, as, res);
            else if (nt <= 4) q4_row_tokens_any(row, nb, nt, a, cols, ai, cols, ad, as, res);
            else q4_row_batch_avx2(row, nb, nt, a, cols, ai, cols, ad, as, asum8 + i * nb, res);
            for (int j = 0; j < nt; j++) p4k_put(job->out + (i + (size_t)j) * job->ldo + r, res[j], job->accumulate);
        }
    }
    if (at != stack) free(at);
    return 0;
}

// K-quants: one token row by row; several tokens over panels of 16 rows (which stay in cache
// while every token passes over them). Q6_K's 16-value activation sums once per token.
__attribute__((target("avx2,f16c"))) static int kquant_rows(const p4k_job *job) {
    const int format = job->format;
    const size_t cols = job->cols, nb = cols / 32, nsb = cols / 256, rb = p4k_row_bytes(format, cols);
    int16_t stack[2048], *a16 = NULL;
    if (format == P4K_Q6_K) {
        const size_t n16 = job->t * (cols / 16);
        a16 = n16 <= 2048 ? stack : malloc(n16 * sizeof(int16_t));
        if (!a16) return -1;
        for (size_t i = 0; i < job->t; i++) p4k_sums16(job->aq + i * cols, cols, a16 + i * (cols / 16));
    }
    const size_t panel = job->t == 1 ? job->rows : 16;
    for (size_t r0 = 0; r0 < job->rows; r0 += panel) {
        const size_t n = job->rows - r0 < panel ? job->rows - r0 : panel;
        for (size_t i = 0; i < job->t; i++) {
            const int8_t *a = job->aq + i * cols;
            const float *ad = job->ad + i * nb;
            const int32_t *as = job->asum + i * nb;
            const int16_t *s16 = a16 ? a16 + i * (cols / 16) : NULL;
            for (size_t r = r0; r < r0 + n; r++) {
                const uint8_t *row = job->w + r * rb;
                const float v = format == P4K_Q4_K   ? row_q4k_avx2(row, a, ad, as, s16, nsb)
                                : format == P4K_Q5_K ? row_q5k_avx2(row, a, ad, as, s16, nsb)
                                                     : row_q6k_avx2(row, a, ad, as, s16, nsb);
                p4k_put(job->out + i * job->ldo + r, v, job->accumulate);
            }
        }
    }
    if (a16 != stack) free(a16);
    return 0;
}

#define ONE_SMALL ((1u << P4K_CLASS_ONE) | (1u << P4K_CLASS_SMALL))

const p4k_kernel p4k_kernels_avx2[] = {
    {P4K_Q8_0, P4K_ISA_AVX2, ONE_SMALL, "avx2-rows", legacy_rows},
    {P4K_Q4_0, P4K_ISA_AVX2, ONE_SMALL, "avx2-rows", legacy_rows},
    {P4K_Q4_K, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", kquant_rows},
    {P4K_Q5_K, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", kquant_rows},
    {P4K_Q6_K, P4K_ISA_AVX2, P4K_ALL_CLASSES, "avx2-rows", kquant_rows},
    {0, 0, 0, NULL, NULL},
};
#endif
