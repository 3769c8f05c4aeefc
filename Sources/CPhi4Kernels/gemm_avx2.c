// AVX2 panel kernels for batches of tokens (prefill chunks, verification passes, batched
// decoding): Q4_0 and Q8_0 (16-row tiles; Q8_0 in two nibble planes), Q4_K, Q5_K and Q6_K over
// the panels of panels.h, and IQ4_XS, IQ4_NL, Q5_0, Q3_K, Q2_K, Q4_1, Q5_1 decoded into panels.
// Outputs equal the row kernels' bit for bit.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#define _GNU_SOURCE
#include "panels.h"
#if defined(__x86_64__)

// ---- `nt` (≤ TILE) tokens × 8 rows over all blocks --------------------------------------------

__attribute__((target("avx2,f16c"), always_inline)) static inline void
tile_avx2(int format, const panel_t *p, size_t nb, const int8_t *a, size_t lda, const float *ad,
          const int32_t *asum, int nt, float *acc_out) {
    float lanes[TILE * 64];
    const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
    for (size_t k = 0; k < 8; k++) {
        __m256 acc[TILE];
        for (int j = 0; j < TILE; j++) acc[j] = _mm256_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *wb = p->w + at * p->block_bytes;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            const __m256 dw = _mm256_loadu_ps(p->d + at * 8);
            __m256i s16[TILE], l16[TILE], s32[TILE];  // l16: Q8_0's low-nibble plane, Q5_K's first four groups
            for (int j = 0; j < nt; j++) s16[j] = l16[j] = _mm256_setzero_si256();
            for (int g = 0; g < 8; g++) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(wb + 32 * g));
                if (format == P4K_Q8_0) {  // one broadcast feeds both planes
                    const __m256i wl = _mm256_loadu_si256((const __m256i *)(wb + 256 + 32 * g));
                    for (int j = 0; j < nt; j++) {
                        const __m256i x = bcast4(ab + j * lda + 4 * g);
                        s16[j] = _mm256_add_epi16(s16[j], _mm256_maddubs_epi16(wv, x));
                        l16[j] = _mm256_add_epi16(l16[j], _mm256_maddubs_epi16(wl, x));
                    }
                } else {
                    for (int j = 0; j < nt; j++)
                        s16[j] = _mm256_add_epi16(s16[j], _mm256_maddubs_epi16(wv, bcast4(ab + j * lda + 4 * g)));
                }
                // Q5_K: |pair| ≤ 2·31·127 = 7874, so four groups at most add in int16 (l16 keeps
                // the first four, widened later).
                if (format == P4K_Q5_K && g == 3)
                    for (int j = 0; j < nt; j++) {
                        l16[j] = s16[j];
                        s16[j] = _mm256_setzero_si256();
                    }
            }
            if (format == P4K_Q4_0) {
                for (int j = 0; j < nt; j++) {
                    s32[j] = _mm256_sub_epi32(_mm256_madd_epi16(s16[j], ones), _mm256_set1_epi32(8 * asum[j * nb + b]));
                    FLOAT_STEP(j, s32[j]);
                }
            } else if (format == P4K_Q4_K || format == P4K_Q5_K) {
                // term = d_a · ((d·sc)·Σq·a − (dmin·m)·Σa), as the K-quant row kernel computes it.
                const __m256 dm = _mm256_loadu_ps(p->dm + at * 8);
                for (int j = 0; j < nt; j++) {
                    __m256i isum = _mm256_madd_epi16(s16[j], ones);
                    if (format == P4K_Q5_K) isum = _mm256_add_epi32(isum, _mm256_madd_epi16(l16[j], ones));
                    const __m256 t1 = _mm256_mul_ps(dw, _mm256_cvtepi32_ps(isum));
                    const __m256 t2 = _mm256_mul_ps(dm, _mm256_set1_ps((float)asum[j * nb + b]));
                    acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(_mm256_set1_ps(ad[j * nb + b]), _mm256_sub_ps(t1, t2)));
                }
            } else {
                for (int j = 0; j < nt; j++) {
                    s32[j] = _mm256_add_epi32(_mm256_madd_epi16(s16[j], sixteen), _mm256_madd_epi16(l16[j], ones));
                    s32[j] = _mm256_sub_epi32(s32[j], _mm256_set1_epi32(128 * asum[j * nb + b]));
                    FLOAT_STEP(j, s32[j]);
                }
            }
        }
        for (int j = 0; j < nt; j++) _mm256_storeu_ps(lanes + (j * 8 + k) * 8, acc[j]);
    }
    combine_lanes(lanes, nt, acc_out);
}


// Q6_K, `nt` (≤ TILE) tokens × 8 rows: the 6-bit values (0…63) times the activations by
// `maddubs` (|pair| ≤ 2·63·127 = 16002, so two groups add in int16 without overflow), then `madd`
// by each row's 16-value scale widens to int32: sc₀·Σ₀ q·a + sc₁·Σ₁ q·a. The offset 32 comes off as
// 32·(sc₀·A₀ + sc₁·A₁) from the activations' 16-value sums A (`pairs`). The same exact integer as
// the row kernel's sc₀·Σ₀ (q−32)·a + sc₁·Σ₁ (q−32)·a, and the same float step.
__attribute__((target("avx2,f16c"), always_inline)) static inline void
tile_q6k_avx2(const panel_t *p, size_t nb, const int8_t *a, size_t lda, const float *ad, const int32_t *pairs, int nt,
              float *acc_out) {
    float lanes[TILE * 64];
    for (size_t k = 0; k < 8; k++) {
        __m256 acc[TILE];
        for (int j = 0; j < TILE; j++) acc[j] = _mm256_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *wb = p->w + at * 256;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            const __m256 dw = _mm256_loadu_ps(p->d + at * 8);
            const __m256i *sv = (const __m256i *)(p->sc + at * 48);
            const __m256i s0 = _mm256_load_si256(sv), s1 = _mm256_load_si256(sv + 1);
            __m256i s32[TILE];
            for (int j = 0; j < nt; j++) s32[j] = _mm256_setzero_si256();
            for (int g = 0; g < 8; g += 2) {
                const __m256i w0 = _mm256_load_si256((const __m256i *)(wb + 32 * g));
                const __m256i w1 = _mm256_load_si256((const __m256i *)(wb + 32 * g + 32));
                const __m256i sc = g < 4 ? s0 : s1;
                for (int j = 0; j < nt; j++) {
                    const __m256i pr = _mm256_add_epi16(_mm256_maddubs_epi16(w0, bcast4(ab + j * lda + 4 * g)),
                                                        _mm256_maddubs_epi16(w1, bcast4(ab + j * lda + 4 * g + 4)));
                    s32[j] = _mm256_add_epi32(s32[j], _mm256_madd_epi16(pr, sc));
                }
            }
            const __m256i sx = _mm256_load_si256(sv + 2);
            for (int j = 0; j < nt; j++) {
                const __m256i off = _mm256_madd_epi16(sx, _mm256_set1_epi32(pairs[j * nb + b]));
                s32[j] = _mm256_sub_epi32(s32[j], _mm256_slli_epi32(off, 5));
                FLOAT_STEP(j, s32[j]);
            }
        }
        for (int j = 0; j < nt; j++) _mm256_storeu_ps(lanes + (j * 8 + k) * 8, acc[j]);
    }
    combine_lanes(lanes, nt, acc_out);
}

__attribute__((target("avx2,f16c"))) static void tile_avx2_any(int format, const panel_t *p, size_t nb, const int8_t *a,
                                                               size_t lda, const float *ad, const int32_t *asum, int nt,
                                                               float *o) {
    if (format == P4K_Q6_K) {
        switch (nt) {
        case 1: tile_q6k_avx2(p, nb, a, lda, ad, asum, 1, o); break;
        case 2: tile_q6k_avx2(p, nb, a, lda, ad, asum, 2, o); break;
        case 3: tile_q6k_avx2(p, nb, a, lda, ad, asum, 3, o); break;
        default: tile_q6k_avx2(p, nb, a, lda, ad, asum, 4, o); break;
        }
    } else if (format == P4K_Q4_K) {
        TILE_COPIES(tile_avx2, P4K_Q4_K)
    } else if (format == P4K_Q5_K) {
        TILE_COPIES(tile_avx2, P4K_Q5_K)
    } else if (format == P4K_Q4_0) {
        TILE_COPIES(tile_avx2, P4K_Q4_0)
    } else {
        TILE_COPIES(tile_avx2, P4K_Q8_0)
    }
}


// ---- AVX2, Q4_0: 16 rows (two panels) × up to 3 tokens ------------------------------------------
// Each broadcast of 4 activation bytes feeds two weight vectors (16 rows) instead of one. On the
// AVX2 cores measured (AMD Zen 3), a broadcast from memory plus a `maddubs` sustain ~0.85 pairs
// per cycle against ~1.25 `maddubs` + `add` pairs per cycle when one broadcast feeds two: the
// broadcasts, not the multiplies, were the limit. The offsets 8·Σa come precomputed (one
// broadcast instead of a scalar multiply, a move and a broadcast per token and block). Same
// block sums, same float terms in the same lane order as tile_avx2: outputs unchanged bit for bit.

__attribute__((target("avx2,f16c"), always_inline)) static inline void
tile16_q4_avx2(int kq, const panel_t *p, const panel_t *q, size_t nb, const int8_t *a, size_t lda, const float *ad,
               const int32_t *off8, int nt, float *acc_out) {
    float lanes[2 * TILE16 * 64];
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t k = 0; k < 8; k++) {
        __m256 acc0[TILE16], acc1[TILE16];
        for (int j = 0; j < TILE16; j++) acc0[j] = acc1[j] = _mm256_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *w0 = p->w + at * 256, *w1 = q->w + at * 256;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            __m256i s0[TILE16], s1[TILE16];
            {
                const __m256i v0 = _mm256_load_si256((const __m256i *)w0);
                const __m256i v1 = _mm256_load_si256((const __m256i *)w1);
                for (int j = 0; j < nt; j++) {
                    const __m256i x = bcast4(ab + j * lda);
                    s0[j] = _mm256_maddubs_epi16(v0, x);
                    s1[j] = _mm256_maddubs_epi16(v1, x);
                }
            }
            for (int g = 1; g < 8; g++) {
                const __m256i v0 = _mm256_load_si256((const __m256i *)(w0 + 32 * g));
                const __m256i v1 = _mm256_load_si256((const __m256i *)(w1 + 32 * g));
                for (int j = 0; j < nt; j++) {
                    const __m256i x = bcast4(ab + j * lda + 4 * g);
                    s0[j] = _mm256_add_epi16(s0[j], _mm256_maddubs_epi16(v0, x));
                    s1[j] = _mm256_add_epi16(s1[j], _mm256_maddubs_epi16(v1, x));
                }
            }
            const __m256 d0 = _mm256_load_ps(p->d + at * 8), d1 = _mm256_load_ps(q->d + at * 8);
            if (kq) {
                // Q4_K: term = d_a · ((d·sc)·Σq·a − (dmin·m)·Σa); off8 holds Σa.
                const __m256 m0 = _mm256_load_ps(p->dm + at * 8), m1 = _mm256_load_ps(q->dm + at * 8);
                for (int j = 0; j < nt; j++) {
                    const __m256 da = _mm256_set1_ps(ad[j * nb + b]), sa = _mm256_set1_ps((float)off8[j * nb + b]);
                    const __m256 t0 = _mm256_sub_ps(_mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_madd_epi16(s0[j], ones))),
                                                    _mm256_mul_ps(m0, sa));
                    const __m256 t1 = _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_madd_epi16(s1[j], ones))),
                                                    _mm256_mul_ps(m1, sa));
                    acc0[j] = _mm256_add_ps(acc0[j], _mm256_mul_ps(da, t0));
                    acc1[j] = _mm256_add_ps(acc1[j], _mm256_mul_ps(da, t1));
                }
                continue;
            }
            for (int j = 0; j < nt; j++) {
                const __m256i off = _mm256_set1_epi32(off8[j * nb + b]);
                const __m256 da = _mm256_set1_ps(ad[j * nb + b]);
                const __m256i i0 = _mm256_sub_epi32(_mm256_madd_epi16(s0[j], ones), off);
                const __m256i i1 = _mm256_sub_epi32(_mm256_madd_epi16(s1[j], ones), off);
                acc0[j] = _mm256_add_ps(acc0[j], _mm256_mul_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(d0, da)));
                acc1[j] = _mm256_add_ps(acc1[j], _mm256_mul_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(d1, da)));
            }
        }
        for (int j = 0; j < nt; j++) {
            _mm256_storeu_ps(lanes + (2 * j * 8 + k) * 8, acc0[j]);
            _mm256_storeu_ps(lanes + ((2 * j + 1) * 8 + k) * 8, acc1[j]);
        }
    }
    combine_lanes(lanes, 2 * nt, acc_out);  // token j: rows 0…7 at 16 j, rows 8…15 at 16 j + 8
}

__attribute__((target("avx2,f16c"))) static void tile16_q4_any(const panel_t *p, const panel_t *q, size_t nb,
                                                               const int8_t *a, size_t lda, const float *ad,
                                                               const int32_t *off8, int nt, float *o) {
    switch (nt) {
    case 1: tile16_q4_avx2(0, p, q, nb, a, lda, ad, off8, 1, o); break;
    case 2: tile16_q4_avx2(0, p, q, nb, a, lda, ad, off8, 2, o); break;
    default: tile16_q4_avx2(0, p, q, nb, a, lda, ad, off8, 3, o); break;
    }
}

// Q4_K's values are Q4_0's nibbles without the offset: the same 16-row tile, Q4_K's float step,
// two tokens at a time: its float step needs more registers (4096 × 5120 weights × 64 tokens,
// tools/kernel_bench.c on Zen 3: three tokens ran 25 % slower than 8-row tiles, two 12 % faster).
enum { TILE16_Q4K = 2 };
__attribute__((target("avx2,f16c"))) static void tile16_q4k_any(const panel_t *p, const panel_t *q, size_t nb,
                                                                const int8_t *a, size_t lda, const float *ad,
                                                                const int32_t *asum, int nt, float *o) {
    switch (nt) {
    case 1: tile16_q4_avx2(1, p, q, nb, a, lda, ad, asum, 1, o); break;
    case 2: tile16_q4_avx2(1, p, q, nb, a, lda, ad, asum, 2, o); break;
    default: tile16_q4_avx2(1, p, q, nb, a, lda, ad, asum, 3, o); break;
    }
}


// ---- AVX2, Q8_0: 16 rows (two panels, each in two nibble planes) × up to 2 tokens ------------
// The Q4_0 idea for Q8_0: each broadcast of 4 activation bytes feeds four `maddubs` (two panels ×
// high and low nibble planes) instead of two. Two tokens keep the eight int16 accumulators and
// four weight vectors in registers. Same block sums and float steps as tile_avx2's Q8_0 branch.
enum { TILE16_Q8 = 2 };

__attribute__((target("avx2,f16c"), always_inline)) static inline void
tile16_q8_avx2(const panel_t *p, const panel_t *q, size_t nb, const int8_t *a, size_t lda, const float *ad,
               const int32_t *off, int nt, float *acc_out) {
    float lanes[2 * TILE16_Q8 * 64];
    const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
    for (size_t k = 0; k < 8; k++) {
        __m256 acc0[TILE16_Q8], acc1[TILE16_Q8];
        for (int j = 0; j < TILE16_Q8; j++) acc0[j] = acc1[j] = _mm256_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *w0 = p->w + at * 512, *w1 = q->w + at * 512;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            __m256i h0[TILE16_Q8], l0[TILE16_Q8], h1[TILE16_Q8], l1[TILE16_Q8];
            for (int j = 0; j < nt; j++) h0[j] = l0[j] = h1[j] = l1[j] = _mm256_setzero_si256();
            for (int g = 0; g < 8; g++) {
                const __m256i v0h = _mm256_load_si256((const __m256i *)(w0 + 32 * g));
                const __m256i v0l = _mm256_load_si256((const __m256i *)(w0 + 256 + 32 * g));
                const __m256i v1h = _mm256_load_si256((const __m256i *)(w1 + 32 * g));
                const __m256i v1l = _mm256_load_si256((const __m256i *)(w1 + 256 + 32 * g));
                for (int j = 0; j < nt; j++) {
                    const __m256i x = bcast4(ab + j * lda + 4 * g);
                    h0[j] = _mm256_add_epi16(h0[j], _mm256_maddubs_epi16(v0h, x));
                    l0[j] = _mm256_add_epi16(l0[j], _mm256_maddubs_epi16(v0l, x));
                    h1[j] = _mm256_add_epi16(h1[j], _mm256_maddubs_epi16(v1h, x));
                    l1[j] = _mm256_add_epi16(l1[j], _mm256_maddubs_epi16(v1l, x));
                }
            }
            const __m256 d0 = _mm256_load_ps(p->d + at * 8), d1 = _mm256_load_ps(q->d + at * 8);
            for (int j = 0; j < nt; j++) {
                const __m256i o = _mm256_set1_epi32(off[j * nb + b]);
                const __m256 da = _mm256_set1_ps(ad[j * nb + b]);
                const __m256i i0 = _mm256_sub_epi32(_mm256_add_epi32(_mm256_madd_epi16(h0[j], sixteen), _mm256_madd_epi16(l0[j], ones)), o);
                const __m256i i1 = _mm256_sub_epi32(_mm256_add_epi32(_mm256_madd_epi16(h1[j], sixteen), _mm256_madd_epi16(l1[j], ones)), o);
                acc0[j] = _mm256_add_ps(acc0[j], _mm256_mul_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(d0, da)));
                acc1[j] = _mm256_add_ps(acc1[j], _mm256_mul_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(d1, da)));
            }
        }
        for (int j = 0; j < nt; j++) {
            _mm256_storeu_ps(lanes + (2 * j * 8 + k) * 8, acc0[j]);
            _mm256_storeu_ps(lanes + ((2 * j + 1) * 8 + k) * 8, acc1[j]);
        }
    }
    combine_lanes(lanes, 2 * nt, acc_out);  // token j: rows 0…7 at 16 j, rows 8…15 at 16 j + 8
}

__attribute__((target("avx2,f16c"))) static void tile16_q8_any(const panel_t *p, const panel_t *q, size_t nb,
                                                               const int8_t *a, size_t lda, const float *ad,
                                                               const int32_t *off, int nt, float *o) {
    if (nt == 1) tile16_q8_avx2(p, q, nb, a, lda, ad, off, 1, o);
    else tile16_q8_avx2(p, q, nb, a, lda, ad, off, 2, o);
}

// ---- AVX2, Q3_K and Q2_K: 8 rows (one panel) or 16 rows (two) × up to TILE / TILE16 tokens -----
// The decoded values (Q3_K: u = q + 4, 0…7; Q2_K: q, 0…3) are stored with the two 16-value halves
// of each block interleaved in pairs (panels.c, q3k_pos), as are the activations: every `maddubs`
// then yields, per row, one int16 sum over the first half and one over the second. Small values
// let all eight groups add in int16 (|·| ≤ 8·2·7·128 = 14336), and one `madd` by [sc₀ sc₁] per row
// gives sc₀·Σ₀ u·a + sc₁·Σ₁ u·a: one multiply-add per group, as Q4_0. Q3_K's offset 4 comes off as
// 4·(sc₀·A₀ + sc₁·A₁), Q2_K's mins as dmin·(m₀·A₀ + m₁·A₁), through the activations' 16-value
// sums A (`pairs`). The same exact integers per block as the row kernels' and the same float steps.
__attribute__((target("avx2,f16c"), always_inline)) static inline void
tile_q23k_avx2(int q2, int np, const panel_t *const *pn, size_t nb, const int8_t *a, size_t lda, const float *ad,
               const int32_t *pairs, int nt, float *acc_out) {
    float lanes[2 * TILE * 64];
    for (size_t k = 0; k < 8; k++) {
        __m256 acc[2][TILE];
        for (int q = 0; q < np; q++)
            for (int j = 0; j < nt; j++) acc[q][j] = _mm256_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(pn[0], b);
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            __m256i s16[2][TILE];
            for (int q = 0; q < np; q++)
                for (int j = 0; j < nt; j++) s16[q][j] = _mm256_setzero_si256();
            for (int g = 0; g < 8; g++) {
                __m256i wv[2];
                for (int q = 0; q < np; q++) wv[q] = _mm256_load_si256((const __m256i *)(pn[q]->w + at * 256 + 32 * g));
                for (int j = 0; j < nt; j++) {
                    const __m256i x = bcast4(ab + j * lda + 4 * g);
                    for (int q = 0; q < np; q++) s16[q][j] = _mm256_add_epi16(s16[q][j], _mm256_maddubs_epi16(wv[q], x));
                }
            }
            for (int q = 0; q < np; q++) {
                const __m256i *sv = (const __m256i *)(pn[q]->sc + at * 48);
                const __m256i sx = _mm256_load_si256(sv + 2);
                const __m256 dw = _mm256_load_ps(pn[q]->d + at * 8);
                for (int j = 0; j < nt; j++) {
                    const __m256i pr = _mm256_set1_epi32(pairs[j * nb + b]);
                    const __m256 da = _mm256_set1_ps(ad[j * nb + b]);
                    if (q2) {  // term = d_a · (d·Σ sc·q·a − dmin·Σ m·A), as the Q2_K row kernel
                        const __m256 t1 = _mm256_mul_ps(dw, _mm256_cvtepi32_ps(_mm256_madd_epi16(s16[q][j], sx)));
                        const __m256 t2 = _mm256_mul_ps(_mm256_load_ps(pn[q]->dm + at * 8),
                                                        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_load_si256(sv), pr)));
                        acc[q][j] = _mm256_add_ps(acc[q][j], _mm256_mul_ps(da, _mm256_sub_ps(t1, t2)));
                    } else {
                        const __m256i off = _mm256_madd_epi16(sx, pr);
                        const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(s16[q][j], sx), _mm256_slli_epi32(off, 2));
                        acc[q][j] = _mm256_add_ps(acc[q][j], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, da)));
                    }
                }
            }
        }
        for (int j = 0; j < nt; j++)
            for (int q = 0; q < np; q++) _mm256_storeu_ps(lanes + ((np * j + q) * 8 + k) * 8, acc[q][j]);
    }
    combine_lanes(lanes, np * nt, acc_out);  // token j: rows 0…7 at 8·np·j, rows 8…15 after them
}

#define Q23K_TILES(NAME, NAME16, Q2)                                                                                   \
    __attribute__((target("avx2,f16c"))) static void NAME(int format, const panel_t *p, size_t nb, const int8_t *a,    \
                                                          size_t lda, const float *ad, const int32_t *pairs, int nt,    \
                                                          float *o) {                                                    \
        (void)format;                                                                                                  \
        const panel_t *pn[1] = {p};                                                                                    \
        switch (nt) {                                                                                                  \
        case 1: tile_q23k_avx2(Q2, 1, pn, nb, a, lda, ad, pairs, 1, o); break;                                         \
        case 2: tile_q23k_avx2(Q2, 1, pn, nb, a, lda, ad, pairs, 2, o); break;                                         \
        case 3: tile_q23k_avx2(Q2, 1, pn, nb, a, lda, ad, pairs, 3, o); break;                                         \
        default: tile_q23k_avx2(Q2, 1, pn, nb, a, lda, ad, pairs, 4, o); break;                                        \
        }                                                                                                              \
    }                                                                                                                  \
    __attribute__((target("avx2,f16c"))) static void NAME16(const panel_t *p, const panel_t *q, size_t nb,             \
                                                            const int8_t *a, size_t lda, const float *ad,               \
                                                            const int32_t *pairs, int nt, float *o) {                   \
        const panel_t *pn[2] = {p, q};                                                                                 \
        switch (nt) {                                                                                                  \
        case 1: tile_q23k_avx2(Q2, 2, pn, nb, a, lda, ad, pairs, 1, o); break;                                         \
        case 2: tile_q23k_avx2(Q2, 2, pn, nb, a, lda, ad, pairs, 2, o); break;                                         \
        default: tile_q23k_avx2(Q2, 2, pn, nb, a, lda, ad, pairs, 3, o); break;                                        \
        }                                                                                                              \
    }
Q23K_TILES(tile_q3k_any, tile16_q3k_any, 0)
Q23K_TILES(tile_q2k_any, tile16_q2k_any, 1)
const p4k_tile_fn p4k_tile_q23k_avx2[2] = {tile_q3k_any, tile_q2k_any};

// ---- Kernel entry points ---------------------------------------------------------------------

__attribute__((target("avx2,f16c"))) static int q4_0_panels(const p4k_job *job) {
    return p4k_panels_gemm(job, 0, tile_avx2_any, tile16_q4_any, TILE16);
}

__attribute__((target("avx2,f16c"))) static int q8_0_panels(const p4k_job *job) {
    return p4k_panels_gemm(job, 1, tile_avx2_any, tile16_q8_any, TILE16_Q8);
}

__attribute__((target("avx2,f16c"))) static int kquant_panels(const p4k_job *job) {
    if (job->format == P4K_Q4_K) return p4k_panels_gemm(job, 0, tile_avx2_any, tile16_q4k_any, TILE16_Q4K);
    return p4k_panels_gemm(job, 0, tile_avx2_any, NULL, 0);
}

// Formats decoded into another format's panels (panels.c, p4k_panel_tile_format): IQ4_XS, IQ4_NL
// and Q5_0 run Q8_0's tiles, Q4_1 Q4_K's, Q5_1 Q5_K's; Q3_K and Q2_K have their own tiles over
// panels laid out as Q6_K's (the 16-value scales beside the values).
__attribute__((target("avx2,f16c"))) static int decoded_panels(const p4k_job *job) {
    switch (p4k_panel_tile_format(job->format)) {
    case P4K_Q8_0: return p4k_panels_gemm(job, 1, tile_avx2_any, tile16_q8_any, TILE16_Q8);
    case P4K_Q4_K: return p4k_panels_gemm(job, 0, tile_avx2_any, tile16_q4k_any, TILE16_Q4K);
    case P4K_Q6_K:  // Q3_K, Q2_K
        if (job->format == P4K_Q2_K) return p4k_panels_gemm(job, 0, tile_q2k_any, tile16_q2k_any, TILE16);
        return p4k_panels_gemm(job, 0, tile_q3k_any, tile16_q3k_any, TILE16);
    default: return p4k_panels_gemm(job, 0, tile_avx2_any, NULL, 0);
    }
}

#define BATCHES ((1u << P4K_CLASS_SMALL) | (1u << P4K_CLASS_LARGE))

const p4k_kernel p4k_gemm_avx2[] = {
    {P4K_Q4_0, P4K_ISA_AVX2, BATCHES, "avx2-panels", q4_0_panels},
    {P4K_Q8_0, P4K_ISA_AVX2, BATCHES, "avx2-panels", q8_0_panels},
    {P4K_Q4_K, P4K_ISA_AVX2, BATCHES, "avx2-panels", kquant_panels},
    {P4K_Q5_K, P4K_ISA_AVX2, BATCHES, "avx2-panels", kquant_panels},
    {P4K_Q6_K, P4K_ISA_AVX2, BATCHES, "avx2-panels", kquant_panels},
    {P4K_IQ4_XS, P4K_ISA_AVX2, BATCHES, "avx2-panels", decoded_panels},
    {P4K_IQ4_NL, P4K_ISA_AVX2, BATCHES, "avx2-panels", decoded_panels},
    {P4K_Q5_0, P4K_ISA_AVX2, BATCHES, "avx2-panels", decoded_panels},
    {P4K_Q3_K, P4K_ISA_AVX2, BATCHES, "avx2-panels", decoded_panels},
    {P4K_Q2_K, P4K_ISA_AVX2, BATCHES, "avx2-panels", decoded_panels},
    {P4K_Q4_1, P4K_ISA_AVX2, BATCHES, "avx2-panels", decoded_panels},
    {P4K_Q5_1, P4K_ISA_AVX2, BATCHES, "avx2-panels", decoded_panels},
    {0, 0, 0, NULL, NULL},
};
#endif
