// Block quantization (GGUF-compatible Q8_0, Q4_0; Q6_K dequantization) and integer dot products.
//
// Weights: Q8_0 = fp16 d + 32 int8 (34 bytes), x = d*q. Q4_0 = fp16 d + 16 bytes of nibbles
// (low nibbles: elements 0..15, high: 16..31), x = d*(q-8). Quantization follows llama.cpp's
// reference rounding. Activations are quantized once per row to 8-bit blocks of 32 with an f32
// scale and the integer sum of each block (p4k_q8_act).
//
// Dot products: every ISA path computes the same exact int32 sum per block; the float result is
// then accumulated block by block in one fixed order, so all paths give bit-identical results.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#define _GNU_SOURCE
#include "CPhi4Kernels.h"
#include "simd.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

static float fp16_table[65536];
static pthread_once_t fp16_table_once = PTHREAD_ONCE_INIT;

static inline float h2f(uint16_t h) { return fp16_table[h]; }

static void fill_tables(void) {
    for (uint32_t i = 0; i < 65536; i++) fp16_table[i] = p4k_fp16_to_f32((uint16_t)i);
}

// Filled once, by whichever thread comes first (the others wait for it).
static void init_tables(void) { pthread_once(&fp16_table_once, fill_tables); }

// ---- Quantize / dequantize weights -----------------------------------------------------------

void p4k_quantize_q8_0(const float *x, void *out, size_t n) {
    uint8_t *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        uint16_t hd = p4k_f32_to_fp16(d);
        memcpy(y, &hd, 2);
        for (int j = 0; j < 32; j++) ((int8_t *)y)[2 + j] = (int8_t)roundf(x[j] * id);
    }
}

void p4k_quantize_q4_0(const float *x, void *out, size_t n) {
    uint8_t *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y += 18) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d ? 1.0f / d : 0.0f;
        uint16_t hd = p4k_f32_to_fp16(d);
        memcpy(y, &hd, 2);
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[16 + j] * id;
            int xi0 = (int8_t)(x0 + 8.5f), xi1 = (int8_t)(x1 + 8.5f);
            if (xi0 > 15) xi0 = 15;
            if (xi1 > 15) xi1 = 15;
            y[2 + j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

// Q5_0 / Q5_1 (the K-quant mixes' fallbacks for rows that are not whole super-blocks), with
// llama.cpp's reference rounding: 5-bit values, low nibbles in qs, fifth bits in a 32-bit qh.
void p4k_quantize_q5_0(const float *x, void *out, size_t n) {
    uint8_t *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y += 22) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16.0f, id = d ? 1.0f / d : 0.0f;
        const uint16_t hd = p4k_f32_to_fp16(d);
        memcpy(y, &hd, 2);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = (int8_t)(x[j] * id + 16.5f), c = (int8_t)(x[16 + j] * id + 16.5f);
            if (a > 31) a = 31;
            if (c > 31) c = 31;
            y[6 + j] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
            qh |= (uint32_t)((a & 0x10) >> 4) << j;
            qh |= (uint32_t)((c & 0x10) >> 4) << (j + 16);
        }
        memcpy(y + 2, &qh, 4);
    }
}

void p4k_quantize_q5_1(const float *x, void *out, size_t n) {
    uint8_t *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y += 24) {
        float lo = x[0], hi = x[0];
        for (int j = 1; j < 32; j++) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        const float d = (hi - lo) / 31.0f, id = d ? 1.0f / d : 0.0f;
        const uint16_t hd = p4k_f32_to_fp16(d), hm = p4k_f32_to_fp16(lo);
        memcpy(y, &hd, 2);
        memcpy(y + 2, &hm, 2);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const uint8_t a = (uint8_t)((x[j] - lo) * id + 0.5f), c = (uint8_t)((x[16 + j] - lo) * id + 0.5f);
            y[8 + j] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
            qh |= (uint32_t)((a & 0x10) >> 4) << j;
            qh |= (uint32_t)((c & 0x10) >> 4) << (j + 16);
        }
        memcpy(y + 4, &qh, 4);
    }
}

void p4k_dequantize_q8_0(const void *in, float *x, size_t n) {
    init_tables();
    const uint8_t *y = in;
    for (size_t b = 0; b < n / 32; b++, x += 32, y += 34) {
        uint16_t hd;
        memcpy(&hd, y, 2);
        const float d = h2f(hd);
        for (int j = 0; j < 32; j++) x[j] = d * (float)((const int8_t *)y)[2 + j];
    }
}

void p4k_dequantize_q4_0(const void *in, float *x, size_t n) {
    init_tables();
    const uint8_t *y = in;
    for (size_t b = 0; b < n / 32; b++, x += 32, y += 18) {
        uint16_t hd;
        memcpy(&hd, y, 2);
        const float d = h2f(hd);
        for (int j = 0; j < 16; j++) {
            x[j] = d * (float)((int)(y[2 + j] & 0xF) - 8);
            x[16 + j] = d * (float)((int)(y[2 + j] >> 4) - 8);
        }
    }
}

void p4k_dequantize_q6_k(const void *in, float *y, size_t n) {
    init_tables();
    const uint8_t *blk = in;
    for (size_t i = 0; i < n / 256; i++, blk += 210) {
        const uint8_t *ql = blk, *qh = blk + 128;
        const int8_t *sc = (const int8_t *)(blk + 192);
        uint16_t hd;
        memcpy(&hd, blk + 208, 2);
        const float d = h2f(hd);
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

static uint16_t load_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

// Each value is formed as in the reference: (d * q) then + m (or - dmin * m), as separate
// roundings (two statements, so no fused multiply-add), which makes the results bit-identical.
void p4k_dequantize_q4_1(const void *in, float *y, size_t n) {
    init_tables();
    const uint8_t *b = in;
    for (size_t i = 0; i < n / 32; i++, b += 20, y += 32) {
        const float d = h2f(load_u16(b)), m = h2f(load_u16(b + 2));
        for (int j = 0; j < 16; j++) {
            float lo = d * (float)(b[4 + j] & 0xF), hi = d * (float)(b[4 + j] >> 4);
            y[j] = lo + m;
            y[j + 16] = hi + m;
        }
    }
}

void p4k_dequantize_q5_0(const void *in, float *y, size_t n) {
    init_tables();
    const uint8_t *b = in;
    for (size_t i = 0; i < n / 32; i++, b += 22, y += 32) {
        const float d = h2f(load_u16(b));
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; j++) {
            int lo = (b[6 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int hi = (b[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
    }
}

void p4k_dequantize_q5_1(const void *in, float *y, size_t n) {
    init_tables();
    const uint8_t *b = in;
    for (size_t i = 0; i < n / 32; i++, b += 24, y += 32) {
        const float d = h2f(load_u16(b)), m = h2f(load_u16(b + 2));
        uint32_t qh;
        memcpy(&qh, b + 4, 4);
        for (int j = 0; j < 16; j++) {
            int lo = (b[8 + j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int hi = (b[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            float a = d * (float)lo, c = d * (float)hi;
            y[j] = a + m;
            y[j + 16] = c + m;
        }
    }
}

// The 6-bit scale and min of sub-block j (0…7) of a Q4_K / Q5_K super-block.
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void p4k_dequantize_q4_k(const void *in, float *y, size_t n) {
    init_tables();
    const uint8_t *b = in;
    for (size_t i = 0; i < n / 256; i++, b += 144) {
        const float d = h2f(load_u16(b)), dmin = h2f(load_u16(b + 2));
        const uint8_t *scales = b + 4, *qs = b + 16;
        for (int j = 0; j < 8; j++, y += 32) {
            int sc, m;
            k_scale_min(scales, j, &sc, &m);
            const float ds = d * (float)sc, dm = dmin * (float)m;
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
    init_tables();
    const uint8_t *b = in;
    for (size_t i = 0; i < n / 256; i++, b += 176) {
        const float d = h2f(load_u16(b)), dmin = h2f(load_u16(b + 2));
        const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
        for (int j = 0; j < 8; j++, y += 32) {
            int sc, m;
            k_scale_min(scales, j, &sc, &m);
            const float ds = d * (float)sc, dm = dmin * (float)m;
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

// ---- Activations -----------------------------------------------------------------------------

static void quantize_activation_scalar(const float *x, size_t n, int8_t *qs, float *d, int32_t *sums) {
    for (size_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float db = amax / 127.0f;
        const float id = db ? 1.0f / db : 0.0f;
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            int8_t q = (int8_t)roundf(xb[j] * id);
            qs[32 * b + j] = q;
            s += q;
        }
        d[b] = db;
        sums[b] = s;
    }
}

#if defined(__x86_64__)
// The same computation 32 values at a time, with identical results: the block maximum is exact in
// any order, the scale and x·id are the same float operations, and roundf (half away from zero)
// is trunc(y) + sign(y) where |y − trunc(y)| ≥ 0.5 (that difference is exact).
__attribute__((target("avx2"))) static void quantize_activation_avx2(const float *x, size_t n, int8_t *qs, float *d,
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
#endif

void p4k_quantize_activation(const float *x, size_t n, int8_t *qs, float *d, int32_t *sums) {
#if defined(__x86_64__)
    if (p4k_isa_best() != P4K_ISA_SCALAR) {
        quantize_activation_avx2(x, n, qs, d, sums);
        return;
    }
#endif
    quantize_activation_scalar(x, n, qs, d, sums);
}

// ---- Per-block integer sums, one implementation per ISA -------------------------------------

typedef void (*sums_fn)(const uint8_t *w, const int8_t *a, const int32_t *asum, size_t nb, int32_t *out);

static void q8_sums_scalar(const uint8_t *w, const int8_t *a, const int32_t *asum, size_t nb, int32_t *out) {
    (void)asum;
    for (size_t b = 0; b < nb; b++, w += 34, a += 32) {
        const int8_t *q = (const int8_t *)(w + 2);
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += (int32_t)q[j] * a[j];
        out[b] = s;
    }
}

static void q4_sums_scalar(const uint8_t *w, const int8_t *a, const int32_t *asum, size_t nb, int32_t *out) {
    for (size_t b = 0; b < nb; b++, w += 18, a += 32) {
        int32_t s = 0;
        for (int j = 0; j < 16; j++) s += (int32_t)(w[2 + j] & 0xF) * a[j] + (int32_t)(w[2 + j] >> 4) * a[16 + j];
        out[b] = s - 8 * asum[b];
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static inline int32_t hsum_i32_8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2"))) static inline __m256i q4_unpack(const uint8_t *qs) {
    // Both halves from one broadcast load (no shuffle): the upper lane is shifted right by 4 so
    // that each byte's high nibble lands in its low nibble, then every byte is masked to 4 bits.
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    v = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(v, _mm256_set1_epi8(0xF));
}

__attribute__((target("avx2"))) static inline __m256i q8_block_avx2(const uint8_t *w, const int8_t *a) {
    __m256i q = _mm256_loadu_si256((const __m256i *)(w + 2));
    __m256i x = _mm256_loadu_si256((const __m256i *)a);
    // |q| (unsigned) times x with q's sign: maddubs needs one unsigned operand.
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// The sixteen int16 pair products of one Q4_0 block (|each| ≤ 2·15·127 = 3810), for p4k_reduce8_i16.
__attribute__((target("avx2"))) static inline __m256i q4_block_avx2(const uint8_t *w, const int8_t *a) {
    return _mm256_maddubs_epi16(q4_unpack(w + 2), _mm256_loadu_si256((const __m256i *)a));
}

__attribute__((target("avx2"))) static void q8_sums_avx2(const uint8_t *w, const int8_t *a, const int32_t *asum, size_t nb,
                                                         int32_t *out) {
    (void)asum;
    size_t b = 0;
    for (; b + 8 <= nb; b += 8, w += 8 * 34, a += 256) {
        __m256i s = p4k_reduce8_i32(q8_block_avx2(w, a), q8_block_avx2(w + 34, a + 32), q8_block_avx2(w + 68, a + 64),
                            q8_block_avx2(w + 102, a + 96), q8_block_avx2(w + 136, a + 128),
                            q8_block_avx2(w + 170, a + 160), q8_block_avx2(w + 204, a + 192),
                            q8_block_avx2(w + 238, a + 224));
        _mm256_storeu_si256((__m256i *)(out + b), s);
    }
    for (; b < nb; b++, w += 34, a += 32) out[b] = hsum_i32_8(q8_block_avx2(w, a));
}

__attribute__((target("avx2"))) static void q4_sums_avx2(const uint8_t *w, const int8_t *a, const int32_t *asum, size_t nb,
                                                         int32_t *out) {
    size_t b = 0;
    for (; b + 8 <= nb; b += 8, w += 8 * 18, a += 256) {
        __m256i s = p4k_reduce8_i16(q4_block_avx2(w, a), q4_block_avx2(w + 18, a + 32), q4_block_avx2(w + 36, a + 64),
                            q4_block_avx2(w + 54, a + 96), q4_block_avx2(w + 72, a + 128),
                            q4_block_avx2(w + 90, a + 160), q4_block_avx2(w + 108, a + 192),
                            q4_block_avx2(w + 126, a + 224));
        __m256i as = _mm256_loadu_si256((const __m256i *)(asum + b));
        _mm256_storeu_si256((__m256i *)(out + b), _mm256_sub_epi32(s, _mm256_slli_epi32(as, 3)));
    }
    for (; b < nb; b++, w += 18, a += 32) out[b] = hsum_i32_8(_mm256_madd_epi16(q4_block_avx2(w, a), _mm256_set1_epi16(1))) - 8 * asum[b];
}

// AVX-512 (BW): two blocks per 512-bit vector.
__attribute__((target("avx512f,avx512bw,avx2"))) static void q8_sums_avx512(const uint8_t *w, const int8_t *a,
                                                                            const int32_t *asum, size_t nb, int32_t *out) {
    const __m512i ones = _mm512_set1_epi16(1);
    size_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 68, a += 64) {
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(w + 2))),
                                       _mm256_loadu_si256((const __m256i *)(w + 36)), 1);
        __m512i x = _mm512_loadu_si512((const void *)a);
        __m512i aq = _mm512_abs_epi8(q);
        __mmask64 neg = _mm512_movepi8_mask(q);
        __m512i sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
        __m512i s = _mm512_madd_epi16(_mm512_maddubs_epi16(aq, sx), ones);
        out[b] = hsum_i32_8(_mm512_castsi512_si256(s));
        out[b + 1] = hsum_i32_8(_mm512_extracti64x4_epi64(s, 1));
    }
    if (b < nb) q8_sums_avx2(w, a, asum, nb - b, out + b);
}

__attribute__((target("avx512f,avx512bw,avx2"))) static void q4_sums_avx512(const uint8_t *w, const int8_t *a,
                                                                            const int32_t *asum, size_t nb, int32_t *out) {
    const __m512i ones = _mm512_set1_epi16(1);
    size_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 36, a += 64) {
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q4_unpack(w + 2)), q4_unpack(w + 20), 1);
        __m512i x = _mm512_loadu_si512((const void *)a);
        __m512i s = _mm512_madd_epi16(_mm512_maddubs_epi16(q, x), ones);
        out[b] = hsum_i32_8(_mm512_castsi512_si256(s)) - 8 * asum[b];
        out[b + 1] = hsum_i32_8(_mm512_extracti64x4_epi64(s, 1)) - 8 * asum[b + 1];
    }
    if (b < nb) q4_sums_avx2(w, a, asum + b, nb - b, out + b);
}

// AVX-512 VNNI: dpbusd multiplies unsigned by signed bytes and adds groups of four into int32.
__attribute__((target("avx512f,avx512bw,avx512vnni,avx2"))) static void q8_sums_vnni(const uint8_t *w, const int8_t *a,
                                                                                     const int32_t *asum, size_t nb,
                                                                                     int32_t *out) {
    size_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 68, a += 64) {
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(w + 2))),
                                       _mm256_loadu_si256((const __m256i *)(w + 36)), 1);
        __m512i x = _mm512_loadu_si512((const void *)a);
        __mmask64 neg = _mm512_movepi8_mask(q);
        __m512i sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(q), sx);
        out[b] = hsum_i32_8(_mm512_castsi512_si256(s));
        out[b + 1] = hsum_i32_8(_mm512_extracti64x4_epi64(s, 1));
    }
    if (b < nb) q8_sums_avx2(w, a, asum, nb - b, out + b);
}

__attribute__((target("avx512f,avx512bw,avx512vnni,avx2"))) static void q4_sums_vnni(const uint8_t *w, const int8_t *a,
                                                                                     const int32_t *asum, size_t nb,
                                                                                     int32_t *out) {
    size_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 36, a += 64) {
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q4_unpack(w + 2)), q4_unpack(w + 20), 1);
        __m512i x = _mm512_loadu_si512((const void *)a);
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, x);
        out[b] = hsum_i32_8(_mm512_castsi512_si256(s)) - 8 * asum[b];
        out[b + 1] = hsum_i32_8(_mm512_extracti64x4_epi64(s, 1)) - 8 * asum[b + 1];
    }
    if (b < nb) q4_sums_avx2(w, a, asum + b, nb - b, out + b);
}
#endif

// ---- ISA selection ---------------------------------------------------------------------------

int p4k_isa_available(int isa) {
    uint32_t f = p4k_cpu_features();
    switch (isa) {
    case P4K_ISA_SCALAR: return 1;
    case P4K_ISA_AVX2: return (f & P4K_CPU_AVX2) != 0;
    case P4K_ISA_AVX512: return (f & P4K_CPU_AVX512F) && (f & P4K_CPU_AVX512BW) && (f & P4K_CPU_AVX2);
    case P4K_ISA_VNNI: return (f & P4K_CPU_AVX512F) && (f & P4K_CPU_AVX512BW) && (f & P4K_CPU_AVX512VNNI) && (f & P4K_CPU_AVX2);
    default: return 0;
    }
}

static int selected_isa = -1;

int p4k_isa_best(void) {
    int isa = __atomic_load_n(&selected_isa, __ATOMIC_ACQUIRE);
    if (isa >= 0) return isa;
    isa = P4K_ISA_SCALAR;
    for (int i = P4K_ISA_VNNI; i > P4K_ISA_SCALAR; i--) {
        if (p4k_isa_available(i)) { isa = i; break; }
    }
    const char *env = getenv("PHI4_ISA");
    if (env) {
        int want = -1;
        if (!strcmp(env, "scalar")) want = P4K_ISA_SCALAR;
        else if (!strcmp(env, "avx2")) want = P4K_ISA_AVX2;
        else if (!strcmp(env, "avx512")) want = P4K_ISA_AVX512;
        else if (!strcmp(env, "vnni")) want = P4K_ISA_VNNI;
        if (want >= 0 && p4k_isa_available(want)) isa = want;
    }
    __atomic_store_n(&selected_isa, isa, __ATOMIC_RELEASE);
    return isa;
}

const char *p4k_isa_name(int isa) {
    switch (isa) {
    case P4K_ISA_SCALAR: return "scalar";
    case P4K_ISA_AVX2: return "avx2";
    case P4K_ISA_AVX512: return "avx512";
    case P4K_ISA_VNNI: return "vnni";
    default: return "unknown";
    }
}

static sums_fn sums_for(int format, int isa) {
#if defined(__x86_64__)
    if (!p4k_isa_available(isa)) isa = P4K_ISA_SCALAR;
    switch (isa) {
    case P4K_ISA_VNNI: return format == P4K_Q8_0 ? q8_sums_vnni : q4_sums_vnni;
    case P4K_ISA_AVX512: return format == P4K_Q8_0 ? q8_sums_avx512 : q4_sums_avx512;
    case P4K_ISA_AVX2: return format == P4K_Q8_0 ? q8_sums_avx2 : q4_sums_avx2;
    default: break;
    }
#else
    (void)isa;
#endif
    return format == P4K_Q8_0 ? q8_sums_scalar : q4_sums_scalar;
}

// ---- Matrix-vector products ------------------------------------------------------------------

size_t p4k_row_bytes(int format, size_t cols) {
    if (p4k_kquant_block_bytes(format)) return cols / 256 * p4k_kquant_block_bytes(format);
    return format == P4K_Q8_0 ? cols / 32 * 34 : cols / 32 * 18;
}

void p4k_block_sums(int format, int isa, const void *w_row, const int8_t *aq, const int32_t *asum, size_t nb, int32_t *out) {
    sums_for(format, isa)(w_row, aq, asum, nb, out);
}

// The float result of one row: block b's term (float)sum_b * (d_w * d_a) goes to lane b % 8;
// the lanes are combined as ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)). The scalar and the vector
// versions perform exactly the same float operations in the same order.
static float accumulate_scalar(const uint8_t *row, size_t stride, const float *ad, const int32_t *sums, size_t nb) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t b = 0; b < nb; b++) {
        uint16_t hd;
        memcpy(&hd, row + b * stride, 2);
        l[b & 7] = l[b & 7] + (float)sums[b] * (h2f(hd) * ad[b]);
    }
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

#if defined(__x86_64__)
// Eight fp16 block scales at `stride` bytes apart, widened to f32. The halves are gathered in
// general-purpose registers (shifts and ors), which leaves the vector units to the dot products.
__attribute__((target("avx2,f16c"))) static inline __m256 scales8(const uint8_t *row, size_t stride) {
    uint64_t lo = 0, hi = 0;
    for (int k = 0; k < 4; k++) {
        uint16_t a, b;
        memcpy(&a, row + (size_t)k * stride, 2);
        memcpy(&b, row + (size_t)(k + 4) * stride, 2);
        lo |= (uint64_t)a << (16 * k);
        hi |= (uint64_t)b << (16 * k);
    }
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)hi, (long long)lo));
}

// The tail blocks and the fixed combine tree, shared by the vector routines.
static inline float finish_lanes(float *l, const uint8_t *row, size_t stride, const float *ad, const int32_t *sums,
                                 size_t b, size_t nb) {
    for (; b < nb; b++) {
        uint16_t hd;
        memcpy(&hd, row + b * stride, 2);
        l[b & 7] = l[b & 7] + (float)sums[b - (b & ~(size_t)7)] * (h2f(hd) * ad[b]);
    }
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

__attribute__((target("avx2,f16c"))) static float accumulate_avx2(const uint8_t *row, size_t stride, const float *ad,
                                                                  const int32_t *sums, size_t nb) {
    __m256 acc = _mm256_setzero_ps();
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        __m256 s = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(sums + b)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(s, _mm256_mul_ps(scales8(row + b * stride, stride), _mm256_loadu_ps(ad + b))));
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    return finish_lanes(l, row, stride, ad, sums + (b & ~(size_t)7), b, nb);
}

// Fused AVX2 rows: the same integer sums and the same float operations as the separate
// sums + accumulate path, without storing the sums.
// Q4_0 rows read eight blocks at a time and transpose them in registers (4 bytes of each block
// side by side, as the multi-row kernel's panels hold rows), so that one vector holds a group of
// elements of all eight blocks: the products of a block then add up vertically, in int16
// (8 · 2 · 15 · 127 = 30480 < 2^15), and one madd gives the eight block sums, with no horizontal
// reduction. The activations are rearranged to match once per call (transpose_activations).
//
// Transposed activation layout, per group of 8 blocks (256 bytes): vector v = 0…7 (32 bytes),
// element group g = v % 4 of the low (v < 4) or high (v ≥ 4) half of each block:
// byte 4k + m of vector v = a[32k + 16·(v / 4) + 4g + m], k = block 0…7, m = 0…3.
// The same 4×4 transpose as the weights': for each half, blocks k and k + 4 share a vector.
__attribute__((target("avx2"))) static void transpose_activations(const int8_t *a, size_t nb, int8_t *t) {
    for (size_t b8 = 0; b8 + 8 <= nb; b8 += 8) {
        const int8_t *src = a + 32 * b8;
        int8_t *dst = t + 32 * b8;
        for (size_t half = 0; half < 2; half++) {
            const int8_t *q = src + 16 * half;
            __m256i v0 = p4k_load_pair(q, q + 128), v1 = p4k_load_pair(q + 32, q + 160);
            __m256i v2 = p4k_load_pair(q + 64, q + 192), v3 = p4k_load_pair(q + 96, q + 224);
            P4K_TRANSPOSE4(v0, v1, v2, v3);
            _mm256_storeu_si256((__m256i *)(dst + 128 * half), v0);
            _mm256_storeu_si256((__m256i *)(dst + 128 * half + 32), v1);
            _mm256_storeu_si256((__m256i *)(dst + 128 * half + 64), v2);
            _mm256_storeu_si256((__m256i *)(dst + 128 * half + 96), v3);
        }
    }
}

// Eight Q4_0 blocks at `wb` (18 bytes each) transposed in registers: v[g] holds bytes 4g…4g+3
// of blocks 0–3 (low lane) and 4–7 (high lane), i.e. elements 4g…4g+3 (low nibbles) and
// 16+4g…16+4g+3 (high nibbles) of each block. Prefetches the weights 2 KB ahead.
__attribute__((target("avx2"), always_inline)) static inline void q4_load8(const uint8_t *wb, __m256i v[4]) {
    _mm_prefetch((const char *)(wb + 2048), _MM_HINT_T0);
    _mm_prefetch((const char *)(wb + 2112), _MM_HINT_T0);
    _mm_prefetch((const char *)(wb + 2176), _MM_HINT_T0);
    __m256i v0 = p4k_load_pair(wb + 2, wb + 74), v1 = p4k_load_pair(wb + 20, wb + 92);
    __m256i v2 = p4k_load_pair(wb + 38, wb + 110), v3 = p4k_load_pair(wb + 56, wb + 128);
    P4K_TRANSPOSE4(v0, v1, v2, v3);
    v[0] = v0;
    v[1] = v1;
    v[2] = v2;
    v[3] = v3;
}

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
        const uint8_t *wb = w + b * 18;
        __m256i v[4];
        q4_load8(wb, v);
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
        const __m256 sc = scales8(wb, 18);
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
        q4_sums_scalar(w + b * 18, a + (size_t)j * lda + b * 32, asum + (size_t)j * nb + b, nb - b, tail);
        res[j] = finish_lanes(l, w, 18, ad + (size_t)j * nb, tail, b, nb);
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
static void finish_batch(sums_fn sums, const uint8_t *w, size_t stride, size_t b, size_t nb, int nt, const int8_t *a,
                         size_t lda, const float *ad, const int32_t *asum, float *lanes, float *res) {
    for (int j = 0; j < nt; j++) {
        int32_t tail[8];
        sums(w + b * stride, a + (size_t)j * lda + b * 32, asum + (size_t)j * nb + b, nb - b, tail);
        res[j] = finish_lanes(lanes + 8 * j, w, stride, ad + (size_t)j * nb, tail, b, nb);
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
        const uint8_t *wb = w + b * 18;
        __m256i v[4];
        q4_load8(wb, v);
        const __m256i v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
        const __m256i l0 = _mm256_and_si256(v0, nib), l1 = _mm256_and_si256(v1, nib);
        const __m256i l2 = _mm256_and_si256(v2, nib), l3 = _mm256_and_si256(v3, nib);
        const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib);
        const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nib);
        const __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(v2, 4), nib);
        const __m256i h3 = _mm256_and_si256(_mm256_srli_epi16(v3, 4), nib);
        const __m256 sc = scales8(wb, 18);
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
    finish_batch(q4_sums_scalar, w, 18, b, nb, nt, a, lda, ad, asum, lanes, res);
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
        const uint8_t *wb = w + b * 34;
        for (int k = 0; k < 5; k++) _mm_prefetch((const char *)(wb + 2048 + 64 * k), _MM_HINT_T0);
        for (int half = 0; half < 2; half++) {
            const uint8_t *q = wb + 2 + 16 * half;
            __m256i v0 = p4k_load_pair(q, q + 136), v1 = p4k_load_pair(q + 34, q + 170);
            __m256i v2 = p4k_load_pair(q + 68, q + 204), v3 = p4k_load_pair(q + 102, q + 238);
            P4K_TRANSPOSE4(v0, v1, v2, v3);
            wq[4 * half] = v0;
            wq[4 * half + 1] = v1;
            wq[4 * half + 2] = v2;
            wq[4 * half + 3] = v3;
        }
        __m256i u[8];
        for (int v = 0; v < 8; v++) u[v] = _mm256_sign_epi8(wq[v], wq[v]);
        const __m256 sc = scales8(wb, 34);
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
    finish_batch(q8_sums_scalar, w, 34, b, nb, nt, a, lda, ad, asum, lanes, res);
}

__attribute__((target("avx2,f16c"))) static float q4_row_avx2(const uint8_t *w, const int8_t *a, const int8_t *at,
                                                              const float *ad, const int32_t *asum, size_t nb) {
    float r;
    q4_row_tokens_avx2(w, nb, 1, a, 0, at, 0, ad, asum, &r);
    return r;
}

__attribute__((target("avx2,f16c"))) static float q8_row_avx2(const uint8_t *w, const int8_t *a, const float *ad,
                                                              const int32_t *asum, size_t nb) {
    (void)asum;
    __m256 acc = _mm256_setzero_ps();
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *wb = w + b * 34;
        const int8_t *ab = a + b * 32;
        for (int k = 0; k < 5; k++) _mm_prefetch((const char *)(wb + 1536 + 64 * k), _MM_HINT_T0);
        __m256i s = p4k_reduce8_i32(q8_block_avx2(wb, ab), q8_block_avx2(wb + 34, ab + 32), q8_block_avx2(wb + 68, ab + 64),
                            q8_block_avx2(wb + 102, ab + 96), q8_block_avx2(wb + 136, ab + 128),
                            q8_block_avx2(wb + 170, ab + 160), q8_block_avx2(wb + 204, ab + 192),
                            q8_block_avx2(wb + 238, ab + 224));
        __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(scales8(wb, 34), _mm256_loadu_ps(ad + b)));
        acc = _mm256_add_ps(acc, p);
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    int32_t tail[8];
    q8_sums_scalar(w + b * 34, a + b * 32, asum + b, nb - b, tail);
    return finish_lanes(l, w, 34, ad, tail, b, nb);
}
#endif

void p4k_matvec(int format, int isa, const void *w, size_t cols, size_t rows, const int8_t *aq, const float *ad,
                const int32_t *asum, float *out, int accumulate) {
    init_tables();
    if (isa < 0) isa = p4k_isa_best();
    if (p4k_kquant_block_bytes(format)) {
        p4k_kquant_matvec(format, isa, w, cols, rows, aq, ad, asum, out, accumulate);
        return;
    }
    const sums_fn fn = sums_for(format, isa);
    const size_t nb = cols / 32, rb = p4k_row_bytes(format, cols), stride = format == P4K_Q8_0 ? 34 : 18;
#if defined(__x86_64__)
    const int vector_sum = isa != P4K_ISA_SCALAR && p4k_isa_available(isa) && (p4k_cpu_features() & P4K_CPU_F16C);
#endif
#if defined(__x86_64__)
    if (vector_sum && isa == P4K_ISA_AVX2) {
        _Alignas(64) int8_t tstack[32768];  // 64-byte aligned: the kernel reads it 32 bytes at a time
        int8_t *at = NULL;
        if (format == P4K_Q4_0) {
            at = cols <= sizeof(tstack) ? tstack : aligned_alloc(64, (cols + 63) / 64 * 64);
            if (at) transpose_activations(aq, nb, at);
        }
        if (format == P4K_Q8_0 || at) {
            for (size_t r = 0; r < rows; r++) {
                const uint8_t *row = (const uint8_t *)w + r * rb;
                if (r + 4 < rows) __builtin_prefetch(row + 4 * rb, 0, 0);
                const float acc =
                    format == P4K_Q8_0 ? q8_row_avx2(row, aq, ad, asum, nb) : q4_row_avx2(row, aq, at, ad, asum, nb);
                out[r] = accumulate ? out[r] + acc : acc;
            }
            if (at != tstack) free(at);
            return;
        }
        // No memory for the transposed activations: the unfused path below.
    }
#endif
    int32_t stack[1024];
    int32_t *sums = nb <= 1024 ? stack : malloc(nb * sizeof(int32_t));
    if (!sums) return;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)w + r * rb;
        fn(row, aq, asum, nb, sums);
        float acc;
#if defined(__x86_64__)
        if (vector_sum) acc = accumulate_avx2(row, stride, ad, sums, nb);
        else
#endif
            acc = accumulate_scalar(row, stride, ad, sums, nb);
        out[r] = accumulate ? out[r] + acc : acc;
    }
    if (sums != stack) free(sums);
}

// Q4_0 or Q8_0 weights × t activation rows on AVX2 with the single-token kernels' arithmetic,
// row by row, in groups of up to 8 tokens (Q4_0: q4_row_tokens_avx2 for groups of 1…4,
// q4_row_batch_avx2 for 5…8; Q8_0: q8_row_batch_avx2); used by p4k_gemm for small batches (and
// all Q8_0 batches on AVX2). Returns -1 (nothing written) where it does not apply or scratch
// memory is missing.
int p4k_tokens(int format, int isa, const void *w, size_t cols, size_t rows, size_t t, const int8_t *aq, const float *ad,
               const int32_t *asum, float *out, size_t ldo, int accumulate) {
#if defined(__x86_64__)
    if (isa != P4K_ISA_AVX2 || !p4k_isa_available(isa) || !(p4k_cpu_features() & P4K_CPU_F16C)) return -1;
    if (format != P4K_Q4_0 && format != P4K_Q8_0) return -1;
    init_tables();
    const size_t nb = cols / 32, rb = p4k_row_bytes(format, cols);
    // Scratch: the transposed activations, then (Q4_0) 8·Σa per block, the format's offset;
    // 64-byte aligned, as the kernels read the activations 32 bytes at a time (a load across two
    // cache lines costs two).
    const size_t offsets = format == P4K_Q4_0 ? t * nb * sizeof(int32_t) : 0;
    int8_t *at = aligned_alloc(64, (t * cols + offsets + 63) / 64 * 64);
    if (!at) return -1;
    int32_t *asum8 = (int32_t *)(at + t * cols);
    for (size_t i = 0; i < t; i++) transpose_activations(aq + i * cols, nb, at + i * cols);
    if (offsets)
        for (size_t i = 0; i < t * nb; i++) asum8[i] = 8 * asum[i];
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)w + r * rb;
        if (r + 4 < rows) __builtin_prefetch(row + 4 * rb, 0, 0);
        for (size_t i = 0; i < t; i += 8) {
            const int nt = (int)(t - i < 8 ? t - i : 8);
            const int8_t *a = aq + i * cols, *ai = at + i * cols;
            float res[8];
            if (format == P4K_Q8_0)
                q8_row_batch_avx2(row, nb, nt, a, cols, ai, cols, ad + i * nb, asum + i * nb, res);
            else if (nt <= 4)
                q4_row_tokens_any(row, nb, nt, a, cols, ai, cols, ad + i * nb, asum + i * nb, res);
            else
                q4_row_batch_avx2(row, nb, nt, a, cols, ai, cols, ad + i * nb, asum + i * nb, asum8 + i * nb, res);
            for (int j = 0; j < nt; j++) {
                float *o = out + (i + (size_t)j) * ldo + r;
                *o = accumulate ? *o + res[j] : res[j];
            }
        }
    }
    free(at);
    return 0;
#else
    (void)format; (void)isa; (void)w; (void)cols; (void)rows; (void)t; (void)aq; (void)ad; (void)asum; (void)out;
    (void)ldo; (void)accumulate;
    return -1;
#endif
}

void p4k_dequantize_rows(int format, const void *w, size_t cols, size_t rows, float *out) {
    const size_t rb = p4k_row_bytes(format, cols);
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)w + r * rb;
        switch (format) {
        case P4K_Q8_0: p4k_dequantize_q8_0(row, out + r * cols, cols); break;
        case P4K_Q4_K: p4k_dequantize_q4_k(row, out + r * cols, cols); break;
        case P4K_Q5_K: p4k_dequantize_q5_k(row, out + r * cols, cols); break;
        case P4K_Q6_K: p4k_dequantize_q6_k(row, out + r * cols, cols); break;
        default: p4k_dequantize_q4_0(row, out + r * cols, cols); break;
        }
    }
}
