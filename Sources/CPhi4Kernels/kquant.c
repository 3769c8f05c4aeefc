// Integer dot products of llama.cpp's K-quant weights (Q4_K, Q5_K, Q6_K: super-blocks of 256)
// with activations quantized to int8 blocks of 32 (p4k_quantize_activation).
//
// Activation block b (32 values) meets sub-block j = b % 8 of super-block b / 8. Its float term,
// added into lane b % 8 exactly like the Q4_0 / Q8_0 row kernel (and combined by the same tree):
//  - Q4_K / Q5_K (q = 4 or 5 bits, 0…15 / 0…31; 6-bit scale sc and min m per sub-block):
//      isum = Σ q·a,  term = d_a · ((d·sc) · isum − (dmin·m) · Σa)
//  - Q6_K (q − 32 in −32…31; signed 8-bit scale per 16 values):
//      isum = sc₀·Σ₀ (q−32)·a + sc₁·Σ₁ (q−32)·a,  term = isum · (d · d_a)
// The integer sums are exact and the float operations are the same, in the same order, on every
// ISA, so all paths agree bit for bit. Layouts (GGUF): Q4_K = d, dmin (fp16), 12 bytes of packed
// scales/mins, 128 bytes of nibbles (bytes 32p…32p+31: low nibbles = sub-block 2p, high = 2p+1);
// Q5_K adds 32 bytes qh (bit j of byte l = fifth bit of value l of sub-block j) before the
// nibbles; Q6_K = 128 bytes ql, 64 bytes qh, 16 int8 scales, fp16 d.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#define _GNU_SOURCE
#include "CPhi4Kernels.h"
#include "simd.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static float fp16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return p4k_fp16_to_f32(h);
}

// The eight 6-bit scales and mins of a Q4_K / Q5_K super-block (12 packed bytes), as two
// little-endian 64-bit words (byte j = sub-block j).
static inline void unpack_scales64(const uint8_t *s, uint64_t *sc, uint64_t *m) {
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

// The same as byte arrays.
static void unpack_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
    uint64_t a, b;
    unpack_scales64(s, &a, &b);
    memcpy(sc, &a, 8);
    memcpy(m, &b, 8);
}

void p4k_q4k_subscales(const void *block, float ds[8], float dm[8]) {
    const uint8_t *w = block;
    uint8_t sc[8], m[8];
    unpack_scales(w + 4, sc, m);
    const float d = fp16(w), dmin = fp16(w + 2);
    for (int j = 0; j < 8; j++) {
        ds[j] = d * (float)sc[j];
        dm[j] = dmin * (float)m[j];
    }
}

size_t p4k_kquant_block_bytes(int format) {
    switch (format) {
    case P4K_Q4_K: return 144;
    case P4K_Q5_K: return 176;
    case P4K_Q6_K: return 210;
    default: return 0;
    }
}

// ---- Scalar ----------------------------------------------------------------------------------

static float row_scalar(int format, const uint8_t *w, const int8_t *aq, const float *ad, const int32_t *asum,
                        size_t nsb) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const size_t bb = p4k_kquant_block_bytes(format);
    for (size_t i = 0; i < nsb; i++, w += bb) {
        if (format == P4K_Q6_K) {
            const uint8_t *ql = w, *qh = w + 128;
            const int8_t *sc = (const int8_t *)(w + 192);
            const float d = fp16(w + 208);
            for (int j = 0; j < 8; j++) {
                const size_t b = 8 * i + (size_t)j;
                const int h = j / 4, k = j % 4;
                const int8_t *a = aq + 32 * b;
                int32_t s[2] = {0, 0};
                for (int e = 0; e < 32; e++) {
                    const uint8_t lo = ql[64 * h + 32 * (k & 1) + e];
                    const int nib = k < 2 ? (lo & 0xF) : (lo >> 4);
                    const int q = nib | (((qh[32 * h + e] >> (2 * k)) & 3) << 4);
                    s[e / 16] += (q - 32) * a[e];
                }
                const int32_t isum = sc[2 * j] * s[0] + sc[2 * j + 1] * s[1];
                l[j] = l[j] + (float)isum * (d * ad[b]);
            }
            continue;
        }
        const float d = fp16(w), dmin = fp16(w + 2);
        uint8_t sc[8], m[8];
        unpack_scales(w + 4, sc, m);
        const uint8_t *qh = w + 16, *qs = format == P4K_Q5_K ? w + 48 : w + 16;
        for (int j = 0; j < 8; j++) {
            const size_t b = 8 * i + (size_t)j;
            const int8_t *a = aq + 32 * b;
            int32_t isum = 0;
            for (int e = 0; e < 32; e++) {
                int q = (qs[32 * (j / 2) + e] >> (4 * (j & 1))) & 0xF;
                if (format == P4K_Q5_K) q |= ((qh[e] >> j) & 1) << 4;
                isum += q * a[e];
            }
            const float ds = d * (float)sc[j], dm = dmin * (float)m[j];
            const float t1 = ds * (float)isum, t2 = dm * (float)asum[b];
            l[j] = l[j] + ad[b] * (t1 - t2);
        }
    }
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

// ---- AVX2 ------------------------------------------------------------------------------------

#if defined(__x86_64__)
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
            const uint8_t *ql = w, *qh = w + 128;
            const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
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
            uint16_t dh;
            memcpy(&dh, w + 208, 2);
            const __m256 d = _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(dh)));
            const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, _mm256_loadu_ps(ad + 8 * i)));
            acc = _mm256_add_ps(acc, t);
            continue;
        }
        const uint8_t *qs = format == P4K_Q5_K ? w + 48 : w + 16;
        const __m256i hv = format == P4K_Q5_K ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();
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
        unpack_scales64(w + 4, &sc, &m);
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
#endif

// The activations' sums over each 16 values (|A| ≤ 16·127), which Q6_K's vector path needs.
void p4k_activation_sums16(const int8_t *aq, size_t cols, int16_t *a16) {
    for (size_t k = 0; k < cols / 16; k++) {
        int s = 0;
        for (int e = 0; e < 16; e++) s += aq[16 * k + (size_t)e];
        a16[k] = (int16_t)s;
    }
}

// p4k_kquant_matvec with Q6_K's 16-value sums given (computed once per activation row by a caller
// that multiplies it by many row panels; may be NULL for Q4_K / Q5_K).
void p4k_kquant_rows(int format, int isa, const void *w, size_t cols, size_t rows, const int8_t *aq, const float *ad,
                     const int32_t *asum, const int16_t *a16, float *out, int accumulate) {
    if (isa < 0) isa = p4k_isa_best();
    const size_t nsb = cols / 256, rb = nsb * p4k_kquant_block_bytes(format);
#if defined(__x86_64__)
    const int vector = isa != P4K_ISA_SCALAR && p4k_isa_available(isa) && (p4k_cpu_features() & P4K_CPU_F16C) &&
                       (format != P4K_Q6_K || a16);
#endif
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)w + r * rb;
        float acc;
#if defined(__x86_64__)
        if (vector)
            acc = format == P4K_Q4_K   ? row_q4k_avx2(row, aq, ad, asum, a16, nsb)
                  : format == P4K_Q5_K ? row_q5k_avx2(row, aq, ad, asum, a16, nsb)
                                       : row_q6k_avx2(row, aq, ad, asum, a16, nsb);
        else
#endif
            acc = row_scalar(format, row, aq, ad, asum, nsb);
        out[r] = accumulate ? out[r] + acc : acc;
    }
}

void p4k_kquant_matvec(int format, int isa, const void *w, size_t cols, size_t rows, const int8_t *aq, const float *ad,
                       const int32_t *asum, float *out, int accumulate) {
    int16_t stack[2048];
    int16_t *a16 = NULL;
    if (format == P4K_Q6_K && isa != P4K_ISA_SCALAR) {
        a16 = cols / 16 <= 2048 ? stack : malloc(cols / 16 * sizeof(int16_t));
        if (a16) p4k_activation_sums16(aq, cols, a16);  // without it: the scalar path
    }
    p4k_kquant_rows(format, isa, w, cols, rows, aq, ad, asum, a16, out, accumulate);
    if (a16 != stack) free(a16);
}

// ---- Quantization (llama.cpp's reference rounding, no importance matrix) ----------------------
//
// The steps of llama.cpp's quantize_row_q{4,5,6}_K_ref: per 32 values (Q6_K: per 16) a scale
// (and a min) chosen by a small search for the least weighted squared error, then the scales
// themselves quantized to 6 bits (Q6_K: 8 bits) against an fp16 super-block scale, then the
// values rounded again against the stored scales. Round-to-nearest uses the same float trick.

static inline int nearest(float v) {
    float t = v + 12582912.0f;  // 1.5 · 2^23: the integer lands in the low mantissa bits
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static inline float half_round(float f) { return p4k_fp16_to_f32(p4k_f32_to_fp16(f)); }

// Scale and min (returned through `neg_min` as −min ≥ 0) for values x[0…n) in 0…nmax, searching
// nstep+1 candidate scales around nmax / (max − min), weighted squared error.
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                           float rdelta, int nstep) {
    uint8_t aux[32];
    float lo = x[0], hi = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0;
    }
    float iscale = nmax / (hi - lo), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest(iscale * (x[i] - lo));
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        const float diff = scale * L[i] + lo - x[i];
        best += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest(iscale * (x[i] - lo));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            aux[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        const float D = sum_w * sl2 - sl * sl;
        if (D > 0) {
            float s = (sum_w * sxl - sum_x * sl) / D, m = (sl2 * sum_x - sl * sxl) / D;
            if (m > 0) {
                m = 0;
                s = sxl / sl2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                const float diff = s * aux[i] + m - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                memcpy(L, aux, (size_t)n);
                best = err;
                scale = s;
                lo = m;
            }
        }
    }
    *neg_min = -lo;
    return scale;
}

// Q4_K / Q5_K: one super-block of 256 values.
static void quantize_k45(const float *x, uint8_t *y, int bits) {
    const int nmax = bits == 4 ? 15 : 31;
    uint8_t L[256];
    float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
        scales[j] = bits == 4 ? fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], -1.0f, 0.1f, 20)
                              : fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t *sc = y + 4;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest(inv_scale * scales[j]), lm = (uint8_t)nearest(inv_min * mins[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        if (j < 4) {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    const uint16_t hd = p4k_f32_to_fp16(max_scale / 63.0f), hm = p4k_f32_to_fp16(max_min / 63.0f);
    memcpy(y, &hd, 2);
    memcpy(y + 2, &hm, 2);
    const float d = p4k_fp16_to_f32(hd), dmin = p4k_fp16_to_f32(hm);
    uint8_t s8[8], m8[8];
    unpack_scales(sc, s8, m8);
    for (int j = 0; j < 8; j++) {
        const float ds = d * s8[j];
        if (!ds) continue;
        const float dm = dmin * m8[j];
        for (int l = 0; l < 32; l++) {
            int q = nearest((x[32 * j + l] + dm) / ds);
            L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > nmax ? nmax : q);
        }
    }
    // Pairs of sub-blocks share 32 bytes: low nibbles = the first, high nibbles = the second;
    // Q5_K's fifth bits go to qh (bit j of byte l = value l of sub-block j).
    uint8_t *qh = y + 16, *qs = bits == 4 ? y + 16 : y + 48;
    if (bits == 5) memset(qh, 0, 32);
    for (int p = 0; p < 4; p++) {
        for (int l = 0; l < 32; l++) {
            int a = L[64 * p + l], b = L[64 * p + 32 + l];
            if (bits == 5) {
                if (a > 15) { a -= 16; qh[l] |= (uint8_t)(1 << (2 * p)); }
                if (b > 15) { b -= 16; qh[l] |= (uint8_t)(2 << (2 * p)); }
            }
            qs[32 * p + l] = (uint8_t)(a | (b << 4));
        }
    }
}

// Q6_K's per-16 search: a signed scale for values in −nmax…nmax−1, weights x², 19 candidates.
static float fit_scale_signed(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quantize_q6k_block(const float *x, uint8_t *y) {
    int8_t L[256];
    float scales[16], max_scale = 0, max_abs = 0;
    for (int b = 0; b < 16; b++) {
        scales[b] = fit_scale_signed(16, 32, x + 16 * b, L + 16 * b);
        if (fabsf(scales[b]) > max_abs) {
            max_abs = fabsf(scales[b]);
            max_scale = scales[b];
        }
    }
    memset(y, 0, 210);
    if (max_abs < 1e-15f) return;
    const float iscale = -128.0f / max_scale;
    const uint16_t hd = p4k_f32_to_fp16(1 / iscale);
    memcpy(y + 208, &hd, 2);
    int8_t *sc = (int8_t *)(y + 192);
    for (int b = 0; b < 16; b++) {
        const int v = nearest(iscale * scales[b]);
        sc[b] = (int8_t)(v > 127 ? 127 : v);
    }
    const float d0 = p4k_fp16_to_f32(hd);
    for (int b = 0; b < 16; b++) {
        const float d = d0 * sc[b];
        if (!d) continue;
        for (int l = 0; l < 16; l++) {
            int q = nearest(x[16 * b + l] / d);
            q = q < -32 ? -32 : q > 31 ? 31 : q;
            L[16 * b + l] = (int8_t)(q + 32);
        }
    }
    uint8_t *ql = y, *qh = y + 128;
    for (int h = 0; h < 2; h++) {
        const int8_t *Lh = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[64 * h + l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
            ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
            qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                       ((Lh[l + 96] >> 4) << 6));
        }
    }
}

void p4k_quantize_kquant(int format, const float *x, void *out, size_t n) {
    uint8_t *y = out;
    const size_t bb = p4k_kquant_block_bytes(format);
    for (size_t i = 0; i < n / 256; i++, x += 256, y += bb) {
        if (format == P4K_Q6_K) quantize_q6k_block(x, y);
        else quantize_k45(x, y, format == P4K_Q4_K ? 4 : 5);
    }
}
