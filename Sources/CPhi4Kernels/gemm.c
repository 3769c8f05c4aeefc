// Quantized weights × several activation rows (prefill chunks, speculative verification).
//
// Every output equals p4k_matvec's result for that activation row bit for bit: the same exact
// int32 block sums (Q4_0: Σ (q-8)·a, Q8_0: Σ q·a), the same float terms
// isum · (d_w · d_a) added into lane b % 8 for block b, and the same combine tree of the eight
// lanes. So a batch (a prefill chunk, a speculative verification pass) computes each token's
// matrix products exactly as decoding it alone would.
//
// The vector paths read weights in panels of 8 rows, repacked on the fly (into a buffer that
// stays in cache while every token uses it) so that one 32-bit lane holds 4 consecutive weights
// of one row: for block b and group g of 4 elements, 32 bytes = rows 0…7 × elements 4g…4g+3.
// One broadcast of 4 activation bytes then feeds all 8 rows at once (llama.cpp's repacked
// "8×4" layout, built here per call instead of stored, so no second copy of the weights exists);
// Q4_0 on AVX2 reads two panels at once (16 rows × 3 tokens per register tile), so that each
// broadcast feeds two multiplies. The activations are copied once per call with their blocks in
// panel order, so every pass over a panel reads them sequentially.
//  - Q4_0: the bytes are q (0…15). AVX2 sums 8 groups of `maddubs` in int16 (|Σ| ≤ 8·2·15·127
//    = 30480 < 2^15), then widens once per block; the offset 8 comes off as 8·Σa.
//  - Q8_0: u = q + 128 (0…255). AVX2 splits u = 16·h + l into two nibble panels so that
//    `maddubs` cannot saturate; VNNI (`vpdpbusd`) multiplies u directly. The offset 128 comes off
//    as 128·Σa.
// Q4_0 batches of at most SMALL_T tokens and Q8_0 batches of at most SMALL_T_Q8 (AVX2) skip the
// panels: the row kernels' in-register transpose of 8 blocks is reused for up to 8 tokens
// (p4k_tokens in quant.c), which is cheaper than a panel that so few tokens would read.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#define _GNU_SOURCE
#include "CPhi4Kernels.h"
#include "simd.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

float p4k_fp16_to_f32(uint16_t h);
// From quant.c and kquant.c (internal).
int p4k_tokens(int format, int isa, const void *w, size_t cols, size_t rows, size_t t, const int8_t *aq, const float *ad,
               const int32_t *asum, float *out, size_t ldo, int accumulate);
void p4k_activation_sums16(const int8_t *aq, size_t cols, int16_t *a16);
void p4k_kquant_rows(int format, int isa, const void *w, size_t cols, size_t rows, const int8_t *aq, const float *ad,
                     const int32_t *asum, const int16_t *a16, float *out, int accumulate);

// Tokens per pass over a repacked panel (each panel is rebuilt once per chunk) and per register
// tile. The activations are read in panel order (sequentially per lane), so a chunk of 192 tokens
// runs as fast as one of 64 while repacking a third as often (tools/gemm_bench.c, 5120 and 17920
// columns).
enum { TOKEN_CHUNK = 192, TILE = 4 };
// Batches up to these sizes use the transposed row kernels (p4k_tokens) instead of panels.
// Q4_0: full shape, verification passes of 2-8 tokens 5-30 % faster. Q8_0 (tools/gemm_bench.c,
// one thread, 10000 × 5120): 2-8 tokens 1.5-2× faster, 16 the same, 64 ~10 % slower.
#ifndef SMALL_T
#define SMALL_T 8
#endif
#ifndef SMALL_T_Q8
#define SMALL_T_Q8 16
#endif

static float h2f_slow(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return p4k_fp16_to_f32(h);
}

// ---- Scalar twin: the row kernel, token by token -------------------------------------------

static void gemm_scalar(int format, const uint8_t *w, size_t cols, size_t rows, size_t t, const int8_t *aq,
                        const float *ad, const int32_t *asum, float *out, size_t ldo, int accumulate) {
    const size_t nb = cols / 32;
    for (size_t i = 0; i < t; i++)
        p4k_matvec(format, P4K_ISA_SCALAR, w, cols, rows, aq + i * cols, ad + i * nb, asum + i * nb, out + i * ldo,
                   accumulate);
}

// ---- Panels ----------------------------------------------------------------------------------

// Layout of one repacked block: `bytes` of weights (`split` → Q8_0 as high nibbles then low
// nibbles), then 8 f32 scales are kept in a separate array.
// Blocks are stored lane by lane (blocks 0, 8, 16, …, then 1, 9, 17, …) in the order the tiles
// read them.
typedef struct {
    uint8_t *w;         // nb × block_bytes
    float *d;           // nb × 8 (Q4_K: d·sc of the sub-block)
    float *dm;          // Q4_K only: nb × 8, dmin·m of the sub-block
    size_t block_bytes;
    size_t per_lane;    // ⌈nb / 8⌉
} panel_t;

// Where block b is stored in a panel.
static inline size_t slot(const panel_t *p, size_t b) { return (b & 7) * p->per_lane + (b >> 3); }

// Portable repack of `n` ≤ 8 rows (missing rows are zero weights with scale 0).
static void repack_scalar(int format, int split, const uint8_t *w, size_t rb, size_t nb, size_t n, panel_t *p) {
    const size_t stride = format == P4K_Q8_0 ? 34 : 18;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *dst = p->w + slot(p, b) * p->block_bytes;
        memset(dst, 0, p->block_bytes);
        for (size_t r = 0; r < 8; r++) {
            p->d[slot(p, b) * 8 + r] = r < n ? h2f_slow(w + r * rb + b * stride) : 0.0f;
            if (r >= n) continue;
            const uint8_t *blk = w + r * rb + b * stride + 2;
            for (int e = 0; e < 32; e++) {
                const size_t at = (size_t)(e / 4) * 32 + r * 4 + (size_t)(e % 4);
                if (format == P4K_Q4_0) {
                    dst[at] = e < 16 ? (blk[e] & 0xF) : (blk[e - 16] >> 4);
                } else {
                    const uint8_t u = (uint8_t)(blk[e] ^ 0x80);  // q + 128
                    if (split) {
                        dst[at] = u >> 4;
                        dst[256 + at] = u & 0xF;
                    } else {
                        dst[at] = u;
                    }
                }
            }
        }
    }
}

// Q4_K: block b of the row is sub-block b % 8 of super-block b / 8; its 32 values are 4-bit
// (0…15, no offset), with a float scale and min per row and sub-block.
static void repack_q4k(const uint8_t *w, size_t rb, size_t nb, size_t n, panel_t *p) {
    for (size_t r = 0; r < 8; r++) {
        for (size_t i = 0; i < nb / 8; i++) {
            const uint8_t *blk = w + r * rb + i * 144;
            float ds[8] = {0}, dm[8] = {0};
            if (r < n) p4k_q4k_subscales(blk, ds, dm);
            for (size_t j = 0; j < 8; j++) {
                const size_t at = slot(p, 8 * i + j);
                uint8_t *dst = p->w + at * p->block_bytes;
                p->d[at * 8 + r] = ds[j];
                p->dm[at * 8 + r] = dm[j];
                const uint8_t *qs = blk + 16 + 32 * (j / 2);
                for (int e = 0; e < 32; e++)
                    dst[(e / 4) * 32 + r * 4 + (size_t)(e % 4)] = r < n ? (uint8_t)((qs[e] >> (4 * (j & 1))) & 0xF) : 0;
            }
        }
    }
}

#if defined(__x86_64__)
// Eight full rows → one panel. Lane k of a 128-bit half holds row k (low half) or k+4 (high half),
// so after the in-lane transpose vector g holds element group g of rows 0…7 in order.
__attribute__((target("avx2,f16c"))) static void repack_avx2(int format, int split, const uint8_t *w, size_t rb,
                                                             size_t nb, panel_t *p) {
    const size_t stride = format == P4K_Q8_0 ? 34 : 18;
    const __m256i nib = _mm256_set1_epi8(0xF), flip = _mm256_set1_epi8((char)0x80);
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *r0 = w + b * stride;
        uint8_t *dst = p->w + slot(p, b) * p->block_bytes;
        uint16_t h[8];
        for (int r = 0; r < 8; r++) memcpy(&h[r], r0 + r * rb, 2);
        _mm256_storeu_ps(p->d + slot(p, b) * 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
        if (format == P4K_Q4_0) {
            __m256i a = p4k_load_pair(r0 + 2, r0 + 4 * rb + 2), c = p4k_load_pair(r0 + rb + 2, r0 + 5 * rb + 2);
            __m256i e = p4k_load_pair(r0 + 2 * rb + 2, r0 + 6 * rb + 2), f = p4k_load_pair(r0 + 3 * rb + 2, r0 + 7 * rb + 2);
            P4K_TRANSPOSE4(a, c, e, f);
            __m256i g[4] = {a, c, e, f};
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_si256((__m256i *)(dst + 32 * k), _mm256_and_si256(g[k], nib));
                _mm256_storeu_si256((__m256i *)(dst + 32 * (k + 4)), _mm256_and_si256(_mm256_srli_epi16(g[k], 4), nib));
            }
        } else {
            for (int half = 0; half < 2; half++) {
                const uint8_t *q = r0 + 2 + 16 * half;
                __m256i a = p4k_load_pair(q, q + 4 * rb), c = p4k_load_pair(q + rb, q + 5 * rb);
                __m256i e = p4k_load_pair(q + 2 * rb, q + 6 * rb), f = p4k_load_pair(q + 3 * rb, q + 7 * rb);
                P4K_TRANSPOSE4(a, c, e, f);
                __m256i g[4] = {a, c, e, f};
                for (int k = 0; k < 4; k++) {
                    const __m256i u = _mm256_xor_si256(g[k], flip);
                    uint8_t *at = dst + 32 * (4 * half + k);
                    if (split) {
                        _mm256_storeu_si256((__m256i *)at, _mm256_and_si256(_mm256_srli_epi16(u, 4), nib));
                        _mm256_storeu_si256((__m256i *)(at + 256), _mm256_and_si256(u, nib));
                    } else {
                        _mm256_storeu_si256((__m256i *)at, u);
                    }
                }
            }
        }
    }
}

// Q4_K, eight full rows: per super-block, each pair of sub-blocks (32 bytes a row: low nibbles =
// sub-block 2p, high = 2p+1) is transposed like a Q4_0 block, 16 bytes at a time.
__attribute__((target("avx2"))) static void repack_q4k_avx2(const uint8_t *w, size_t rb, size_t nb, panel_t *p) {
    const __m256i nib = _mm256_set1_epi8(0xF);
    for (size_t i = 0; i < nb / 8; i++) {
        for (size_t r = 0; r < 8; r++) {
            float ds[8], dm[8];
            p4k_q4k_subscales(w + r * rb + i * 144, ds, dm);
            for (size_t j = 0; j < 8; j++) {
                p->d[slot(p, 8 * i + j) * 8 + r] = ds[j];
                p->dm[slot(p, 8 * i + j) * 8 + r] = dm[j];
            }
        }
        for (size_t pair = 0; pair < 4; pair++) {
            uint8_t *lo = p->w + slot(p, 8 * i + 2 * pair) * p->block_bytes;
            uint8_t *hi = p->w + slot(p, 8 * i + 2 * pair + 1) * p->block_bytes;
            for (size_t h = 0; h < 2; h++) {
                const uint8_t *q = w + i * 144 + 16 + 32 * pair + 16 * h;
                __m256i a = p4k_load_pair(q, q + 4 * rb), c = p4k_load_pair(q + rb, q + 5 * rb);
                __m256i e = p4k_load_pair(q + 2 * rb, q + 6 * rb), f = p4k_load_pair(q + 3 * rb, q + 7 * rb);
                P4K_TRANSPOSE4(a, c, e, f);
                const __m256i g[4] = {a, c, e, f};
                for (size_t k = 0; k < 4; k++) {
                    _mm256_storeu_si256((__m256i *)(lo + 32 * (4 * h + k)), _mm256_and_si256(g[k], nib));
                    _mm256_storeu_si256((__m256i *)(hi + 32 * (4 * h + k)), _mm256_and_si256(_mm256_srli_epi16(g[k], 4), nib));
                }
            }
        }
    }
}

// ---- AVX2 tiles: `nt` (≤ TILE) tokens × 8 rows over all blocks ----------------------------------

__attribute__((target("avx2"))) static inline __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Adds block b's float terms for token j (8 rows) to the running sum of lane b % 8. The blocks
// are visited lane by lane (k, k+8, k+16, … for lane k), which keeps each lane's order and holds
// one accumulator per token in a register.
#define FLOAT_STEP(j, isum)                                                                                            \
    acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(_mm256_cvtepi32_ps(isum),                                             \
                                                 _mm256_mul_ps(dw, _mm256_set1_ps(ad[(j) * nb + b]))))

// The row kernel's combine tree, ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)), for 8 rows at once.
__attribute__((target("avx2"))) static inline void combine_lanes(const float *lanes, int nt, float *acc_out) {
    for (int j = 0; j < nt; j++) {
        const float *l = lanes + j * 64;
#define L_(k) _mm256_loadu_ps(l + 8 * (k))
        const __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(L_(0), L_(4)), _mm256_add_ps(L_(2), L_(6))),
                                       _mm256_add_ps(_mm256_add_ps(L_(1), L_(5)), _mm256_add_ps(L_(3), L_(7))));
#undef L_
        _mm256_storeu_ps(acc_out + 8 * j, v);
    }
}

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
            __m256i s16[TILE], l16[TILE], s32[TILE];  // l16: Q8_0's low-nibble plane
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
            }
            if (format == P4K_Q4_0) {
                for (int j = 0; j < nt; j++) {
                    s32[j] = _mm256_sub_epi32(_mm256_madd_epi16(s16[j], ones), _mm256_set1_epi32(8 * asum[j * nb + b]));
                    FLOAT_STEP(j, s32[j]);
                }
            } else if (format == P4K_Q4_K) {
                // term = d_a · ((d·sc)·Σq·a − (dmin·m)·Σa), as the K-quant row kernel computes it.
                const __m256 dm = _mm256_loadu_ps(p->dm + at * 8);
                for (int j = 0; j < nt; j++) {
                    const __m256 t1 = _mm256_mul_ps(dw, _mm256_cvtepi32_ps(_mm256_madd_epi16(s16[j], ones)));
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

// One copy of a tile routine per format and token count: the constants let the compiler unroll
// the token loops and drop the other formats' branches.
#define TILE_COPIES(FN, FMT)                                                                                           \
    switch (nt) {                                                                                                      \
    case 1: FN(FMT, p, nb, a, lda, ad, asum, 1, o); break;                                                             \
    case 2: FN(FMT, p, nb, a, lda, ad, asum, 2, o); break;                                                             \
    case 3: FN(FMT, p, nb, a, lda, ad, asum, 3, o); break;                                                             \
    default: FN(FMT, p, nb, a, lda, ad, asum, 4, o); break;                                                            \
    }

__attribute__((target("avx2,f16c"))) static void tile_avx2_any(int format, const panel_t *p, size_t nb, const int8_t *a,
                                                               size_t lda, const float *ad, const int32_t *asum, int nt,
                                                               float *o) {
    if (format == P4K_Q4_K) {
        TILE_COPIES(tile_avx2, P4K_Q4_K)
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
enum { TILE16 = 3 };

__attribute__((target("avx2,f16c"), always_inline)) static inline void
tile16_q4_avx2(const panel_t *p, const panel_t *q, size_t nb, const int8_t *a, size_t lda, const float *ad,
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

// out[0…15] = v (or += v).
__attribute__((target("avx2"))) static void put16(float *out, const float *v, int accumulate) {
    __m256 lo = _mm256_loadu_ps(v), hi = _mm256_loadu_ps(v + 8);
    if (accumulate) {
        lo = _mm256_add_ps(_mm256_loadu_ps(out), lo);
        hi = _mm256_add_ps(_mm256_loadu_ps(out + 8), hi);
    }
    _mm256_storeu_ps(out, lo);
    _mm256_storeu_ps(out + 8, hi);
}

__attribute__((target("avx2,f16c"))) static void tile16_q4_any(const panel_t *p, const panel_t *q, size_t nb,
                                                               const int8_t *a, size_t lda, const float *ad,
                                                               const int32_t *off8, int nt, float *o) {
    switch (nt) {
    case 1: tile16_q4_avx2(p, q, nb, a, lda, ad, off8, 1, o); break;
    case 2: tile16_q4_avx2(p, q, nb, a, lda, ad, off8, 2, o); break;
    default: tile16_q4_avx2(p, q, nb, a, lda, ad, off8, 3, o); break;
    }
}

// ---- AVX-512 VNNI tiles (256-bit vectors, `vpdpbusd`: no int16 stage, no nibble split) -------

#define VNNI_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c"

__attribute__((target(VNNI_TARGET), always_inline)) static inline void
tile_vnni(int format, const panel_t *p, size_t nb, const int8_t *a, size_t lda, const float *ad, const int32_t *asum,
          int nt, float *acc_out) {
    float lanes[TILE * 64];
    const int offset = format == P4K_Q4_0 ? 8 : 128;
    for (size_t k = 0; k < 8; k++) {
        __m256 acc[TILE];
        for (int j = 0; j < TILE; j++) acc[j] = _mm256_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *wb = p->w + at * p->block_bytes;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            const __m256 dw = _mm256_loadu_ps(p->d + at * 8);
            __m256i s32[TILE];
            for (int j = 0; j < nt; j++) s32[j] = _mm256_set1_epi32(-offset * asum[j * nb + b]);
            for (int g = 0; g < 8; g++) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(wb + 32 * g));
                for (int j = 0; j < nt; j++) {
                    int32_t v;
                    memcpy(&v, ab + j * lda + 4 * g, 4);
                    s32[j] = _mm256_dpbusd_epi32(s32[j], wv, _mm256_set1_epi32(v));
                }
            }
            for (int j = 0; j < nt; j++) FLOAT_STEP(j, s32[j]);
        }
        for (int j = 0; j < nt; j++) _mm256_storeu_ps(lanes + (j * 8 + k) * 8, acc[j]);
    }
    combine_lanes(lanes, nt, acc_out);
}

__attribute__((target(VNNI_TARGET))) static void tile_vnni_any(int format, const panel_t *p, size_t nb, const int8_t *a,
                                                               size_t lda, const float *ad, const int32_t *asum, int nt,
                                                               float *o) {
    if (format == P4K_Q4_0) {
        TILE_COPIES(tile_vnni, P4K_Q4_0)
    } else {
        TILE_COPIES(tile_vnni, P4K_Q8_0)
    }
}
#endif

// ---- Driver ----------------------------------------------------------------------------------

int p4k_gemm(int format, int isa, const void *w, size_t cols, size_t rows, size_t t, const int8_t *aq, const float *ad,
             const int32_t *asum, float *out, size_t ldo, int accumulate) {
    if (isa < 0) isa = p4k_isa_best();
    if (!p4k_isa_available(isa)) isa = P4K_ISA_SCALAR;
#if defined(__x86_64__)
    if (!(p4k_cpu_features() & P4K_CPU_F16C)) isa = P4K_ISA_SCALAR;
#else
    isa = P4K_ISA_SCALAR;
#endif
    if (isa == P4K_ISA_SCALAR) {
        gemm_scalar(format, w, cols, rows, t, aq, ad, asum, out, ldo, accumulate);
        return 0;
    }
    // A few tokens: the one-token kernels' transposed blocks reused across the tokens beat
    // repacking panels that so few tokens would use.
    if (((format == P4K_Q4_0 && t <= SMALL_T) || (format == P4K_Q8_0 && t <= SMALL_T_Q8)) &&
        p4k_tokens(format, isa, w, cols, rows, t, aq, ad, asum, out, ldo, accumulate) == 0)
        return 0;
    if (p4k_kquant_block_bytes(format) && format != P4K_Q4_K) {
        // Q5_K, Q6_K: the row kernel token by token over panels of 16 rows (which stay in cache);
        // Q6_K's 16-value activation sums once per token.
        const size_t nb = cols / 32, rb = p4k_row_bytes(format, cols);
        int16_t *a16 = NULL;
        if (format == P4K_Q6_K) {
            if (!(a16 = malloc(t * (cols / 16) * sizeof(int16_t)))) return -1;
            for (size_t i = 0; i < t; i++) p4k_activation_sums16(aq + i * cols, cols, a16 + i * (cols / 16));
        }
        for (size_t r0 = 0; r0 < rows; r0 += 16) {
            const size_t n = rows - r0 < 16 ? rows - r0 : 16;
            for (size_t i = 0; i < t; i++)
                p4k_kquant_rows(format, isa, (const uint8_t *)w + r0 * rb, cols, n, aq + i * cols, ad + i * nb,
                                asum + i * nb, a16 ? a16 + i * (cols / 16) : NULL, out + i * ldo + r0, accumulate);
        }
        free(a16);
        return 0;
    }
#if defined(__x86_64__)
    const int q4k = format == P4K_Q4_K;
    const int vnni = isa == P4K_ISA_VNNI && !q4k;
    const int split = format == P4K_Q8_0 && !vnni;
    const size_t nb = cols / 32, rb = p4k_row_bytes(format, cols);
    panel_t p = {.block_bytes = split ? 512 : 256, .per_lane = (nb + 7) / 8};
    p.w = aligned_alloc(64, 8 * p.per_lane * p.block_bytes);
    p.d = aligned_alloc(64, 8 * p.per_lane * 8 * sizeof(float));
    p.dm = q4k ? aligned_alloc(64, 8 * p.per_lane * 8 * sizeof(float)) : NULL;
    // Q4_0 on AVX2: a second panel, so that tiles cover 16 rows (tile16_q4_avx2).
    const int wide = format == P4K_Q4_0 && !vnni;
    panel_t q = p;
    q.w = wide ? aligned_alloc(64, 8 * p.per_lane * p.block_bytes) : NULL;
    q.d = wide ? aligned_alloc(64, 8 * p.per_lane * 8 * sizeof(float)) : NULL;
    int32_t *off8 = wide ? malloc(t * nb * sizeof(int32_t)) : NULL;  // 8·Σa per token and block
    if (off8)
        for (size_t i = 0; i < t * nb; i++) off8[i] = 8 * asum[i];
    // The activations with their blocks in panel order, so that each lane's pass reads them
    // sequentially.
    const size_t ldp = 8 * p.per_lane * 32;
    int8_t *ap = aligned_alloc(64, t * ldp);
    if (ap)
        for (size_t i = 0; i < t; i++)
            for (size_t b = 0; b < nb; b++) memcpy(ap + i * ldp + slot(&p, b) * 32, aq + i * cols + b * 32, 32);
    if (!p.w || !p.d || (q4k && !p.dm) || !ap || (wide && (!q.w || !q.d || !off8))) {
        free(off8);
        free(ap);
        free(p.w);
        free(p.d);
        free(p.dm);
        free(q.w);
        free(q.d);
        return -1;
    }
    float tile[16 * TILE16 > 8 * TILE ? 16 * TILE16 : 8 * TILE];  // one tile's outputs: tokens × rows
    for (size_t i0 = 0; i0 < t; i0 += TOKEN_CHUNK) {
        const size_t tc = t - i0 < TOKEN_CHUNK ? t - i0 : TOKEN_CHUNK;
        for (size_t r0 = 0; r0 < rows;) {
            const uint8_t *wr = (const uint8_t *)w + r0 * rb;
            if (wide && rows - r0 >= 16) {
                repack_avx2(format, 0, wr, rb, nb, &p);
                repack_avx2(format, 0, wr + 8 * rb, rb, nb, &q);
                for (size_t i = i0; i < i0 + tc; i += TILE16) {
                    const int nt = (int)(i0 + tc - i < TILE16 ? i0 + tc - i : TILE16);
                    tile16_q4_any(&p, &q, nb, ap + i * ldp, ldp, ad + i * nb, off8 + i * nb, nt, tile);
                    for (int j = 0; j < nt; j++) put16(out + (i + (size_t)j) * ldo + r0, tile + 16 * j, accumulate);
                }
                r0 += 16;
                continue;
            }
            const size_t n = rows - r0 < 8 ? rows - r0 : 8;
            if (q4k && n == 8) repack_q4k_avx2(wr, rb, nb, &p);
            else if (q4k) repack_q4k(wr, rb, nb, n, &p);
            else if (n == 8) repack_avx2(format, split, wr, rb, nb, &p);
            else repack_scalar(format, split, wr, rb, nb, n, &p);
            for (size_t i = i0; i < i0 + tc; i += TILE) {
                const int nt = (int)(i0 + tc - i < TILE ? i0 + tc - i : TILE);
                const int8_t *a = ap + i * ldp;
                if (vnni) tile_vnni_any(format, &p, nb, a, ldp, ad + i * nb, asum + i * nb, nt, tile);
                else tile_avx2_any(format, &p, nb, a, ldp, ad + i * nb, asum + i * nb, nt, tile);
                for (int j = 0; j < nt; j++) {
                    float *o = out + (i + (size_t)j) * ldo + r0;
                    for (size_t r = 0; r < n; r++) o[r] = accumulate ? o[r] + tile[8 * j + r] : tile[8 * j + r];
                }
            }
            r0 += n;
        }
    }
    free(p.w);
    free(p.d);
    free(p.dm);
    free(q.w);
    free(q.d);
    free(off8);
    free(ap);
#endif
    return 0;
}
