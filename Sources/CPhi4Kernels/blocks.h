// GGUF block layouts as C structs (private to CPhi4Kernels), and the fp16 table the kernels use.
//
// Every weight format stores rows of `cols` values as consecutive blocks: 32 values per block for
// Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 / IQ4_NL, 256 per super-block for the K-quants and the IQ2 / IQ3
// / IQ1 / IQ4_XS types. The structs spell out
// the byte layout that llama.cpp's GGUF files use; the static_asserts pin their sizes, so the
// kernels index fields by name instead of by byte offset. fp16 fields are stored as raw IEEE half
// bits (uint16_t); blocks are packed with no padding and may sit at any address (2-byte fields
// are read with memcpy or unaligned loads, never through an aligned pointer).
#ifndef P4K_BLOCKS_H
#define P4K_BLOCKS_H
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "CPhi4Kernels.h"
#include "iq_grids.h"

#pragma pack(push, 1)
/// Q8_0: x = d·q.
typedef struct { uint16_t d; int8_t qs[32]; } p4k_block_q8_0;
/// Q4_0: x = d·(q − 8); qs[j] holds element j (low nibble) and element 16 + j (high nibble).
typedef struct { uint16_t d; uint8_t qs[16]; } p4k_block_q4_0;
/// Q4_1: x = d·q + m, nibbles as Q4_0.
typedef struct { uint16_t d, m; uint8_t qs[16]; } p4k_block_q4_1;
/// Q5_0: x = d·(q − 16); low nibbles as Q4_0, bit j of qh = fifth bit of element j.
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } p4k_block_q5_0;
/// Q5_1: x = d·q + m, bits as Q5_0.
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } p4k_block_q5_1;
/// Q2_K: 16 groups of 16 with a 4-bit scale (low nibble) and 4-bit min (high nibble) each;
/// x = (d·sc)·q − (dmin·m), q = 2 bits: value 128h + 32s + l is bits 2s…2s+1 of qs[32h + l].
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } p4k_block_q2_k;
/// Q3_K: 16 groups of 16 with 6-bit scales (minus 32) packed in `scales`; x = d·sc·q, q = 2 low bits
/// as Q2_K minus 4 unless bit v / 32 of hmask[v % 32] is set (q in −4…3).
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } p4k_block_q3_k;
/// Q4_K: 8 sub-blocks of 32; x = (d·sc_j)·q − (dmin·m_j) with 6-bit sc_j, m_j packed in `scales`;
/// bytes 32p…32p+31 of qs: low nibbles = sub-block 2p, high nibbles = sub-block 2p + 1.
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } p4k_block_q4_k;
/// Q5_K: Q4_K plus a fifth bit per value: bit j of qh[l] = value l of sub-block j.
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } p4k_block_q5_k;
/// Q6_K: 16 groups of 16 with signed 8-bit scales; x = d·sc·(q − 32), q = 4 low bits in ql and
/// 2 high bits in qh (see the kernels for the interleaving).
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } p4k_block_q6_k;
/// IQ4_NL: x = d·kv[q] with the 16-entry non-linear table p4k_iq4nl_values; nibbles as Q4_0.
typedef struct { uint16_t d; uint8_t qs[16]; } p4k_block_iq4_nl;
/// IQ4_XS: 8 sub-blocks of 32, each with a 6-bit scale (minus 32: low 4 bits in scales_l, high 2
/// in scales_h); x = (d·sc)·kv[q]; sub-block j's nibbles are qs[16j…16j+15] as in IQ4_NL.
typedef struct { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } p4k_block_iq4_xs;
// The lattice IQ types (codebooks in iq_grids.h): super-blocks of 256 whose values are grid entries
// (8 or 4 values each) with sign bits and small scales.
/// IQ2_XXS: per 32 values, 8 bytes: four grid indices (p4k_iq2xxs_grid, 8 values each), then a
/// uint32 of four 7-bit sign indices (p4k_iq_ksigns) and a 4-bit scale s in its top bits;
/// x = (d·(0.5 + s)·0.25)·grid·sign.
typedef struct { uint16_t d; uint8_t qs[64]; } p4k_block_iq2_xxs;
/// IQ2_XS: 32 uint16 (9-bit grid index into p4k_iq2xs_grid, 7-bit sign index) and a 4-bit scale
/// per 16 values (low nibble first); x = (d·(0.5 + s)·0.25)·grid·sign.
typedef struct { uint16_t d; uint16_t qs[32]; uint8_t scales[8]; } p4k_block_iq2_xs;
/// IQ2_S: 32 grid indices' low bytes, 32 sign bytes (one per 8 values), their 2 high bits four to a
/// byte in qh, a 4-bit scale per 16 values; 10-bit index into p4k_iq2s_grid, x as IQ2_XS.
typedef struct { uint16_t d; uint8_t qs[32]; uint8_t signs[32]; uint8_t qh[8]; uint8_t scales[8]; } p4k_block_iq2_s;
/// IQ3_XXS: 64 indices into p4k_iq3xxs_grid (4 values each), then per 32 values a uint32 as
/// IQ2_XXS's (four 7-bit sign indices, 4-bit scale s on top); x = (d·(0.5 + s)·0.5)·grid·sign.
typedef struct { uint16_t d; uint8_t qs[64]; uint8_t sas[32]; } p4k_block_iq3_xxs;
/// IQ3_S: 64 index low bytes, their ninth bits in qh (bit i % 8 of qh[i / 8]), a sign bit per value,
/// a 4-bit scale s per 32 values; 9-bit index into p4k_iq3s_grid, x = (d·(1 + 2s))·grid·sign.
typedef struct { uint16_t d; uint8_t qs[64]; uint8_t qh[8]; uint8_t signs[32]; uint8_t scales[4]; } p4k_block_iq3_s;
/// IQ1_S: 32 index low bytes; per 32 values a uint16 qh with the four indices' 3 high bits (3 each),
/// a 3-bit scale s (bits 12–14) and the delta's sign (bit 15); 11-bit index into p4k_iq1s_grid
/// (values −1, 0, 1); x = (d·(2s + 1))·(grid ± 0.125).
typedef struct { uint16_t d; uint8_t qs[32]; uint16_t qh[8]; } p4k_block_iq1_s;
/// IQ1_M: 32 index low bytes; per index a nibble of qh (low nibble first): 3 high index bits and
/// the delta's sign (bit 3); 3-bit scales s per 16 values, twelve to the four uint16 of `scales`,
/// whose top nibbles hold d's fp16 bits; x = (d·(2s + 1))·(grid ± 0.125).
typedef struct { uint8_t qs[32]; uint8_t qh[16]; uint8_t scales[8]; } p4k_block_iq1_m;
#pragma pack(pop)

static_assert(sizeof(p4k_block_q8_0) == 34, "Q8_0 block");
static_assert(sizeof(p4k_block_q4_0) == 18, "Q4_0 block");
static_assert(sizeof(p4k_block_q4_1) == 20, "Q4_1 block");
static_assert(sizeof(p4k_block_q5_0) == 22, "Q5_0 block");
static_assert(sizeof(p4k_block_q5_1) == 24, "Q5_1 block");
static_assert(sizeof(p4k_block_q2_k) == 84, "Q2_K super-block");
static_assert(sizeof(p4k_block_q3_k) == 110, "Q3_K super-block");
static_assert(sizeof(p4k_block_q4_k) == 144, "Q4_K super-block");
static_assert(sizeof(p4k_block_q5_k) == 176, "Q5_K super-block");
static_assert(sizeof(p4k_block_q6_k) == 210, "Q6_K super-block");
static_assert(sizeof(p4k_block_iq4_nl) == 18, "IQ4_NL block");
static_assert(sizeof(p4k_block_iq4_xs) == 136, "IQ4_XS super-block");
static_assert(sizeof(p4k_block_iq2_xxs) == 66 && sizeof(p4k_block_iq2_xs) == 74 && sizeof(p4k_block_iq2_s) == 82,
              "IQ2 super-blocks");
static_assert(sizeof(p4k_block_iq3_xxs) == 98 && sizeof(p4k_block_iq3_s) == 110, "IQ3 super-blocks");
static_assert(sizeof(p4k_block_iq1_s) == 50 && sizeof(p4k_block_iq1_m) == 56, "IQ1 super-blocks");
static_assert(offsetof(p4k_block_q5_k, qs) == 48 && offsetof(p4k_block_q6_k, d) == 208, "K-quant fields");
static_assert(offsetof(p4k_block_q2_k, d) == 80 && offsetof(p4k_block_q3_k, d) == 108, "K-quant fields");

/// A 2-byte field (fp16 bits or a bit field) at any address.
static inline uint16_t p4k_load_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/// IQ4_NL's and IQ4_XS's 16 values (a fact of the format, as GGML defines it).
static const int8_t p4k_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/// The sixteen 6-bit scales of a Q3_K super-block, minus 32 (−32…31). Scale i has its low 4 bits
/// in s[i % 8] (low nibble for i < 8, high for i ≥ 8) and its high 2 bits at bits 2·(i / 4) of
/// s[8 + i % 4]; here four at a time in 32-bit words.
static inline void p4k_q3k_scales(const uint8_t s[12], int8_t out[16]) {
    uint32_t w[3], o[4];
    memcpy(w, s, 12);
    o[0] = (w[0] & 0x0F0F0F0Fu) | ((w[2] & 0x03030303u) << 4);
    o[1] = (w[1] & 0x0F0F0F0Fu) | (((w[2] >> 2) & 0x03030303u) << 4);
    o[2] = ((w[0] >> 4) & 0x0F0F0F0Fu) | (((w[2] >> 4) & 0x03030303u) << 4);
    o[3] = ((w[1] >> 4) & 0x0F0F0F0Fu) | (((w[2] >> 6) & 0x03030303u) << 4);
    uint8_t u[16];
    memcpy(u, o, 16);
    for (int i = 0; i < 16; i++) out[i] = (int8_t)(u[i] - 32);
}

/// The eight 6-bit scales of an IQ4_XS super-block, minus 32 (−32…31).
static inline void p4k_iq4xs_scales(const p4k_block_iq4_xs *b, int8_t out[8]) {
    const uint16_t h = p4k_load_u16(&b->scales_h);
    for (int j = 0; j < 8; j++) out[j] = (int8_t)((((b->scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((h >> (2 * j)) & 3) << 4)) - 32);
}

/// Widens IEEE half bits to float through a 65,536-entry table (p4k_fp16_table()).
extern float p4k_fp16_lut[65536];
/// Fills p4k_fp16_lut once (thread-safe); every entry point that reads it calls this first.
void p4k_init_tables(void);
static inline float p4k_h2f(uint16_t h) { return p4k_fp16_lut[h]; }

/// 32 values (sub-block j) of a lattice IQ super-block `blk` as integers: x_e = (D·m_h)·v_e for
/// e in half h = e / 16, with D = d·c returned (c: 1/8 for IQ2_* and IQ1_*, 1/4 for IQ3_XXS, 1 for
/// IQ3_S) and m_h the half's odd multiplier 2s + 1 (s the stored scale). v is the signed grid value
/// (IQ1: 8·grid ± 1, the ±1/8 delta folded in). Each product D·m_h is exact in f32 (an fp16 d times
/// at most 5 bits), so x_e = (D·m_h)·v_e rounds once, as the reference's d·(0.5 + s)·0.25·grid·sign.
/// Every index read stays inside its table: grid indices are masked to the table's size.
static inline float p4k_iq_decode32(int format, const uint8_t *blk, int j, int16_t v[32], int32_t m[2]) {
    float d;
    switch (format) {
    case P4K_IQ2_XXS:
    case P4K_IQ3_XXS: {
        const int iq3 = format == P4K_IQ3_XXS;
        uint32_t aux;
        uint8_t idx[8];
        if (iq3) {
            const p4k_block_iq3_xxs *x = (const p4k_block_iq3_xxs *)blk;
            memcpy(&aux, x->sas + 4 * j, 4);
            memcpy(idx, x->qs + 8 * j, 8);
            d = p4k_h2f(p4k_load_u16(&x->d)) * 0.25f;
        } else {
            const p4k_block_iq2_xxs *x = (const p4k_block_iq2_xxs *)blk;
            memcpy(idx, x->qs + 8 * j, 4);
            memcpy(&aux, x->qs + 8 * j + 4, 4);
            d = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        }
        m[0] = m[1] = 2 * (int32_t)(aux >> 28) + 1;
        for (int l = 0; l < 4; l++) {
            const uint8_t sg = p4k_iq_ksigns[(aux >> (7 * l)) & 127];
            for (int k = 0; k < 8; k++) {
                const int g = iq3 ? (int)((p4k_iq3xxs_grid[idx[2 * l + k / 4]] >> (8 * (k % 4))) & 0xFF)
                                  : (int)((p4k_iq2xxs_grid[idx[l]] >> (8 * k)) & 0xFF);
                v[8 * l + k] = (int16_t)((sg >> k) & 1 ? -g : g);
            }
        }
        return d;
    }
    case P4K_IQ2_XS:
    case P4K_IQ2_S: {
        const int xs = format == P4K_IQ2_XS;
        const uint8_t *sc;
        if (xs) {
            const p4k_block_iq2_xs *x = (const p4k_block_iq2_xs *)blk;
            d = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
            sc = x->scales;
        } else {
            const p4k_block_iq2_s *x = (const p4k_block_iq2_s *)blk;
            d = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
            sc = x->scales;
        }
        m[0] = 2 * (sc[j] & 0xF) + 1;
        m[1] = 2 * (sc[j] >> 4) + 1;
        for (int l = 0; l < 4; l++) {
            uint64_t g;
            uint8_t sg;
            if (xs) {
                const uint16_t q = p4k_load_u16(((const p4k_block_iq2_xs *)blk)->qs + 4 * j + l);
                g = p4k_iq2xs_grid[q & 511];
                sg = p4k_iq_ksigns[q >> 9];
            } else {
                const p4k_block_iq2_s *x = (const p4k_block_iq2_s *)blk;
                const int i = 4 * j + l;
                g = p4k_iq2s_grid[x->qs[i] | (((x->qh[i / 4] >> (2 * (i % 4))) & 3) << 8)];
                sg = x->signs[i];
            }
            for (int k = 0; k < 8; k++) {
                const int gv = (int)((g >> (8 * k)) & 0xFF);
                v[8 * l + k] = (int16_t)((sg >> k) & 1 ? -gv : gv);
            }
        }
        return d;
    }
    case P4K_IQ3_S: {
        const p4k_block_iq3_s *x = (const p4k_block_iq3_s *)blk;
        d = p4k_h2f(p4k_load_u16(&x->d));
        m[0] = m[1] = 2 * ((x->scales[j / 2] >> (4 * (j % 2))) & 0xF) + 1;
        for (int l = 0; l < 8; l++) {  // eight grid entries of 4 values
            const int i = 8 * j + l;
            const uint32_t g = p4k_iq3s_grid[x->qs[i] | (((x->qh[i / 8] >> (i % 8)) & 1) << 8)];
            for (int k = 0; k < 4; k++) {
                const int e = 4 * l + k, gv = (int)((g >> (8 * k)) & 0xFF);
                v[e] = (int16_t)((x->signs[4 * j + e / 8] >> (e % 8)) & 1 ? -gv : gv);
            }
        }
        return d;
    }
    case P4K_IQ1_S: {
        const p4k_block_iq1_s *x = (const p4k_block_iq1_s *)blk;
        const uint16_t qh = p4k_load_u16(x->qh + j);
        d = p4k_h2f(p4k_load_u16(&x->d)) * 0.125f;
        m[0] = m[1] = 2 * ((qh >> 12) & 7) + 1;
        const int delta = qh & 0x8000 ? -1 : 1;
        for (int l = 0; l < 4; l++) {
            const uint64_t g = p4k_iq1s_grid[x->qs[4 * j + l] | (((qh >> (3 * l)) & 7) << 8)];
            for (int k = 0; k < 8; k++) v[8 * l + k] = (int16_t)(8 * (int8_t)(g >> (8 * k)) + delta);
        }
        return d;
    }
    default: {  // IQ1_M
        const p4k_block_iq1_m *x = (const p4k_block_iq1_m *)blk;
        uint16_t s[4];
        memcpy(s, x->scales, 8);
        const uint16_t dh = (uint16_t)((s[0] >> 12) | ((s[1] >> 8) & 0xF0) | ((s[2] >> 4) & 0xF00) | (s[3] & 0xF000));
        d = p4k_h2f(dh) * 0.125f;
        m[0] = 2 * ((s[j / 2] >> (6 * (j % 2))) & 7) + 1;
        m[1] = 2 * ((s[j / 2] >> (6 * (j % 2) + 3)) & 7) + 1;
        for (int l = 0; l < 4; l++) {
            const int i = 4 * j + l, nib = (x->qh[i / 2] >> (4 * (i % 2))) & 0xF;
            const uint64_t g = p4k_iq1s_grid[x->qs[i] | ((nib & 7) << 8)];
            const int delta = nib & 8 ? -1 : 1;
            for (int k = 0; k < 8; k++) v[8 * l + k] = (int16_t)(8 * (int8_t)(g >> (8 * k)) + delta);
        }
        return d;
    }
    }
}

/// The fp16 scale of Q8_0 / Q4_0 block `b` of a row (both formats start with it).
static inline float p4k_block_scale(const uint8_t *row, size_t stride, size_t b) { return p4k_h2f(p4k_load_u16(row + b * stride)); }

/// The eight 6-bit scales and mins of a Q4_K / Q5_K super-block (12 packed bytes), as two
/// little-endian 64-bit words (byte j = sub-block j).
static inline void p4k_kscales(const uint8_t *s, uint64_t *sc, uint64_t *m) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    const uint32_t sa = u0 & 0x3f3f3f3fu, ma = u1 & 0x3f3f3f3fu;
    const uint32_t sb = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t mb = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    *sc = sa | (uint64_t)sb << 32;
    *m = ma | (uint64_t)mb << 32;
}

/// The same as byte arrays.
static inline void p4k_kscales_bytes(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
    uint64_t a, b;
    p4k_kscales(s, &a, &b);
    memcpy(sc, &a, 8);
    memcpy(m, &b, 8);
}

/// The float scale d·sc and min dmin·m of each of the 8 sub-blocks of a Q4_K / Q5_K super-block,
/// computed exactly as the K-quant kernels do.
static inline void p4k_q4k_subscales(const void *block, float ds[8], float dm[8]) {
    const p4k_block_q4_k *b = (const p4k_block_q4_k *)block;
    uint8_t sc[8], m[8];
    p4k_kscales_bytes(b->scales, sc, m);
    const float d = p4k_h2f(b->d), dmin = p4k_h2f(b->dmin);
    for (int j = 0; j < 8; j++) {
        ds[j] = d * (float)sc[j];
        dm[j] = dmin * (float)m[j];
    }
}
#endif
