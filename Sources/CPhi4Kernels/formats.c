// Weight formats: fp16 conversion, GGUF block quantizers (llama.cpp's reference rounding) and
// dequantizers, block and row sizes. The weighted and K-quant quantizers are in quantize.c; the matrix
// kernels in kernels_*.c, chosen by dispatch.c.
//
// Q8_0 = fp16 d + 32 int8 (x = d·q); Q4_0 = fp16 d + 16 bytes of nibbles (low nibbles: elements
// 0…15, high: 16…31; x = d·(q − 8)); the other layouts are in blocks.h.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#define _GNU_SOURCE
#include "CPhi4Kernels.h"
#include "blocks.h"
#include <math.h>
#include <pthread.h>
#include <string.h>

// ---- fp16 ------------------------------------------------------------------------------------

float p4k_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t p4k_f32_to_fp16(float f) {
    // Round to nearest even, as F16C's _cvtss_sh(x, 0) and numpy's astype(float16).
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7FFFFFFF;
    if (absx >= 0x7F800000) return (uint16_t)(sign | 0x7C00 | (absx > 0x7F800000 ? 0x200 : 0));  // inf / nan
    if (absx >= 0x477FF000) return (uint16_t)(sign | 0x7C00);                                  // overflow
    if (absx < 0x38800000) {
        // Subnormal half (or zero): value / 2^-24, rounded to nearest even.
        float af;
        memcpy(&af, &absx, 4);
        float scaled = af * 16777216.0f;  // exact
        float r = nearbyintf(scaled);
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t mant = absx & 0x7FFFFF;
    uint32_t exp = (absx >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float p4k_fp16_lut[65536];
static pthread_once_t fp16_table_once = PTHREAD_ONCE_INIT;

static void fill_tables(void) {
    for (uint32_t i = 0; i < 65536; i++) p4k_fp16_lut[i] = p4k_fp16_to_f32((uint16_t)i);
}

// Filled once, by whichever thread comes first (the others wait for it).
void p4k_init_tables(void) { pthread_once(&fp16_table_once, fill_tables); }

// ---- Quantize / dequantize weights -----------------------------------------------------------

void p4k_quantize_q8_0(const float *x, void *out, size_t n) {
    p4k_block_q8_0 *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y->d = p4k_f32_to_fp16(d);
        for (int j = 0; j < 32; j++) y->qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void p4k_quantize_q4_0(const float *x, void *out, size_t n) {
    p4k_block_q4_0 *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y++) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y->d = p4k_f32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[16 + j] * id;
            int xi0 = (int8_t)(x0 + 8.5f), xi1 = (int8_t)(x1 + 8.5f);
            if (xi0 > 15) xi0 = 15;
            if (xi1 > 15) xi1 = 15;
            y->qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

// Q5_0 / Q5_1 (the K-quant mixes' fallbacks for rows that are not whole super-blocks), with
// llama.cpp's reference rounding: 5-bit values, low nibbles in qs, fifth bits in a 32-bit qh.
void p4k_quantize_q5_0(const float *x, void *out, size_t n) {
    p4k_block_q5_0 *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y++) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16.0f, id = d ? 1.0f / d : 0.0f;
        y->d = p4k_f32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = (int8_t)(x[j] * id + 16.5f), c = (int8_t)(x[16 + j] * id + 16.5f);
            if (a > 31) a = 31;
            if (c > 31) c = 31;
            y->qs[j] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
            qh |= (uint32_t)((a & 0x10) >> 4) << j;
            qh |= (uint32_t)((c & 0x10) >> 4) << (j + 16);
        }
        memcpy(y->qh, &qh, 4);
    }
}

void p4k_quantize_q5_1(const float *x, void *out, size_t n) {
    p4k_block_q5_1 *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y++) {
        float lo = x[0], hi = x[0];
        for (int j = 1; j < 32; j++) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        const float d = (hi - lo) / 31.0f, id = d ? 1.0f / d : 0.0f;
        y->d = p4k_f32_to_fp16(d);
        y->m = p4k_f32_to_fp16(lo);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const uint8_t a = (uint8_t)((x[j] - lo) * id + 0.5f), c = (uint8_t)((x[16 + j] - lo) * id + 0.5f);
            y->qs[j] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
            qh |= (uint32_t)((a & 0x10) >> 4) << j;
            qh |= (uint32_t)((c & 0x10) >> 4) << (j + 16);
        }
        memcpy(y->qh, &qh, 4);
    }
}

void p4k_dequantize_q8_0(const void *in, float *x, size_t n) {
    p4k_init_tables();
    const p4k_block_q8_0 *y = in;
    for (size_t b = 0; b < n / 32; b++, x += 32, y++) {
        const float d = p4k_h2f(y->d);
        for (int j = 0; j < 32; j++) x[j] = d * (float)y->qs[j];
    }
}

void p4k_dequantize_q4_0(const void *in, float *x, size_t n) {
    p4k_init_tables();
    const p4k_block_q4_0 *y = in;
    for (size_t b = 0; b < n / 32; b++, x += 32, y++) {
        const float d = p4k_h2f(y->d);
        for (int j = 0; j < 16; j++) {
            x[j] = d * (float)((int)(y->qs[j] & 0xF) - 8);
            x[16 + j] = d * (float)((int)(y->qs[j] >> 4) - 8);
        }
    }
}

void p4k_dequantize_q6_k(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const uint8_t *blk = in;
    for (size_t i = 0; i < n / 256; i++, blk += sizeof(p4k_block_q6_k)) {
        const p4k_block_q6_k *b = (const p4k_block_q6_k *)blk;
        const uint8_t *ql = b->ql, *qh = b->qh;
        const int8_t *sc = b->scales;
        const float d = p4k_h2f(b->d);
        for (int half = 0; half < 2; half++) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                const int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

// Each value is formed as in the reference: (d * q) then + m (or - dmin * m), as separate
// roundings (two statements, so no fused multiply-add), which makes the results bit-identical.
void p4k_dequantize_q4_1(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const p4k_block_q4_1 *b = in;
    for (size_t i = 0; i < n / 32; i++, b++, y += 32) {
        const float d = p4k_h2f(b->d), m = p4k_h2f(b->m);
        for (int j = 0; j < 16; j++) {
            float lo = d * (float)(b->qs[j] & 0xF), hi = d * (float)(b->qs[j] >> 4);
            y[j] = lo + m;
            y[j + 16] = hi + m;
        }
    }
}

void p4k_dequantize_q5_0(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const p4k_block_q5_0 *b = in;
    for (size_t i = 0; i < n / 32; i++, b++, y += 32) {
        const float d = p4k_h2f(b->d);
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        for (int j = 0; j < 16; j++) {
            int lo = (b->qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int hi = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
    }
}

void p4k_dequantize_q5_1(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const p4k_block_q5_1 *b = in;
    for (size_t i = 0; i < n / 32; i++, b++, y += 32) {
        const float d = p4k_h2f(b->d), m = p4k_h2f(b->m);
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        for (int j = 0; j < 16; j++) {
            int lo = (b->qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int hi = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            float a = d * (float)lo, c = d * (float)hi;
            y[j] = a + m;
            y[j + 16] = c + m;
        }
    }
}

void p4k_dequantize_q4_k(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const uint8_t *b = in;
    for (size_t i = 0; i < n / 256; i++, b += sizeof(p4k_block_q4_k)) {
        const p4k_block_q4_k *blk = (const p4k_block_q4_k *)b;
        const float d = p4k_h2f(blk->d), dmin = p4k_h2f(blk->dmin);
        const uint8_t *scales = blk->scales, *qs = blk->qs;
        uint8_t sc8[8], m8[8];
        p4k_kscales_bytes(scales, sc8, m8);
        for (int j = 0; j < 8; j++, y += 32) {
            const float ds = d * (float)sc8[j], dm = dmin * (float)m8[j];
            const uint8_t *q = qs + 32 * (j / 2);
            const int shift = (j & 1) * 4;
            for (int l = 0; l < 32; l++) {
                float v = ds * (float)((q[l] >> shift) & 0xF);
                y[l] = v - dm;
            }
        }
    }
}

void p4k_dequantize_q5_k(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const uint8_t *b = in;
    for (size_t i = 0; i < n / 256; i++, b += sizeof(p4k_block_q5_k)) {
        const p4k_block_q5_k *blk = (const p4k_block_q5_k *)b;
        const float d = p4k_h2f(blk->d), dmin = p4k_h2f(blk->dmin);
        const uint8_t *scales = blk->scales, *qh = blk->qh, *qs = blk->qs;
        uint8_t sc8[8], m8[8];
        p4k_kscales_bytes(scales, sc8, m8);
        for (int j = 0; j < 8; j++, y += 32) {
            const float ds = d * (float)sc8[j], dm = dmin * (float)m8[j];
            const uint8_t *q = qs + 32 * (j / 2);
            const int shift = (j & 1) * 4;
            for (int l = 0; l < 32; l++) {
                int v5 = ((q[l] >> shift) & 0xF) | (((qh[l] >> j) & 1) << 4);
                float v = ds * (float)v5;
                y[l] = v - dm;
            }
        }
    }
}

// Q2_K / Q3_K / IQ4_NL / IQ4_XS: the products formed as in the reference, d·sc first (one float
// rounding), then times q (and minus dmin·m for Q2_K), each its own rounding.
void p4k_dequantize_q2_k(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const p4k_block_q2_k *b = in;
    for (size_t i = 0; i < n / 256; i++, b++, y += 256) {
        const float d = p4k_h2f(b->d), dmin = p4k_h2f(b->dmin);
        for (int v = 0; v < 256; v++) {
            const int g = v / 16, q = (b->qs[32 * (v / 128) + v % 32] >> (2 * ((v / 32) % 4))) & 3;
            const float dl = d * (float)(b->scales[g] & 0xF), ml = dmin * (float)(b->scales[g] >> 4);
            const float t = dl * (float)q;
            y[v] = t - ml;
        }
    }
}

void p4k_dequantize_q3_k(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const p4k_block_q3_k *b = in;
    for (size_t i = 0; i < n / 256; i++, b++, y += 256) {
        const float d = p4k_h2f(b->d);
        int8_t sc[16];
        p4k_q3k_scales(b->scales, sc);
        for (int v = 0; v < 256; v++) {
            const int low = (b->qs[32 * (v / 128) + v % 32] >> (2 * ((v / 32) % 4))) & 3;
            const int q = low - ((b->hmask[v % 32] >> (v / 32)) & 1 ? 0 : 4);
            const float dl = d * (float)sc[v / 16];
            y[v] = dl * (float)q;
        }
    }
}

void p4k_dequantize_iq4_nl(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const p4k_block_iq4_nl *b = in;
    for (size_t i = 0; i < n / 32; i++, b++, y += 32) {
        const float d = p4k_h2f(b->d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)p4k_iq4nl_values[b->qs[j] & 0xF];
            y[j + 16] = d * (float)p4k_iq4nl_values[b->qs[j] >> 4];
        }
    }
}

void p4k_dequantize_iq4_xs(const void *in, float *y, size_t n) {
    p4k_init_tables();
    const p4k_block_iq4_xs *b = in;
    for (size_t i = 0; i < n / 256; i++, b++) {
        const float d = p4k_h2f(b->d);
        int8_t sc[8];
        p4k_iq4xs_scales(b, sc);
        for (int j = 0; j < 8; j++, y += 32) {
            const float dl = d * (float)sc[j];
            const uint8_t *q = b->qs + 16 * j;
            for (int e = 0; e < 16; e++) {
                y[e] = dl * (float)p4k_iq4nl_values[q[e] & 0xF];
                y[e + 16] = dl * (float)p4k_iq4nl_values[q[e] >> 4];
            }
        }
    }
}

// The lattice IQ types: x = (D·m)·v per value (p4k_iq_decode32), one rounding as in the reference.
void p4k_dequantize_iq(int format, const void *in, float *y, size_t n) {
    p4k_init_tables();
    const size_t bb = p4k_format((uint32_t)format)->block_bytes;
    const uint8_t *b = in;
    for (size_t i = 0; i < n / 256; i++, b += bb)
        for (int j = 0; j < 8; j++, y += 32) {
            int16_t v[32];
            int32_t m[2];
            const float d = p4k_iq_decode32(format, b, j, v, m);
            const float dm[2] = {d * (float)m[0], d * (float)m[1]};
            for (int e = 0; e < 32; e++) y[e] = dm[e / 16] * (float)v[e];
        }
}

#define IQ_DEQUANT(NAME, FMT) \
    static void NAME(const void *in, float *y, size_t n) { p4k_dequantize_iq(FMT, in, y, n); }
IQ_DEQUANT(dequantize_iq2_xxs, P4K_IQ2_XXS)
IQ_DEQUANT(dequantize_iq2_xs, P4K_IQ2_XS)
IQ_DEQUANT(dequantize_iq2_s, P4K_IQ2_S)
IQ_DEQUANT(dequantize_iq3_xxs, P4K_IQ3_XXS)
IQ_DEQUANT(dequantize_iq3_s, P4K_IQ3_S)
IQ_DEQUANT(dequantize_iq1_s, P4K_IQ1_S)
IQ_DEQUANT(dequantize_iq1_m, P4K_IQ1_M)

// ---- The format table ------------------------------------------------------------------------

static void quantize_q2_k(const float *x, void *out, size_t n) { p4k_quantize_kquant(P4K_Q2_K, x, out, n); }
static void quantize_q3_k(const float *x, void *out, size_t n) { p4k_quantize_kquant(P4K_Q3_K, x, out, n); }
static void quantize_q4_k(const float *x, void *out, size_t n) { p4k_quantize_kquant(P4K_Q4_K, x, out, n); }
static void quantize_q5_k(const float *x, void *out, size_t n) { p4k_quantize_kquant(P4K_Q5_K, x, out, n); }
static void quantize_q6_k(const float *x, void *out, size_t n) { p4k_quantize_kquant(P4K_Q6_K, x, out, n); }
static void quantize_iq4_nl(const float *x, void *out, size_t n) { p4k_quantize_rows(P4K_IQ4_NL, x, out, 1, n, NULL); }
static void quantize_iq4_xs(const float *x, void *out, size_t n) { p4k_quantize_rows(P4K_IQ4_XS, x, out, 1, n, NULL); }
static void quantize_iq3_xxs(const float *x, void *out, size_t n) { p4k_quantize_iq_row(P4K_IQ3_XXS, x, out, n, NULL); }
static void quantize_iq3_s(const float *x, void *out, size_t n) { p4k_quantize_iq_row(P4K_IQ3_S, x, out, n, NULL); }
static void quantize_iq2_xxs(const float *x, void *out, size_t n) { p4k_quantize_iq_row(P4K_IQ2_XXS, x, out, n, NULL); }
static void quantize_iq2_xs(const float *x, void *out, size_t n) { p4k_quantize_iq_row(P4K_IQ2_XS, x, out, n, NULL); }
static void quantize_iq2_s(const float *x, void *out, size_t n) { p4k_quantize_iq_row(P4K_IQ2_S, x, out, n, NULL); }
static void quantize_iq1_s(const float *x, void *out, size_t n) { p4k_quantize_iq_row(P4K_IQ1_S, x, out, n, NULL); }
static void quantize_iq1_m(const float *x, void *out, size_t n) { p4k_quantize_iq_row(P4K_IQ1_M, x, out, n, NULL); }

// Every weight format libphi4 reads, in GGML type order: the one place its facts are written.
static const p4k_format_info formats[] = {
    {0, "F32", 1, 4, 0, NULL, NULL},
    {1, "F16", 1, 2, 0, NULL, NULL},
    {P4K_Q4_0, "Q4_0", 32, sizeof(p4k_block_q4_0), 1, p4k_quantize_q4_0, p4k_dequantize_q4_0},
    {P4K_Q4_1, "Q4_1", 32, sizeof(p4k_block_q4_1), 1, p4k_quantize_q4_1, p4k_dequantize_q4_1},
    {P4K_Q5_0, "Q5_0", 32, sizeof(p4k_block_q5_0), 1, p4k_quantize_q5_0, p4k_dequantize_q5_0},
    {P4K_Q5_1, "Q5_1", 32, sizeof(p4k_block_q5_1), 1, p4k_quantize_q5_1, p4k_dequantize_q5_1},
    {P4K_Q8_0, "Q8_0", 32, sizeof(p4k_block_q8_0), 1, p4k_quantize_q8_0, p4k_dequantize_q8_0},
    {P4K_Q2_K, "Q2_K", 256, sizeof(p4k_block_q2_k), 1, quantize_q2_k, p4k_dequantize_q2_k},
    {P4K_Q3_K, "Q3_K", 256, sizeof(p4k_block_q3_k), 1, quantize_q3_k, p4k_dequantize_q3_k},
    {P4K_Q4_K, "Q4_K", 256, sizeof(p4k_block_q4_k), 1, quantize_q4_k, p4k_dequantize_q4_k},
    {P4K_Q5_K, "Q5_K", 256, sizeof(p4k_block_q5_k), 1, quantize_q5_k, p4k_dequantize_q5_k},
    {P4K_Q6_K, "Q6_K", 256, sizeof(p4k_block_q6_k), 1, quantize_q6_k, p4k_dequantize_q6_k},
    {P4K_IQ2_XXS, "IQ2_XXS", 256, sizeof(p4k_block_iq2_xxs), 1, quantize_iq2_xxs, dequantize_iq2_xxs},
    {P4K_IQ2_XS, "IQ2_XS", 256, sizeof(p4k_block_iq2_xs), 1, quantize_iq2_xs, dequantize_iq2_xs},
    {P4K_IQ3_XXS, "IQ3_XXS", 256, sizeof(p4k_block_iq3_xxs), 1, quantize_iq3_xxs, dequantize_iq3_xxs},
    {P4K_IQ1_S, "IQ1_S", 256, sizeof(p4k_block_iq1_s), 1, quantize_iq1_s, dequantize_iq1_s},
    {P4K_IQ4_NL, "IQ4_NL", 32, sizeof(p4k_block_iq4_nl), 1, quantize_iq4_nl, p4k_dequantize_iq4_nl},
    {P4K_IQ3_S, "IQ3_S", 256, sizeof(p4k_block_iq3_s), 1, quantize_iq3_s, dequantize_iq3_s},
    {P4K_IQ2_S, "IQ2_S", 256, sizeof(p4k_block_iq2_s), 1, quantize_iq2_s, dequantize_iq2_s},
    {P4K_IQ4_XS, "IQ4_XS", 256, sizeof(p4k_block_iq4_xs), 1, quantize_iq4_xs, p4k_dequantize_iq4_xs},
    {P4K_IQ1_M, "IQ1_M", 256, sizeof(p4k_block_iq1_m), 1, quantize_iq1_m, dequantize_iq1_m},
    {30, "BF16", 1, 2, 0, NULL, NULL},
};

const p4k_format_info *p4k_format(uint32_t ggml_type) {
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].ggml_type == ggml_type) return &formats[i];
    return NULL;
}

const p4k_format_info *p4k_format_at(size_t i) { return i < sizeof formats / sizeof formats[0] ? &formats[i] : NULL; }

// ---- Sizes -----------------------------------------------------------------------------------

size_t p4k_kquant_block_bytes(int format) {
    const p4k_format_info *f = format >= 0 ? p4k_format((uint32_t)format) : NULL;
    return f && f->block_values == 256 ? f->block_bytes : 0;
}

size_t p4k_row_bytes(int format, size_t cols) {
    const p4k_format_info *f = format >= 0 ? p4k_format((uint32_t)format) : NULL;
    return f && f->in_place ? cols / f->block_values * f->block_bytes : 0;
}

int p4k_format_supported(int format) { return p4k_row_bytes(format, 256) != 0; }

int p4k_dequantize_rows(int format, const void *w, size_t cols, size_t rows, float *out) {
    if (!p4k_format_supported(format)) return P4K_EFORMAT;
    const p4k_format_info *f = p4k_format((uint32_t)format);
    const size_t rb = p4k_row_bytes(format, cols);
    for (size_t r = 0; r < rows; r++) f->dequantize((const uint8_t *)w + r * rb, out + r * cols, cols);
    return 0;
}
