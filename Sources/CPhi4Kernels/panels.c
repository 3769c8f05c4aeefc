// The panel driver and the repacking of weight rows into panels (the layout is described in
// panels.h); the tiles that multiply panels by tokens live in gemm_avx2.c (AVX2) and
// kernels_vnni.c (AVX-512 VNNI) and are passed in as function pointers.
// Outputs equal the row kernels' bit for bit (kernels.h), so no fused multiply-add anywhere.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "panels.h"
#if defined(__x86_64__)
#include <string.h>

// ---- Repacking --------------------------------------------------------------------------------

// Portable repack of `n` ≤ 8 rows (missing rows are zero weights with scale 0).
static void repack_scalar(int format, int split, const uint8_t *w, size_t rb, size_t nb, size_t n, panel_t *p) {
    const size_t stride = format == P4K_Q8_0 ? sizeof(p4k_block_q8_0) : sizeof(p4k_block_q4_0);
    for (size_t b = 0; b < nb; b++) {
        uint8_t *dst = p->w + slot(p, b) * p->block_bytes;
        memset(dst, 0, p->block_bytes);
        for (size_t r = 0; r < 8; r++) {
            p->d[slot(p, b) * 8 + r] = r < n ? p4k_block_scale(w + r * rb, stride, b) : 0.0f;
            if (r >= n) continue;
            const uint8_t *blk = w + r * rb + b * stride + offsetof(p4k_block_q4_0, qs);  // the same offset in Q8_0
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

// Q4_K / Q5_K: block b of the row is sub-block b % 8 of super-block b / 8; its 32 values are
// 4-bit (0…15) or 5-bit (0…31, the fifth bit from qh), no offset, with a float scale and min per
// row and sub-block (the layouts share d, dmin and the scales).
static void repack_q45k(int format, const uint8_t *w, size_t rb, size_t nb, size_t n, panel_t *p) {
    const int five = format == P4K_Q5_K;
    const size_t bb = five ? sizeof(p4k_block_q5_k) : sizeof(p4k_block_q4_k);
    for (size_t r = 0; r < 8; r++) {
        for (size_t i = 0; i < nb / 8; i++) {
            const uint8_t *blk = w + r * rb + i * bb;
            float ds[8] = {0}, dm[8] = {0};
            if (r < n) p4k_q4k_subscales(blk, ds, dm);
            for (size_t j = 0; j < 8; j++) {
                const size_t at = slot(p, 8 * i + j);
                uint8_t *dst = p->w + at * p->block_bytes;
                p->d[at * 8 + r] = ds[j];
                p->dm[at * 8 + r] = dm[j];
                const uint8_t *qs = (five ? ((const p4k_block_q5_k *)blk)->qs : ((const p4k_block_q4_k *)blk)->qs) + 32 * (j / 2);
                for (int e = 0; e < 32; e++) {
                    int q = (qs[e] >> (4 * (j & 1))) & 0xF;
                    if (five) q |= ((((const p4k_block_q5_k *)blk)->qh[e] >> j) & 1) << 4;
                    dst[(e / 4) * 32 + r * 4 + (size_t)(e % 4)] = r < n ? (uint8_t)q : 0;
                }
            }
        }
    }
}

// Q6_K: block b of the row is values 32·(b % 8)… of super-block b / 8, with two signed 8-bit
// scales (one per 16 values) and the super-block's fp16 d. Stored: the values q (0…63, unsigned;
// the offset 32 comes off through the activations' 16-value sums), and per block 48 int16 for
// the 8 rows: [sc₀ sc₀] per row (multiplies element groups 0–3), [sc₁ sc₁] per row (groups 4–7),
// [sc₀ sc₁] per row (the offset). Each value is decoded as the row kernel decodes it.
static void repack_q6k(const uint8_t *w, size_t rb, size_t nb, size_t n, panel_t *p) {
    for (size_t r = 0; r < 8; r++) {
        for (size_t i = 0; i < nb / 8; i++) {
            const p4k_block_q6_k *blk = (const p4k_block_q6_k *)(w + r * rb + i * sizeof(p4k_block_q6_k));
            const float d = r < n ? p4k_h2f(blk->d) : 0.0f;
            for (size_t j = 0; j < 8; j++) {
                const size_t at = slot(p, 8 * i + j);
                uint8_t *dst = p->w + at * p->block_bytes;
                int16_t *sc = p->sc + at * 48;
                const int16_t s0 = r < n ? blk->scales[2 * j] : 0, s1 = r < n ? blk->scales[2 * j + 1] : 0;
                sc[2 * r] = sc[2 * r + 1] = s0;
                sc[16 + 2 * r] = sc[16 + 2 * r + 1] = s1;
                sc[32 + 2 * r] = s0;
                sc[32 + 2 * r + 1] = s1;
                p->d[at * 8 + r] = d;
                const size_t h = j / 4, k = j % 4;
                for (int e = 0; e < 32; e++) {
                    uint8_t q = 0;
                    if (r < n) {
                        const uint8_t lo = blk->ql[64 * h + 32 * (k & 1) + (size_t)e];
                        q = (uint8_t)((k < 2 ? (lo & 0xF) : (lo >> 4)) | (((blk->qh[32 * h + (size_t)e] >> (2 * k)) & 3) << 4));
                    }
                    dst[(e / 4) * 32 + r * 4 + (size_t)(e % 4)] = q;
                }
            }
        }
    }
}

// Eight full rows → one panel. Lane k of a 128-bit half holds row k (low half) or k+4 (high half),
// so after the in-lane transpose vector g holds element group g of rows 0…7 in order.
__attribute__((target("avx2,f16c"))) static void repack_avx2(int format, int split, const uint8_t *w, size_t rb,
                                                             size_t nb, panel_t *p) {
    const size_t stride = format == P4K_Q8_0 ? sizeof(p4k_block_q8_0) : sizeof(p4k_block_q4_0);
    const __m256i nib = _mm256_set1_epi8(0xF), flip = _mm256_set1_epi8((char)0x80);
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *r0 = w + b * stride;
        uint8_t *dst = p->w + slot(p, b) * p->block_bytes;
        uint16_t h[8];
        for (int r = 0; r < 8; r++) memcpy(&h[r], r0 + r * rb, 2);
        _mm256_storeu_ps(p->d + slot(p, b) * 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
        if (format == P4K_Q4_0) {
            const uint8_t *q = r0 + offsetof(p4k_block_q4_0, qs);
            __m256i a = p4k_load_pair(q, q + 4 * rb), c = p4k_load_pair(q + rb, q + 5 * rb);
            __m256i e = p4k_load_pair(q + 2 * rb, q + 6 * rb), f = p4k_load_pair(q + 3 * rb, q + 7 * rb);
            P4K_TRANSPOSE4(a, c, e, f);
            __m256i g[4] = {a, c, e, f};
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_si256((__m256i *)(dst + 32 * k), _mm256_and_si256(g[k], nib));
                _mm256_storeu_si256((__m256i *)(dst + 32 * (k + 4)), _mm256_and_si256(_mm256_srli_epi16(g[k], 4), nib));
            }
        } else {
            for (int half = 0; half < 2; half++) {
                const uint8_t *q = r0 + offsetof(p4k_block_q8_0, qs) + 16 * half;
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
            p4k_q4k_subscales(w + r * rb + i * sizeof(p4k_block_q4_k), ds, dm);
            for (size_t j = 0; j < 8; j++) {
                p->d[slot(p, 8 * i + j) * 8 + r] = ds[j];
                p->dm[slot(p, 8 * i + j) * 8 + r] = dm[j];
            }
        }
        for (size_t pair = 0; pair < 4; pair++) {
            uint8_t *lo = p->w + slot(p, 8 * i + 2 * pair) * p->block_bytes;
            uint8_t *hi = p->w + slot(p, 8 * i + 2 * pair + 1) * p->block_bytes;
            for (size_t h = 0; h < 2; h++) {
                const uint8_t *q = w + i * sizeof(p4k_block_q4_k) + offsetof(p4k_block_q4_k, qs) + 32 * pair + 16 * h;
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


// Q5_K / Q6_K, eight full rows: each row's super-block decoded with vector operations (as the
// row kernels decode it) into 8 blocks of 32 values, then each block's 8 rows transposed like
// Q8_0's (4 bytes of each row side by side).
__attribute__((target("avx2"))) static void repack_k56_avx2(int format, const uint8_t *w, size_t rb, size_t nb,
                                                                  panel_t *p) {
    const __m256i nib = _mm256_set1_epi8(0xF), hmask = _mm256_set1_epi8(0x30), bit4 = _mm256_set1_epi8(0x10);
    const size_t bb = p4k_kquant_block_bytes(format);
    _Alignas(32) uint8_t tmp[8][8][32];  // [row][block][value]
    for (size_t i = 0; i < nb / 8; i++) {
        for (size_t r = 0; r < 8; r++) {
            const uint8_t *raw = w + r * rb + i * bb;
            if (format == P4K_Q5_K) {
                const p4k_block_q5_k *blk = (const p4k_block_q5_k *)raw;
                float ds[8], dm[8];
                p4k_q4k_subscales(blk, ds, dm);
                for (size_t j = 0; j < 8; j++) {
                    p->d[slot(p, 8 * i + j) * 8 + r] = ds[j];
                    p->dm[slot(p, 8 * i + j) * 8 + r] = dm[j];
                }
                const __m256i hv = _mm256_loadu_si256((const __m256i *)blk->qh);
                for (int pr = 0; pr < 4; pr++) {
                    const __m256i q = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * pr));
                    // Bit j of each qh byte moved to 0x10: shift left by 4 − j (j ≤ 4) or right.
                    const int j0 = 2 * pr, j1 = 2 * pr + 1;
                    const __m256i h0 = j0 <= 4 ? _mm256_slli_epi16(hv, 4 - j0) : _mm256_srli_epi16(hv, j0 - 4);
                    const __m256i h1 = j1 <= 4 ? _mm256_slli_epi16(hv, 4 - j1) : _mm256_srli_epi16(hv, j1 - 4);
                    _mm256_store_si256((__m256i *)tmp[r][j0], _mm256_or_si256(_mm256_and_si256(q, nib), _mm256_and_si256(h0, bit4)));
                    _mm256_store_si256((__m256i *)tmp[r][j1], _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), nib),
                                                                              _mm256_and_si256(h1, bit4)));
                }
                continue;
            }
            const p4k_block_q6_k *blk = (const p4k_block_q6_k *)raw;
            const float d = p4k_h2f(blk->d);
            for (size_t j = 0; j < 8; j++) {
                const size_t at = slot(p, 8 * i + j);
                int16_t *sc = p->sc + at * 48;
                const int16_t s0 = blk->scales[2 * j], s1 = blk->scales[2 * j + 1];
                sc[2 * r] = sc[2 * r + 1] = s0;
                sc[16 + 2 * r] = sc[16 + 2 * r + 1] = s1;
                sc[32 + 2 * r] = s0;
                sc[32 + 2 * r + 1] = s1;
                p->d[at * 8 + r] = d;
            }
            for (int h = 0; h < 2; h++) {
                const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h));
                const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32));
                const __m256i hv = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
                const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, nib), _mm256_and_si256(_mm256_slli_epi16(hv, 4), hmask));
                const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, nib), _mm256_and_si256(_mm256_slli_epi16(hv, 2), hmask));
                const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), nib), _mm256_and_si256(hv, hmask));
                const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), nib),
                                                   _mm256_and_si256(_mm256_srli_epi16(hv, 2), hmask));
                _mm256_store_si256((__m256i *)tmp[r][4 * h], q0);
                _mm256_store_si256((__m256i *)tmp[r][4 * h + 1], q1);
                _mm256_store_si256((__m256i *)tmp[r][4 * h + 2], q2);
                _mm256_store_si256((__m256i *)tmp[r][4 * h + 3], q3);
            }
        }
        const size_t stride = sizeof(tmp[0]);
        for (size_t j = 0; j < 8; j++) {
            uint8_t *dst = p->w + slot(p, 8 * i + j) * p->block_bytes;
            for (int half = 0; half < 2; half++) {
                const uint8_t *q = tmp[0][j] + 16 * half;
                __m256i a = p4k_load_pair(q, q + 4 * stride), c = p4k_load_pair(q + stride, q + 5 * stride);
                __m256i e = p4k_load_pair(q + 2 * stride, q + 6 * stride), f = p4k_load_pair(q + 3 * stride, q + 7 * stride);
                P4K_TRANSPOSE4(a, c, e, f);
                _mm256_storeu_si256((__m256i *)(dst + 32 * (4 * half)), a);
                _mm256_storeu_si256((__m256i *)(dst + 32 * (4 * half + 1)), c);
                _mm256_storeu_si256((__m256i *)(dst + 32 * (4 * half + 2)), e);
                _mm256_storeu_si256((__m256i *)(dst + 32 * (4 * half + 3)), f);
            }
        }
    }
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

// ---- Formats decoded into another format's panels ----------------------------------------------

int p4k_panel_tile_format(int format) {
    switch (format) {
    case P4K_IQ4_XS: case P4K_IQ4_NL: case P4K_Q5_0: return P4K_Q8_0;
    case P4K_Q3_K: case P4K_Q2_K: return P4K_Q6_K;
    case P4K_Q4_1: return P4K_Q4_K;
    case P4K_IQ2_XXS: case P4K_IQ2_XS: case P4K_IQ2_S: case P4K_IQ3_XXS: case P4K_IQ3_S: case P4K_IQ1_S: case P4K_IQ1_M:
        return P4K_TILE_IQ;
    case P4K_Q5_1: return P4K_Q5_K;
    default: return format;
    }
}

// Where value e of a 32-block goes in Q3_K's panels: pairs of the two 16-value halves alternate
// (0 1 16 17 2 3 18 19 …), so that every group of four holds two values of each half and one
// `maddubs` yields one int16 sum per half (panels.h).
static inline size_t q3k_pos(int e) { return e < 16 ? (size_t)(4 * (e / 2) + e % 2) : (size_t)(4 * ((e - 16) / 2) + 2 + e % 2); }

// Block b (32 values) of a row of `format`, decoded as the tile format stores it: values `v`
// (Q8_0 tiles: the signed value + 128; Q3_K: u = q + 4 and Q2_K: q, in q3k_pos order; Q4_K /
// Q5_K tiles: q), the float scale `d`, the min term `dm` (Q4_K / Q5_K tiles: −m, since those
// tiles subtract it; Q2_K: dmin), Q3_K's and Q2_K's two 16-value scales sc[0…1] and Q2_K's two
// mins sc[2…3]. Each value and scale is formed as the format's row kernel forms it.
static void decode_block(int format, const uint8_t *row, size_t b, uint8_t v[32], float *d, float *dm, int16_t sc[4]) {
    const size_t i = b / 8, j = b % 8;
    *dm = 0;
    sc[0] = sc[1] = sc[2] = sc[3] = 0;
    switch (format) {
    case P4K_IQ4_XS: {
        const p4k_block_iq4_xs *x = (const p4k_block_iq4_xs *)(row + i * sizeof(p4k_block_iq4_xs));
        int8_t s8[8];
        p4k_iq4xs_scales(x, s8);
        *d = p4k_h2f(x->d) * (float)s8[j];
        for (int e = 0; e < 16; e++) {
            v[e] = (uint8_t)(p4k_iq4nl_values[x->qs[16 * j + (size_t)e] & 0xF] + 128);
            v[e + 16] = (uint8_t)(p4k_iq4nl_values[x->qs[16 * j + (size_t)e] >> 4] + 128);
        }
        break;
    }
    case P4K_IQ4_NL: {
        const p4k_block_iq4_nl *x = (const p4k_block_iq4_nl *)(row + b * sizeof(p4k_block_iq4_nl));
        *d = p4k_h2f(x->d);
        for (int e = 0; e < 16; e++) {
            v[e] = (uint8_t)(p4k_iq4nl_values[x->qs[e] & 0xF] + 128);
            v[e + 16] = (uint8_t)(p4k_iq4nl_values[x->qs[e] >> 4] + 128);
        }
        break;
    }
    case P4K_Q5_0: case P4K_Q5_1: case P4K_Q4_1: {
        const size_t stride = format == P4K_Q5_0 ? sizeof(p4k_block_q5_0) : format == P4K_Q5_1 ? sizeof(p4k_block_q5_1) : sizeof(p4k_block_q4_1);
        const uint8_t *blk = row + b * stride;
        const uint8_t *qs = format == P4K_Q5_0 ? ((const p4k_block_q5_0 *)blk)->qs
                            : format == P4K_Q5_1 ? ((const p4k_block_q5_1 *)blk)->qs : ((const p4k_block_q4_1 *)blk)->qs;
        const uint8_t *qh = format == P4K_Q5_0 ? ((const p4k_block_q5_0 *)blk)->qh
                            : format == P4K_Q5_1 ? ((const p4k_block_q5_1 *)blk)->qh : NULL;
        *d = p4k_h2f(p4k_load_u16(blk));
        if (format != P4K_Q5_0) *dm = -p4k_h2f(p4k_load_u16(blk + 2));
        for (int e = 0; e < 32; e++) {
            int q = e < 16 ? qs[e] & 0xF : qs[e - 16] >> 4;
            if (qh) q |= ((qh[e / 8] >> (e % 8)) & 1) << 4;
            v[e] = (uint8_t)(format == P4K_Q5_0 ? q + 112 : q);  // Q5_0: (q − 16) + 128
        }
        break;
    }
    case P4K_Q2_K: {
        const p4k_block_q2_k *x = (const p4k_block_q2_k *)(row + i * sizeof(p4k_block_q2_k));
        *d = p4k_h2f(x->d);
        *dm = p4k_h2f(x->dmin);
        sc[0] = x->scales[2 * j] & 0xF;
        sc[1] = x->scales[2 * j + 1] & 0xF;
        sc[2] = x->scales[2 * j] >> 4;
        sc[3] = x->scales[2 * j + 1] >> 4;
        for (int e = 0; e < 32; e++) v[q3k_pos(e)] = (uint8_t)((x->qs[32 * (j / 4) + (size_t)e] >> (2 * (j % 4))) & 3);
        break;
    }
    default: {  // Q3_K
        const p4k_block_q3_k *x = (const p4k_block_q3_k *)(row + i * sizeof(p4k_block_q3_k));
        int8_t s16[16];
        p4k_q3k_scales(x->scales, s16);
        *d = p4k_h2f(x->d);
        sc[0] = s16[2 * j];
        sc[1] = s16[2 * j + 1];
        for (int e = 0; e < 32; e++) {
            const int low = (x->qs[32 * (j / 4) + (size_t)e] >> (2 * (j % 4))) & 3;
            v[q3k_pos(e)] = (uint8_t)(low + (((x->hmask[e] >> j) & 1) ? 4 : 0));
        }
        break;
    }
    }
}

// Q3_K's and Q2_K's panels keep, per block and row, the two 16-value scales [sc₀ sc₁] at int16
// 32 + 2r (one `madd` multiplies both halves' sums) and Q2_K's mins [m₀ m₁] at 2r.
static inline void set_pair_scales(int16_t *s, size_t r, const int16_t sc[4]) {
    s[2 * r] = sc[2];
    s[2 * r + 1] = sc[3];
    s[32 + 2 * r] = sc[0];
    s[32 + 2 * r + 1] = sc[1];
}

// Blocks b0…nb−1 of `n` ≤ 8 rows of `format` decoded into the panel layout of its tile format `tf`
// (missing rows are zero weights with scale 0). `split`: Q8_0's two nibble planes.
static void repack_decoded(int format, int tf, int split, const uint8_t *w, size_t rb, size_t b0, size_t nb, size_t n,
                           panel_t *p) {
    for (size_t b = b0; b < nb; b++) {
        const size_t at = slot(p, b);
        uint8_t *dst = p->w + at * p->block_bytes;
        for (size_t r = 0; r < 8; r++) {
            uint8_t v[32];
            float d = 0, dm = 0;
            int16_t sc[4] = {0, 0, 0, 0};
            if (r < n) decode_block(format, w + r * rb, b, v, &d, &dm, sc);
            else memset(v, 0, sizeof v);
            p->d[at * 8 + r] = d;
            if (p->dm) p->dm[at * 8 + r] = dm;
            if (tf == P4K_Q6_K) {
                int16_t *s = p->sc + at * 48;
                set_pair_scales(s, r, sc);
            }
            for (int e = 0; e < 32; e++) {
                const size_t to = (size_t)(e / 4) * 32 + r * 4 + (size_t)(e % 4);
                if (split) {
                    dst[to] = v[e] >> 4;
                    dst[256 + to] = v[e] & 0xF;
                } else {
                    dst[to] = v[e];
                }
            }
        }
    }
}

// The lattice IQ types' blocks of `n` ≤ 8 rows into Q6_K-shaped panels (P4K_TILE_IQ): each row's
// super-block decoded by the AVX2 decoder (u = v + 64, eight sub-blocks at once), then per
// sub-block the 8 rows × 8 groups of 4 values moved into the panel order as 32-bit words.
static void repack_lattice(int format, const uint8_t *w, size_t rb, size_t nb, size_t n, panel_t *p) {
    const size_t bs = p4k_format((uint32_t)format)->block_bytes;
    for (size_t sb = 0; sb < nb / 8; sb++) {
        uint32_t t32[8][64];  // [row][sub-block · 8 + group]
        int16_t m[8][16];     // [row][2 · sub-block + half]
        float d[8];
        for (size_t r = 0; r < 8; r++) {
            if (r < n) {
                d[r] = p4k_iq_decode_block_u(format, w + r * rb + sb * bs, (uint8_t *)t32[r], m[r]);
            } else {
                d[r] = 0;
                memset(t32[r], 0, sizeof t32[r]);
                memset(m[r], 0, sizeof m[r]);
            }
        }
        for (size_t j = 0; j < 8; j++) {
            const size_t at = slot(p, 8 * sb + j);
            int16_t *s = p->sc + at * 48;
            for (size_t r = 0; r < 8; r++) {
                p->d[at * 8 + r] = d[r];
                s[2 * r] = s[2 * r + 1] = s[32 + 2 * r] = m[r][2 * j];  // Q6_K's layout (repack_q6k)
                s[16 + 2 * r] = s[16 + 2 * r + 1] = s[32 + 2 * r + 1] = m[r][2 * j + 1];
            }
            uint32_t *dst = (uint32_t *)(p->w + at * p->block_bytes);
            for (size_t g = 0; g < 8; g++)
                for (size_t r = 0; r < 8; r++) dst[8 * g + r] = t32[r][8 * j + g];
        }
    }
}

// The 32 values of a block in q3k_pos order: 16-bit pairs of the two halves interleaved.
__attribute__((target("avx2"))) static inline __m256i q3k_order(__m256i v) {
    const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    return _mm256_setr_m128i(_mm_unpacklo_epi16(lo, hi), _mm_unpackhi_epi16(lo, hi));
}

// Eight full rows of a decoded format, groups of eight blocks (a super-block, or eight blocks of
// 32) decoded with vector operations into tmp[row][block][32] (the same values and scales as
// decode_block), then each block's eight rows transposed as repack_k56_avx2 does; the blocks past
// the last whole group by decode_block.
__attribute__((target("avx2,f16c"))) static void repack_decoded_avx2(int format, int tf, int split, const uint8_t *w,
                                                                     size_t rb, size_t nb, panel_t *p) {
    const __m256i nib = _mm256_set1_epi8(0xF), flip = _mm256_set1_epi8((char)0x80);
    _Alignas(32) uint8_t tmp[8][8][32];  // [row][block][value]
    const size_t bs = p4k_format((uint32_t)format)->block_bytes;
    for (size_t i = 0; i < nb / 8; i++) {
        for (size_t r = 0; r < 8; r++) {
            const uint8_t *row = w + r * rb;
            float d[8], dm[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            if (format == P4K_IQ4_XS) {
                const p4k_block_iq4_xs *x = (const p4k_block_iq4_xs *)(row + i * bs);
                int8_t s8[8];
                p4k_iq4xs_scales(x, s8);
                const float dx = p4k_h2f(x->d);
                const __m256i table = p4k_iq4_table();
                for (int pr = 0; pr < 4; pr++) {
                    const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * pr));
                    const __m256i lo = _mm256_and_si256(q, nib), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nib);
                    _mm256_store_si256((__m256i *)tmp[r][2 * pr], _mm256_xor_si256(_mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x20)), flip));
                    _mm256_store_si256((__m256i *)tmp[r][2 * pr + 1], _mm256_xor_si256(_mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x31)), flip));
                }
                for (int j = 0; j < 8; j++) d[j] = dx * (float)s8[j];
            } else if (format == P4K_Q3_K) {
                const p4k_block_q3_k *x = (const p4k_block_q3_k *)(row + i * bs);
                int8_t s16[16];
                p4k_q3k_scales(x->scales, s16);
                const float dx = p4k_h2f(x->d);
                const __m256i hm = _mm256_loadu_si256((const __m256i *)x->hmask);
                for (int h = 0; h < 2; h++) {
                    const __m256i qv = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * h));
                    for (int k = 0; k < 4; k++) {
                        const int j = 4 * h + k;  // u = q + 4 (0…7), in q3k_pos order
                        const __m256i u = _mm256_or_si256(p4k_crumbs(qv, k), p4k_bit_to_4(hm, j));
                        _mm256_store_si256((__m256i *)tmp[r][j], q3k_order(u));
                    }
                }
                for (int j = 0; j < 8; j++) {
                    const int16_t sc[4] = {s16[2 * j], s16[2 * j + 1], 0, 0};
                    set_pair_scales(p->sc + slot(p, 8 * i + (size_t)j) * 48, r, sc);
                    d[j] = dx;
                }
            } else if (format == P4K_Q2_K) {
                const p4k_block_q2_k *x = (const p4k_block_q2_k *)(row + i * bs);
                for (int h = 0; h < 2; h++) {
                    const __m256i qv = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * h));
                    for (int k = 0; k < 4; k++) _mm256_store_si256((__m256i *)tmp[r][4 * h + k], q3k_order(p4k_crumbs(qv, k)));
                }
                const float dx = p4k_h2f(x->d), mx = p4k_h2f(x->dmin);
                for (int j = 0; j < 8; j++) {
                    const int16_t sc[4] = {x->scales[2 * j] & 0xF, x->scales[2 * j + 1] & 0xF, x->scales[2 * j] >> 4,
                                           x->scales[2 * j + 1] >> 4};
                    set_pair_scales(p->sc + slot(p, 8 * i + (size_t)j) * 48, r, sc);
                    d[j] = dx;
                    dm[j] = mx;
                }
            } else {  // eight blocks of 32: IQ4_NL, Q5_0, Q4_1, Q5_1
                for (int j = 0; j < 8; j++) {
                    const uint8_t *blk = row + (8 * i + (size_t)j) * bs;
                    __m256i v;
                    if (format == P4K_IQ4_NL) {
                        v = _mm256_xor_si256(_mm256_shuffle_epi8(p4k_iq4_table(), p4k_nibbles32(((const p4k_block_iq4_nl *)blk)->qs)), flip);
                    } else if (format == P4K_Q5_0) {
                        const p4k_block_q5_0 *x = (const p4k_block_q5_0 *)blk;
                        v = _mm256_add_epi8(_mm256_or_si256(p4k_nibbles32(x->qs), p4k_fifth_bits(x->qh)), _mm256_set1_epi8(112));
                    } else if (format == P4K_Q5_1) {
                        const p4k_block_q5_1 *x = (const p4k_block_q5_1 *)blk;
                        v = _mm256_or_si256(p4k_nibbles32(x->qs), p4k_fifth_bits(x->qh));
                    } else {
                        v = p4k_nibbles32(((const p4k_block_q4_1 *)blk)->qs);
                    }
                    _mm256_store_si256((__m256i *)tmp[r][j], v);
                    d[j] = p4k_h2f(p4k_load_u16(blk));
                    if (format == P4K_Q4_1 || format == P4K_Q5_1) dm[j] = -p4k_h2f(p4k_load_u16(blk + 2));
                }
            }
            for (int j = 0; j < 8; j++) {
                const size_t at = slot(p, 8 * i + (size_t)j);
                p->d[at * 8 + r] = d[j];
                if (p->dm) p->dm[at * 8 + r] = dm[j];
            }
        }
        const size_t stride = sizeof(tmp[0]);
        for (size_t j = 0; j < 8; j++) {
            uint8_t *dst = p->w + slot(p, 8 * i + j) * p->block_bytes;
            for (int half = 0; half < 2; half++) {
                const uint8_t *q = tmp[0][j] + 16 * half;
                __m256i g[4] = {p4k_load_pair(q, q + 4 * stride), p4k_load_pair(q + stride, q + 5 * stride),
                                p4k_load_pair(q + 2 * stride, q + 6 * stride), p4k_load_pair(q + 3 * stride, q + 7 * stride)};
                P4K_TRANSPOSE4(g[0], g[1], g[2], g[3]);
                for (int k = 0; k < 4; k++) {
                    uint8_t *to = dst + 32 * (4 * half + k);
                    if (split) {
                        _mm256_storeu_si256((__m256i *)to, _mm256_and_si256(_mm256_srli_epi16(g[k], 4), nib));
                        _mm256_storeu_si256((__m256i *)(to + 256), _mm256_and_si256(g[k], nib));
                    } else {
                        _mm256_storeu_si256((__m256i *)to, g[k]);
                    }
                }
            }
        }
    }
    if (nb % 8) repack_decoded(format, tf, split, w, rb, nb / 8 * 8, nb, 8, p);
}

// ---- Driver ----------------------------------------------------------------------------------

// The panel kernel (declared and described in panels.h).
__attribute__((target("avx2,f16c"))) int p4k_panels_gemm(const p4k_job *job, int split, p4k_tile_fn tile_fn,
                                                         p4k_tile16_fn tile16_fn, int tile16_tokens) {
    const int format = job->format, tf = p4k_panel_tile_format(format), decoded = tf != format;
    const uint8_t *w = job->w;
    const size_t cols = job->cols, rows = job->rows, t = job->t, ldo = job->ldo;
    const int8_t *aq = job->aq;
    const float *ad = job->ad;
    const int32_t *asum = job->asum;
    float *out = job->out;
    const int accumulate = job->accumulate;
    const int q4k = tf == P4K_Q4_K || tf == P4K_Q5_K, q6k = tf == P4K_Q6_K || tf == P4K_TILE_IQ;  // q4k: Q4_K and Q5_K
    const int lattice = tf == P4K_TILE_IQ;  // repacked by repack_lattice
    const int mins = q4k || format == P4K_Q2_K;                                // a float min per row and block
    const int wide = tile16_fn != NULL;
    const size_t nb = cols / 32, rb = p4k_row_bytes(format, cols);
    panel_t p = {.block_bytes = split ? 512 : 256, .per_lane = (nb + 7) / 8};
    p.w = aligned_alloc(64, 8 * p.per_lane * p.block_bytes);
    p.d = aligned_alloc(64, 8 * p.per_lane * 8 * sizeof(float));
    p.dm = mins ? aligned_alloc(64, 8 * p.per_lane * 8 * sizeof(float)) : NULL;
    p.sc = q6k ? aligned_alloc(64, 8 * p.per_lane * 48 * sizeof(int16_t)) : NULL;
    // Q6_K: per token and block the sums of its two halves of 16 activations, as an int16 pair
    // (|Σ| ≤ 16·127), passed to the tiles in place of asum.
    int32_t *pairs = q6k ? malloc(t * nb * sizeof(int32_t)) : NULL;
    if (pairs)
        for (size_t i = 0; i < t * nb; i++) {
            int s0 = 0, s1 = 0;
            for (int e = 0; e < 16; e++) {
                s0 += aq[32 * i + (size_t)e];
                s1 += aq[32 * i + 16 + (size_t)e];
            }
            pairs[i] = (int32_t)(((uint32_t)(uint16_t)(int16_t)s1 << 16) | (uint16_t)(int16_t)s0);
        }
    // A second panel, so that wide tiles cover 16 rows.
    panel_t q = p;
    q.w = wide ? aligned_alloc(64, 8 * p.per_lane * p.block_bytes) : NULL;
    q.d = wide ? aligned_alloc(64, 8 * p.per_lane * 8 * sizeof(float)) : NULL;
    q.dm = wide && mins ? aligned_alloc(64, 8 * p.per_lane * 8 * sizeof(float)) : NULL;
    q.sc = wide && q6k ? aligned_alloc(64, 8 * p.per_lane * 48 * sizeof(int16_t)) : NULL;
    // The offset per token and block: 8·Σa (Q4_0), 128·Σa (Q8_0); Q4_K's and Q5_K's tiles take Σa itself,
    // Q6_K's the 16-value sums (`pairs`).
    int32_t *off8 = wide && !q6k ? malloc(t * nb * sizeof(int32_t)) : NULL;
    const int32_t offset = tf == P4K_Q8_0 ? 128 : tf == P4K_Q4_K || tf == P4K_Q5_K ? 1 : 8;
    if (off8)
        for (size_t i = 0; i < t * nb; i++) off8[i] = offset * asum[i];
    // The activations with their blocks in panel order, so that each lane's pass reads them
    // sequentially.
    const size_t ldp = 8 * p.per_lane * 32;
    int8_t *ap = aligned_alloc(64, t * ldp);
    if (ap)
        for (size_t i = 0; i < t; i++)
            for (size_t b = 0; b < nb; b++) {
                int8_t *to = ap + i * ldp + slot(&p, b) * 32;
                const int8_t *from = aq + i * cols + b * 32;
                if (format == P4K_Q3_K || format == P4K_Q2_K)  // in the order of their decoded values
                    for (int e = 0; e < 32; e++) to[q3k_pos(e)] = from[e];
                else
                    memcpy(to, from, 32);
            }
    if (!p.w || !p.d || (mins && !p.dm) || (q6k && (!p.sc || !pairs)) || !ap ||
        (wide && (!q.w || !q.d || (!q6k && !off8) || (mins && !q.dm) || (q6k && !q.sc)))) {
        free(pairs);
        free(p.sc);
        free(off8);
        free(ap);
        free(p.w);
        free(p.d);
        free(p.dm);
        free(q.w);
        free(q.d);
        free(q.dm);
        free(q.sc);
        return -1;
    }
    float tile[16 * TILE16_MAX > 8 * TILE ? 16 * TILE16_MAX : 8 * TILE];  // one tile's outputs: tokens × rows
    for (size_t i0 = 0; i0 < t; i0 += TOKEN_CHUNK) {
        const size_t tc = t - i0 < TOKEN_CHUNK ? t - i0 : TOKEN_CHUNK;
        for (size_t r0 = 0; r0 < rows;) {
            const uint8_t *wr = (const uint8_t *)w + r0 * rb;
            if (wide && rows - r0 >= 16) {
                if (lattice) {
                    repack_lattice(format, wr, rb, nb, 8, &p);
                    repack_lattice(format, wr + 8 * rb, rb, nb, 8, &q);
                } else if (decoded) {
                    repack_decoded_avx2(format, tf, split, wr, rb, nb, &p);
                    repack_decoded_avx2(format, tf, split, wr + 8 * rb, rb, nb, &q);
                } else if (format == P4K_Q4_K) {
                    repack_q4k_avx2(wr, rb, nb, &p);
                    repack_q4k_avx2(wr + 8 * rb, rb, nb, &q);
                } else if (q6k || format == P4K_Q5_K) {
                    repack_k56_avx2(format, wr, rb, nb, &p);
                    repack_k56_avx2(format, wr + 8 * rb, rb, nb, &q);
                } else {
                    repack_avx2(format, split, wr, rb, nb, &p);
                    repack_avx2(format, split, wr + 8 * rb, rb, nb, &q);
                }
                const size_t step = (size_t)tile16_tokens;
                for (size_t i = i0; i < i0 + tc; i += step) {
                    const int nt = (int)(i0 + tc - i < step ? i0 + tc - i : step);
                    tile16_fn(&p, &q, nb, ap + i * ldp, ldp, ad + i * nb, (q6k ? pairs : off8) + i * nb, nt, tile);
                    for (int j = 0; j < nt; j++) put16(out + (i + (size_t)j) * ldo + r0, tile + 16 * j, accumulate);
                }
                r0 += 16;
                continue;
            }
            const size_t n = rows - r0 < 8 ? rows - r0 : 8;
            if (lattice) repack_lattice(format, wr, rb, nb, n, &p);
            else if (decoded && n == 8) repack_decoded_avx2(format, tf, split, wr, rb, nb, &p);
            else if (decoded) repack_decoded(format, tf, split, wr, rb, 0, nb, n, &p);
            else if ((q6k || format == P4K_Q5_K) && n == 8) repack_k56_avx2(format, wr, rb, nb, &p);
            else if (q6k) repack_q6k(wr, rb, nb, n, &p);
            else if (format == P4K_Q4_K && n == 8) repack_q4k_avx2(wr, rb, nb, &p);
            else if (q4k) repack_q45k(format, wr, rb, nb, n, &p);
            else if (n == 8) repack_avx2(format, split, wr, rb, nb, &p);
            else repack_scalar(format, split, wr, rb, nb, n, &p);
            for (size_t i = i0; i < i0 + tc; i += TILE) {
                const int nt = (int)(i0 + tc - i < TILE ? i0 + tc - i : TILE);
                const int8_t *a = ap + i * ldp;
                tile_fn(tf, &p, nb, a, ldp, ad + i * nb, (q6k ? pairs : asum) + i * nb, nt, tile);
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
    free(p.sc);
    free(pairs);
    free(q.w);
    free(q.d);
    free(q.dm);
    free(q.sc);
    free(off8);
    free(ap);
    return 0;
}
#endif
