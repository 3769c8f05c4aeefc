// AVX2 kernels of the lattice IQ types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M),
// rows for every batch size: each 32-value sub-block is decoded once and met by up to IQ_TOKENS
// tokens. The scalar kernels' arithmetic (kernels_scalar.c, row_iq): per sub-block
// isum = m₀·Σ₀ v·a + m₁·Σ₁ v·a (exact int32), term = isum·(D·d_a) in lane b % 8, the lanes
// combined by p4k_combine8 — identical bits (integer sums are exact in any order).
//
// How the grid lookups are paid, per 32 weights: four 64-bit grid entries (IQ3: eight 32-bit)
// loaded straight into one vector (an entry is its values' bytes, iq_grids.c; the grids hold the
// magnitudes, so no negation of the weights is needed); IQ3_S builds its eight 9-bit indices in one
// vector (a multiply moves each high bit to bit 8) instead of eight scalar shift-and-or chains.
// The sign bits (a 7-bit index into p4k_iq_ksigns, or stored bytes) are spread to a byte mask by
// one shuffle and compare and applied to the activations, as ±1 operands of `sign_epi8`; IQ1's
// ±1/8 shift is folded in as 8·g ± 1 (a byte shift and an add), its magnitude by an abs. The
// multipliers are read once per super-block (iq_head): types with one per 32 values multiply the
// 8 sub-block sums together after the horizontal add; types with one per 16 get them as int16 by
// one shuffle per sub-block. Each token then costs one `sign`, one `maddubs` (|pair| ≤ 2·62·127)
// and one `madd` per 32 weights.
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

// −1 where `neg` is set, +1 elsewhere: the operand of `sign_epi8` that gives a value its sign.
__attribute__((target("avx2"), always_inline)) static inline __m256i signs_of(__m256i neg) {
    return _mm256_or_si256(neg, _mm256_set1_epi8(1));
}

static inline uint32_t ksigns4(uint32_t aux) {
    return (uint32_t)p4k_iq_ksigns[aux & 127] | (uint32_t)p4k_iq_ksigns[(aux >> 7) & 127] << 8 |
           (uint32_t)p4k_iq_ksigns[(aux >> 14) & 127] << 16 | (uint32_t)p4k_iq_ksigns[(aux >> 21) & 127] << 24;
}

static inline long long delta8(int negative) { return negative ? -1LL : 0x0101010101010101LL; }

// Whether a type has one multiplier per 32 values (m₀ = m₁) rather than one per 16.
static inline int iq_uniform(int format) {
    return format == P4K_IQ2_XXS || format == P4K_IQ3_XXS || format == P4K_IQ3_S || format == P4K_IQ1_S;
}

// What a super-block's sub-blocks share: D (p4k_iq_decode32's) and the multipliers, read once per
// 256 values. Types with one multiplier per 32: m32's lane j is sub-block j's (applied to the
// exact sub-block sums after they are added up). Types with one per 16: mb's bytes 2j and 2j + 1
// are sub-block j's m₀ and m₁ in both 128-bit halves, spread to int16 by one shuffle per sub-block.
typedef struct {
    float D;
    __m256i m32, mb;
} iq_head;

__attribute__((target("avx2"), always_inline)) static inline __m256i odd_mult(__m256i n) {
    return _mm256_or_si256(_mm256_slli_epi32(n, 1), _mm256_set1_epi32(1));
}

__attribute__((target("avx2"), always_inline)) static inline __m256i nibble_mults(const uint8_t s[8]) {
    const __m128i v = _mm_loadl_epi64((const __m128i *)s), f = _mm_set1_epi8(0xF);
    const __m128i n = _mm_unpacklo_epi8(_mm_and_si128(v, f), _mm_and_si128(_mm_srli_epi16(v, 4), f));
    return _mm256_broadcastsi128_si256(_mm_add_epi8(_mm_add_epi8(n, n), _mm_set1_epi8(1)));
}

__attribute__((target("avx2"), always_inline)) static inline iq_head iq_head_of(int format, const uint8_t *blk) {
    iq_head h;
    h.m32 = h.mb = _mm256_setzero_si256();
    switch (format) {
    case P4K_IQ2_XXS: {  // the multipliers sit in the top 4 bits of the odd 32-bit words of qs
        const p4k_block_iq2_xxs *x = (const p4k_block_iq2_xxs *)blk;
        const __m256 q0 = _mm256_loadu_ps((const float *)x->qs), q1 = _mm256_loadu_ps((const float *)(x->qs + 32));
        const __m256i aux = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(q0, q1, _MM_SHUFFLE(3, 1, 3, 1))),
                                                     _MM_SHUFFLE(3, 1, 2, 0));
        h.m32 = odd_mult(_mm256_srli_epi32(aux, 28));
        h.D = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        break;
    }
    case P4K_IQ3_XXS: {
        const p4k_block_iq3_xxs *x = (const p4k_block_iq3_xxs *)blk;
        h.m32 = odd_mult(_mm256_srli_epi32(_mm256_loadu_si256((const __m256i *)x->sas), 28));
        h.D = p4k_h2f(p4k_load_u16(&x->d)) * 0.25f;
        break;
    }
    case P4K_IQ3_S: {
        const p4k_block_iq3_s *x = (const p4k_block_iq3_s *)blk;
        uint32_t s;
        memcpy(&s, x->scales, 4);
        const __m256i n = _mm256_srlv_epi32(_mm256_set1_epi32((int)s), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
        h.m32 = odd_mult(_mm256_and_si256(n, _mm256_set1_epi32(0xF)));
        h.D = p4k_h2f(p4k_load_u16(&x->d));
        break;
    }
    case P4K_IQ1_S: {
        const p4k_block_iq1_s *x = (const p4k_block_iq1_s *)blk;
        const __m256i qh = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)x->qh));
        h.m32 = odd_mult(_mm256_and_si256(_mm256_srli_epi32(qh, 12), _mm256_set1_epi32(7)));
        h.D = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        break;
    }
    case P4K_IQ2_XS: {
        const p4k_block_iq2_xs *x = (const p4k_block_iq2_xs *)blk;
        h.mb = nibble_mults(x->scales);
        h.D = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        break;
    }
    case P4K_IQ2_S: {
        const p4k_block_iq2_s *x = (const p4k_block_iq2_s *)blk;
        h.mb = nibble_mults(x->scales);
        h.D = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        break;
    }
    default: {  // IQ1_M: 3-bit scales, four to each uint16 (m₀, m₁ of two sub-blocks), d in the top nibbles
        const p4k_block_iq1_m *x = (const p4k_block_iq1_m *)blk;
        uint16_t s[4];
        memcpy(s, x->scales, 8);
        uint64_t lo = 0, hi = 0;
        for (int k = 0; k < 8; k++) {
            lo |= (uint64_t)((s[k / 4] >> (3 * (k % 4))) & 7) << (8 * k);
            hi |= (uint64_t)((s[2 + k / 4] >> (3 * (k % 4))) & 7) << (8 * k);
        }
        const __m128i n = _mm_set_epi64x((long long)hi, (long long)lo);
        h.mb = _mm256_broadcastsi128_si256(_mm_add_epi8(_mm_add_epi8(n, n), _mm_set1_epi8(1)));
        const uint16_t dh = (uint16_t)((s[0] >> 12) | ((s[1] >> 8) & 0xF0) | ((s[2] >> 4) & 0xF00) | (s[3] & 0xF000));
        h.D = p4k_h2f(dh) * 0.125f;
        break;
    }
    }
    return h;
}

// Shuffle controls taking sub-block j's m₀ (bytes 0…15) and m₁ (16…31) to int16 lanes.
static const uint8_t split_ctrl[8][32] = {
#define C_(j) {2 * j, 0x80, 2 * j, 0x80, 2 * j, 0x80, 2 * j, 0x80, 2 * j, 0x80, 2 * j, 0x80, 2 * j, 0x80, 2 * j, 0x80, \
               2 * j + 1, 0x80, 2 * j + 1, 0x80, 2 * j + 1, 0x80, 2 * j + 1, 0x80, 2 * j + 1, 0x80, 2 * j + 1, 0x80,       \
               2 * j + 1, 0x80, 2 * j + 1, 0x80}
    C_(0), C_(1), C_(2), C_(3), C_(4), C_(5), C_(6), C_(7),
#undef C_
};

// The int16 multipliers [m₀ ×8, m₁ ×8] of sub-block j, from the head's bytes.
__attribute__((target("avx2"), always_inline)) static inline __m256i split_mult(__m256i mb, int j) {
    return _mm256_shuffle_epi8(mb, _mm256_loadu_si256((const __m256i *)split_ctrl[j]));
}

// The 16-bit grid indices of four (`lanes` 4) or eight values: index l is low[l] | (high bits of
// byte `h` for l, moved to bit 8 by a multiply by `shift` and masked by `mask`), two to a word.
__attribute__((target("avx2"), always_inline)) static inline __m128i grid_indices(__m128i low8, unsigned h,
                                                                                  __m128i shift, int mask) {
    const __m128i hi = _mm_and_si128(_mm_mullo_epi16(_mm_set1_epi16((short)h), shift), _mm_set1_epi16((short)mask));
    return _mm_or_si128(_mm_cvtepu8_epi16(low8), hi);
}

// Sub-block j of super-block `blk`: its 32 values' magnitudes |v| as bytes (the grids hold them
// unsigned; IQ1's 8·g ± 1 takes an abs) and in *sgn a byte per value with v's sign (never 0), so
// that maddubs(|v|, sign(a, sgn)) = v·a in pairs. Every index is masked to its table.
__attribute__((target("avx2"), always_inline)) static inline __m256i iq_magnitudes(int format, const uint8_t *blk, int j,
                                                                                   __m256i *sgn) {
    switch (format) {
    case P4K_IQ2_XXS: {
        const p4k_block_iq2_xxs *x = (const p4k_block_iq2_xxs *)blk;
        uint32_t aux;
        memcpy(&aux, x->qs + 8 * j + 4, 4);
        const uint8_t *i = x->qs + 8 * j;
        *sgn = signs_of(sign_mask(ksigns4(aux)));
        return _mm256_set_epi64x((long long)p4k_iq2xxs_grid[i[3]], (long long)p4k_iq2xxs_grid[i[2]],
                                 (long long)p4k_iq2xxs_grid[i[1]], (long long)p4k_iq2xxs_grid[i[0]]);
    }
    case P4K_IQ3_XXS: {
        const p4k_block_iq3_xxs *x = (const p4k_block_iq3_xxs *)blk;
        uint32_t aux;
        memcpy(&aux, x->sas + 4 * j, 4);
        const uint8_t *i = x->qs + 8 * j;
        *sgn = signs_of(sign_mask(ksigns4(aux)));
        return _mm256_setr_epi32((int)p4k_iq3xxs_grid[i[0]], (int)p4k_iq3xxs_grid[i[1]], (int)p4k_iq3xxs_grid[i[2]],
                                 (int)p4k_iq3xxs_grid[i[3]], (int)p4k_iq3xxs_grid[i[4]], (int)p4k_iq3xxs_grid[i[5]],
                                 (int)p4k_iq3xxs_grid[i[6]], (int)p4k_iq3xxs_grid[i[7]]);
    }
    case P4K_IQ2_XS: {
        const p4k_block_iq2_xs *x = (const p4k_block_iq2_xs *)blk;
        uint16_t q[4];
        memcpy(q, x->qs + 4 * j, 8);
        const uint32_t sg = (uint32_t)p4k_iq_ksigns[q[0] >> 9] | (uint32_t)p4k_iq_ksigns[q[1] >> 9] << 8 |
                            (uint32_t)p4k_iq_ksigns[q[2] >> 9] << 16 | (uint32_t)p4k_iq_ksigns[q[3] >> 9] << 24;
        *sgn = signs_of(sign_mask(sg));
        return _mm256_set_epi64x((long long)p4k_iq2xs_grid[q[3] & 511], (long long)p4k_iq2xs_grid[q[2] & 511],
                                 (long long)p4k_iq2xs_grid[q[1] & 511], (long long)p4k_iq2xs_grid[q[0] & 511]);
    }
    case P4K_IQ2_S: {  // index l: qs byte | bits 2l, 2l + 1 of qh[j] at bits 8, 9 (≤ 1023)
        const p4k_block_iq2_s *x = (const p4k_block_iq2_s *)blk;
        const uint8_t *i = x->qs + 4 * j;
        const unsigned h = x->qh[j];
        uint32_t sg;
        memcpy(&sg, x->signs + 4 * j, 4);
        *sgn = signs_of(sign_mask(sg));
        return _mm256_set_epi64x((long long)p4k_iq2s_grid[i[3] | ((h >> 6) & 3) << 8],
                                 (long long)p4k_iq2s_grid[i[2] | ((h >> 4) & 3) << 8],
                                 (long long)p4k_iq2s_grid[i[1] | ((h >> 2) & 3) << 8],
                                 (long long)p4k_iq2s_grid[i[0] | (h & 3) << 8]);
    }
    case P4K_IQ3_S: {  // index l: qs byte | bit l of qh[j] at bit 8 (≤ 511)
        const p4k_block_iq3_s *x = (const p4k_block_iq3_s *)blk;
        uint32_t sg;
        memcpy(&sg, x->signs + 4 * j, 4);
        const __m128i ix = grid_indices(_mm_loadl_epi64((const __m128i *)(x->qs + 8 * j)), x->qh[j],
                                        _mm_setr_epi16(256, 128, 64, 32, 16, 8, 4, 2), 0x100);
        const uint64_t a = (uint64_t)_mm_cvtsi128_si64(ix), b = (uint64_t)_mm_extract_epi64(ix, 1);
        *sgn = signs_of(sign_mask(sg));
        return _mm256_setr_epi32((int)p4k_iq3s_grid[a & 0xFFFF], (int)p4k_iq3s_grid[(a >> 16) & 0xFFFF],
                                 (int)p4k_iq3s_grid[(a >> 32) & 0xFFFF], (int)p4k_iq3s_grid[a >> 48],
                                 (int)p4k_iq3s_grid[b & 0xFFFF], (int)p4k_iq3s_grid[(b >> 16) & 0xFFFF],
                                 (int)p4k_iq3s_grid[(b >> 32) & 0xFFFF], (int)p4k_iq3s_grid[b >> 48]);
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
        const __m256i v = _mm256_add_epi8(g8, _mm256_set1_epi64x(delta8(qh & 0x8000)));
        *sgn = v;
        return _mm256_abs_epi8(v);
    }
    default: {  // IQ1_M
        const p4k_block_iq1_m *x = (const p4k_block_iq1_m *)blk;
        const uint8_t *i = x->qs + 4 * j;
        const unsigned n01 = x->qh[2 * j], n23 = x->qh[2 * j + 1];
        const __m256i g = _mm256_set_epi64x((long long)p4k_iq1s_grid[i[3] | ((n23 >> 4) & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[2] | (n23 & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[1] | ((n01 >> 4) & 7) << 8],
                                            (long long)p4k_iq1s_grid[i[0] | (n01 & 7) << 8]);
        const __m256i g8 = _mm256_and_si256(_mm256_slli_epi16(g, 3), _mm256_set1_epi8((char)0xF8));
        const __m256i delta = _mm256_set_epi64x(delta8(n23 & 0x80), delta8(n23 & 0x08), delta8(n01 & 0x80), delta8(n01 & 0x08));
        const __m256i v = _mm256_add_epi8(g8, delta);
        *sgn = v;
        return _mm256_abs_epi8(v);
    }
    }
}

// For the panel kernels (panels.c): a super-block as u = v + 64 (0…126) and its multipliers.
__attribute__((target("avx2"))) float p4k_iq_decode_block_u(int format, const uint8_t *blk, uint8_t u[256], int16_t m[16]) {
    const iq_head h = iq_head_of(format, blk);
    for (int j = 0; j < 8; j++) {
        __m256i sgn;
        const __m256i mag = iq_magnitudes(format, blk, j, &sgn);
        _mm256_storeu_si256((__m256i *)(u + 32 * j), _mm256_add_epi8(_mm256_sign_epi8(mag, sgn), _mm256_set1_epi8(64)));
    }
    if (iq_uniform(format)) {
        int32_t m32[8];
        _mm256_storeu_si256((__m256i *)m32, h.m32);
        for (int j = 0; j < 8; j++) m[2 * j] = m[2 * j + 1] = (int16_t)m32[j];
    } else {
        uint8_t mb[32];
        _mm256_storeu_si256((__m256i *)mb, h.mb);
        for (int j = 0; j < 16; j++) m[j] = mb[j];
    }
    return h.D;
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
    const int uniform = iq_uniform(format);
    __m256 acc[IQ_TOKENS];
    for (int k = 0; k < nt; k++) acc[k] = _mm256_setzero_ps();
    for (size_t i = 0; i < nsb; i++, w += bb) {
        __m256i part[IQ_TOKENS][8];
        const iq_head h = iq_head_of(format, w);
        for (int j = 0; j < 8; j++) {
            __m256i sgn;
            const __m256i mag = iq_magnitudes(format, w, j, &sgn);
            const __m256i mult = uniform ? _mm256_set1_epi16(1) : split_mult(h.mb, j);
            for (int k = 0; k < nt; k++) {
                const __m256i x = _mm256_loadu_si256((const __m256i *)(a + k * lda + 256 * i + 32 * j));
                part[k][j] = _mm256_madd_epi16(_mm256_maddubs_epi16(mag, _mm256_sign_epi8(x, sgn)), mult);
            }
        }
        for (int k = 0; k < nt; k++) {
            const __m256i isum = uniform ? _mm256_mullo_epi32(hsum8(part[k]), h.m32) : hsum8(part[k]);
            const __m256 da = _mm256_mul_ps(_mm256_set1_ps(h.D), _mm256_loadu_ps(ad + k * nbd + 8 * i));
            acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), da));
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
