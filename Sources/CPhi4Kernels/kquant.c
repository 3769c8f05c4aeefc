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
#define _GNU_SOURCE
#include "CPhi4Kernels.h"
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

// The eight 6-bit scales and mins of a Q4_K / Q5_K super-block (12 packed bytes).
static void unpack_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    const uint32_t sa = u0 & 0x3f3f3f3fu, ma = u1 & 0x3f3f3f3fu;
    const uint32_t sb = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t mb = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    memcpy(sc, &sa, 4);
    memcpy(sc + 4, &sb, 4);
    memcpy(m, &ma, 4);
    memcpy(m + 4, &mb, 4);
}

// The same, as two little-endian 64-bit words (byte j = sub-block j).
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
__attribute__((target("avx2"))) static inline __m256i reduce8k(__m256i s0, __m256i s1, __m256i s2, __m256i s3,
                                                             __m256i s4, __m256i s5, __m256i s6, __m256i s7) {
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(s0, s1), _mm256_hadd_epi32(s2, s3));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(s4, s5), _mm256_hadd_epi32(s6, s7));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

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

__attribute__((target("avx2"))) static inline __m256i dot32(__m256i q, const int8_t *a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)a)), _mm256_set1_epi16(1));
}

__attribute__((target("avx2,f16c"), always_inline)) static inline float
row_avx2(int format, const uint8_t *w, const int8_t *aq, const float *ad, const int32_t *asum, const int16_t *a16,
         size_t nsb) {
    // Shuffle controls: sub-block j's two 16-value scales, each repeated 8 times.
    static const uint8_t pick[8][16] = {
        {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},         {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
        {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},         {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
        {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},         {10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
        {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13}, {14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15}};
    const size_t bb = p4k_kquant_block_bytes(format);
    const __m256i nib = _mm256_set1_epi8(0xF), hmask = _mm256_set1_epi8(0x30), bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < nsb; i++, w += bb) {
        const int8_t *a = aq + 256 * i;
        _mm_prefetch((const char *)(w + 4 * bb), _MM_HINT_T0);
        _mm_prefetch((const char *)(w + 4 * bb + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(w + 4 * bb + 128), _MM_HINT_T0);
        __m256i s[8];
        if (format == P4K_Q6_K) {
            // Unsigned q (0…63) with maddubs; the 32 comes off once per super-block as
            // 32·(sc₀·A₀ + sc₁·A₁) from the activations' 16-value sums A.
            const uint8_t *ql = w, *qh = w + 128;
            const __m128i scv = _mm_loadu_si128((const __m128i *)(w + 192));
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
                    const __m256i scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scv, _mm_loadu_si128((const __m128i *)pick[j])));
                    s[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), scale);
                }
            }
            const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scv), _mm256_loadu_si256((const __m256i *)(a16 + 16 * i)));
            const __m256i isum = _mm256_sub_epi32(reduce8k(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]), _mm256_slli_epi32(off, 5));
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
            s[2 * p] = dot32(lo, a + 64 * p);
            s[2 * p + 1] = dot32(hi, a + 64 * p + 32);
        }
        const __m256i isum = reduce8k(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
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

void p4k_kquant_matvec(int format, int isa, const void *w, size_t cols, size_t rows, const int8_t *aq, const float *ad,
                       const int32_t *asum, float *out, int accumulate) {
    if (isa < 0) isa = p4k_isa_best();
    const size_t nsb = cols / 256, rb = nsb * p4k_kquant_block_bytes(format);
#if defined(__x86_64__)
    int vector = isa != P4K_ISA_SCALAR && p4k_isa_available(isa) && (p4k_cpu_features() & P4K_CPU_F16C);
    // Q6_K's vector path: the activations' sums over each 16 values (|A| ≤ 16·127).
    int16_t stack[2048];
    int16_t *a16 = stack;
    if (vector && format == P4K_Q6_K) {
        if (cols / 16 > 2048 && !(a16 = malloc(cols / 16 * sizeof(int16_t)))) vector = 0;
        else
            for (size_t k = 0; k < cols / 16; k++) {
                int s = 0;
                for (int e = 0; e < 16; e++) s += aq[16 * k + (size_t)e];
                a16[k] = (int16_t)s;
            }
    }
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
#if defined(__x86_64__)
    if (a16 != stack) free(a16);
#endif
}
