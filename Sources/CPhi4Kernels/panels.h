// Weight panels for the multi-token kernels (private to CPhi4Kernels): the layout, the small
// helpers the tiles of gemm_avx2.c and kernels_vnni.c share, and the driver that panels.c
// implements (it repacks the rows and calls the tiles).
//
// The panel kernels read weights in panels of 8 rows, repacked on the fly (into a buffer that stays
// in cache while every token uses it) so that one 32-bit lane holds 4 consecutive weights of one
// row: for block b and group g of 4 elements, 32 bytes = rows 0…7 × elements 4g…4g+3. One
// broadcast of 4 activation bytes then feeds all 8 rows at once (llama.cpp's repacked "8×4"
// layout, built here per call instead of stored, so no second copy of the weights exists). The
// activations are copied once per call with their blocks in panel order, so every pass over a
// panel reads them sequentially.
//  - Q4_0: the bytes are q (0…15); the offset 8 comes off as 8·Σa.
//  - Q8_0: u = q + 128 (0…255). AVX2 splits u = 16·h + l into two nibble panels (`split`) so that
//    `maddubs` cannot saturate; VNNI (`vpdpbusd`) multiplies u directly. The offset 128 comes off
//    as 128·Σa.
//  - Q4_K / Q5_K: 4- or 5-bit values (0…15 / 0…31) with a float scale d·sc and min dmin·m per row
//    and sub-block.
//  - Q6_K: 6-bit values 0…63 with the 16-value scales as int16 (see repack_q6k).
// Every output equals the row kernels' bit for bit (kernels.h): the same exact block sums, the same
// float terms in each lane's block order, the same combine tree.
#ifndef P4K_PANELS_H
#define P4K_PANELS_H
#if defined(__x86_64__)
#include "kernels.h"
#include "simd.h"
#include <immintrin.h>
#include <stdlib.h>

// Tokens per pass over a repacked panel (each panel is rebuilt once per chunk) and per register
// tile. The activations are read in panel order (sequentially per lane), so a chunk of 192 tokens
// runs as fast as one of 64 while repacking a third as often (tools/gemm_bench.c, 5120 and 17920
// columns).
enum { TOKEN_CHUNK = 192, TILE = 4, TILE16 = 3 };
// The most tokens any wide tile takes at once (the 512-bit VNNI tile; the driver's output buffer).
enum { TILE16_MAX = 8 };

// ---- Panels ----------------------------------------------------------------------------------

// Layout of one repacked block: `bytes` of weights (`split` → Q8_0 as high nibbles then low
// nibbles), then 8 f32 scales are kept in a separate array.
// Blocks are stored lane by lane (blocks 0, 8, 16, …, then 1, 9, 17, …) in the order the tiles
// read them.
typedef struct {
    uint8_t *w;         // nb × block_bytes
    float *d;           // nb × 8 (Q4_K: d·sc of the sub-block)
    float *dm;          // Q4_K only: nb × 8, dmin·m of the sub-block
    int16_t *sc;        // Q6_K only: nb × 48, the 16-value scales (see repack_q6k)
    size_t block_bytes;
    size_t per_lane;    // ⌈nb / 8⌉
} panel_t;

// Where block b is stored in a panel.
static inline size_t slot(const panel_t *p, size_t b) { return (b & 7) * p->per_lane + (b >> 3); }

// ---- Shared by the tiles ---------------------------------------------------------------------

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

// One copy of a tile routine per format and token count: the constants let the compiler unroll
// the token loops and drop the other formats' branches.
#define TILE_COPIES(FN, FMT)                                                                                           \
    switch (nt) {                                                                                                      \
    case 1: FN(FMT, p, nb, a, lda, ad, asum, 1, o); break;                                                             \
    case 2: FN(FMT, p, nb, a, lda, ad, asum, 2, o); break;                                                             \
    case 3: FN(FMT, p, nb, a, lda, ad, asum, 3, o); break;                                                             \
    default: FN(FMT, p, nb, a, lda, ad, asum, 4, o); break;                                                            \
    }

/// A tile routine: `nt` (≤ TILE) tokens × the 8 rows of panel `p` over all blocks → o[8·j + r].
typedef void (*p4k_tile_fn)(int format, const panel_t *p, size_t nb, const int8_t *a, size_t lda, const float *ad,
                            const int32_t *asum, int nt, float *o);
/// A wide tile routine: `nt` (≤ its token count, at most TILE16) tokens × 16 rows (panels p and q)
/// → o[16·j + r]; off8: the format's offset times Σa per token and block (Q6_K: the 16-value sums).
typedef void (*p4k_tile16_fn)(const panel_t *p, const panel_t *q, size_t nb, const int8_t *a, size_t lda,
                              const float *ad, const int32_t *off8, int nt, float *o);

/// The AVX2 8-row tiles of Q3_K and Q2_K (gemm_avx2.c), for the 512-bit kernels' rows left over
/// from 16-row tiles.
extern const p4k_tile_fn p4k_tile_q23k_avx2[2];

/// The panel kernel (panels.c): chunks of TOKEN_CHUNK tokens; per chunk, each group of 8 rows (16
/// with `tile16_fn`, in steps of `tile16_tokens` tokens) repacked once and multiplied by every
/// token of the chunk by the caller's tile routines. `split`: Q8_0's two nibble planes (for
/// `maddubs`). Returns -1 (nothing written) when scratch memory is missing.
/// `job->format` may also be one whose blocks are decoded into another format's panels (its tile
/// format, p4k_panel_tile_format): the tiles then run as that format's, with `split` as its.
int p4k_panels_gemm(const p4k_job *job, int split, p4k_tile_fn tile_fn, p4k_tile16_fn tile16_fn, int tile16_tokens);

/// The format whose panels and tiles a format runs on: IQ4_XS, IQ4_NL and Q5_0 as Q8_0 (signed
/// values + 128, a float scale per block of 32: IQ4_XS's d·sc), Q3_K and Q2_K in Q6_K's layout
/// (the 16-value scales, and Q2_K's mins, beside the values; values u = q + 4 or q with the block's
/// two halves interleaved in pairs, run by their own tiles), Q4_1 as Q4_K and Q5_1 as Q5_K (scale
/// d, min −m); any other format as itself.
int p4k_panel_tile_format(int format);

/// The tile format of the lattice IQ types (not a GGML type): Q6_K's panels and tiles with the
/// values u = v + 64 (v the signed integers of p4k_iq_decode32, |v| ≤ 62) and the odd multipliers
/// m₀, m₁ in place of the 16-value scales, so the offset 64·(m₀·A₀ + m₁·A₁) comes off instead of
/// Q6_K's 32·(…). VNNI tiles only (`maddubs` would overflow int16 on two groups of such values).
enum { P4K_TILE_IQ = 1000 };

/// A lattice IQ super-block as u = v + 64 (256 values) and its sub-blocks' multipliers
/// m[2j] = m₀, m[2j + 1] = m₁ (AVX2; kernels_iq_avx2.c); returns D.
float p4k_iq_decode_block_u(int format, const uint8_t *blk, uint8_t u[256], int16_t m[16]);
#endif
#endif
