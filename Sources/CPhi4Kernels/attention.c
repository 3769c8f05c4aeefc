// Attention of a few queries over one tile of the KV cache, read in place (f32, f16 or Q8_0),
// with an online softmax. Used for decoding and for small batches (prompt-lookup verification).
//
// Each query's arithmetic is the same whatever other queries share the call: its scores, its
// softmax step and its output accumulation use their own accumulators in a fixed order. So a
// verification pass that calls this once per token computes each token exactly as decoding it
// alone would.
//
// The AVX2 path (with FMA and F16C) widens f16 and Q8_0 keys and values in registers as it reads
// them — the cache is read once per call, never copied — keeps 8 independent FMA chains in flight
// (4 queries × 2 keys for the scores, 4 queries × 16 dimensions for the values) and evaluates
// exp with a polynomial, 8 at a time. The scalar path is the plain definition.
#define _GNU_SOURCE
#include "CPhi4Kernels.h"
#include "blocks.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

float p4k_fp16_to_f32(uint16_t h);

/// Bytes of a row of `ld` elements of a key/value type (Q8_0: ld/32 blocks).
static inline size_t kv_row_bytes(int kv_type, size_t ld) {
    return kv_type == P4K_KV_F16 ? 2 * ld : kv_type == P4K_KV_Q8_0 ? ld / 32 * sizeof(p4k_block_q8_0) : 4 * ld;
}

/// Element d of row j.
static inline float kv_value(int kv_type, const void *base, size_t ld, size_t j, size_t d) {
    const uint8_t *row = (const uint8_t *)base + j * kv_row_bytes(kv_type, ld);
    if (kv_type == P4K_KV_F16) return p4k_fp16_to_f32(((const uint16_t *)row)[d]);
    if (kv_type == P4K_KV_Q8_0) {
        const p4k_block_q8_0 *blk = (const p4k_block_q8_0 *)row + d / 32;
        return p4k_fp16_to_f32(blk->d) * (float)blk->qs[d % 32];
    }
    return ((const float *)row)[d];
}

/// One query's online-softmax step: s[0..<count] becomes exp(s_j − m) for the new running maximum
/// m, the running sum is rescaled and extended, and the output so far is rescaled when m grew.
static void softmax_step_scalar(float *s, size_t count, float *run_max, float *run_sum, float *a, size_t hd) {
    float m = *run_max;
    for (size_t j = 0; j < count; j++)
        if (s[j] > m) m = s[j];
    const float correction = expf(*run_max - m);
    float sum = 0;
    for (size_t j = 0; j < count; j++) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    *run_sum = *run_sum * correction + sum;
    *run_max = m;
    if (correction != 1)
        for (size_t d = 0; d < hd; d++) a[d] *= correction;
}

static void attend_scalar(int kv_type, const float *q, size_t q_stride, size_t nq, const void *keys,
                          const void *values, size_t ld, size_t count, size_t hd, float scale, float *scores,
                          float *run_max, float *run_sum, float *acc) {
    for (size_t r = 0; r < nq; r++) {
        const float *qr = q + r * q_stride;
        float *s = scores + r * count;
        for (size_t j = 0; j < count; j++) {
            float dot = 0;
            for (size_t d = 0; d < hd; d++) dot += qr[d] * kv_value(kv_type, keys, ld, j, d);
            s[j] = dot * scale;
        }
        float *a = acc + r * hd;
        softmax_step_scalar(s, count, run_max + r, run_sum + r, a, hd);
        for (size_t j = 0; j < count; j++)
            for (size_t d = 0; d < hd; d++) a[d] += s[j] * kv_value(kv_type, values, ld, j, d);
    }
}

#if defined(__x86_64__)
// The loops over the 1…4 queries and 1…2 keys of a block are unrolled so that their accumulator
// arrays live in registers (GCC otherwise keeps them in memory: 2-3x slower; clang unrolls them
// either way).
#define UNROLLED _Pragma("GCC unroll 4")
#define AVX2_FMA_F16C __attribute__((target("avx2,fma,f16c")))

/// Elements d … d+7 of row j (d a multiple of 8), widened to f32.
AVX2_FMA_F16C static inline __m256 load8(int kv_type, const void *base, size_t ld, size_t j, size_t d) {
    const uint8_t *row = (const uint8_t *)base + j * kv_row_bytes(kv_type, ld);
    if (kv_type == P4K_KV_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * d)));
    if (kv_type == P4K_KV_Q8_0) {
        const p4k_block_q8_0 *blk = (const p4k_block_q8_0 *)row + d / 32;
        const __m256 scale = _mm256_cvtph_ps(_mm_set1_epi16((short)blk->d));
        const __m128i q = _mm_loadl_epi64((const __m128i *)(blk->qs + d % 32));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), scale);
    }
    return _mm256_loadu_ps((const float *)row + d);
}

AVX2_FMA_F16C static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// e^x for x ≤ 0 (a softmax's shifted scores): 2^n · p(r) with x = n·ln2 + r, |r| ≤ ln2/2, p the
/// degree-6 polynomial of Cephes' expf (relative error ~2e-7). Below −87.3 the result is the
/// smallest normal float's order (~1e-38) rather than 0, which no sum of softmax terms can see.
AVX2_FMA_F16C static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/// How many key rows ahead scores_rows prefetches (~ memory latency / time per key).
#define KEY_AHEAD 16

/// Scores of `qn` (1…4) queries against `kn` (1 or 2) keys: one FMA chain per query and key,
/// over the head dimension in order, then an 8-lane sum.
AVX2_FMA_F16C __attribute__((always_inline)) static inline void
dot_block(int kv_type, const float *q, size_t q_stride, const void *keys, size_t ld, size_t j, size_t hd,
          float scale, float *scores, size_t count, const int qn, const int kn) {
    __m256 a[4][2];
    UNROLLED for (int m = 0; m < qn; m++)
        UNROLLED for (int k = 0; k < kn; k++) a[m][k] = _mm256_setzero_ps();
    for (size_t d = 0; d < hd; d += 8) {
        __m256 kv[2];
        UNROLLED for (int k = 0; k < kn; k++) kv[k] = load8(kv_type, keys, ld, j + k, d);
        UNROLLED for (int m = 0; m < qn; m++) {
            __m256 qv = _mm256_loadu_ps(q + m * q_stride + d);
            UNROLLED for (int k = 0; k < kn; k++) a[m][k] = _mm256_fmadd_ps(qv, kv[k], a[m][k]);
        }
    }
    UNROLLED for (int m = 0; m < qn; m++)
        UNROLLED for (int k = 0; k < kn; k++) scores[m * count + j + k] = hsum8(a[m][k]) * scale;
}

AVX2_FMA_F16C __attribute__((always_inline)) static inline void
scores_rows(int kv_type, const float *q, size_t q_stride, const void *keys, const void *values, size_t ld, size_t count, size_t hd,
            float scale, float *scores, const int qn) {
    const size_t stride = kv_row_bytes(kv_type, ld), row = kv_row_bytes(kv_type, hd);
    size_t j = 0;
    for (; j + 2 <= count; j += 2) {
        // Fetch the keys KEY_AHEAD rows ahead and the values of these rows, which values_rows
        // reads next, 16 dimensions at a time (a prefetch past the cache's end never faults).
        // Measured on one layer of the Phi-4 shape at 4096 positions, f16, one thread: 1.3-1.7 ms
        // with these prefetches, 3.1 ms without.
        for (size_t k = 0; k < 2; k++) {
            const char *kr = (const char *)keys + (j + k + KEY_AHEAD) * stride;
            const char *vr = (const char *)values + (j + k) * stride;
            for (size_t b = 0; b < row; b += 64) {
                _mm_prefetch(kr + b, _MM_HINT_T0);
                _mm_prefetch(vr + b, _MM_HINT_T0);
            }
        }
        dot_block(kv_type, q, q_stride, keys, ld, j, hd, scale, scores, count, qn, 2);
    }
    if (j < count) dot_block(kv_type, q, q_stride, keys, ld, j, hd, scale, scores, count, qn, 1);
}

/// acc[m] += Σ_j p[m][j] · v_j for `qn` (1…4) queries, 16 dimensions at a time in registers.
AVX2_FMA_F16C __attribute__((always_inline)) static inline void
values_rows(int kv_type, const float *p, size_t count, const void *values, size_t ld, size_t hd, float *acc,
            const int qn) {
    for (size_t d = 0; d < hd; d += 16) {
        __m256 c[4][2];
        UNROLLED for (int m = 0; m < qn; m++) {
            c[m][0] = _mm256_loadu_ps(acc + m * hd + d);
            c[m][1] = _mm256_loadu_ps(acc + m * hd + d + 8);
        }
        for (size_t j = 0; j < count; j++) {
            __m256 v0 = load8(kv_type, values, ld, j, d), v1 = load8(kv_type, values, ld, j, d + 8);
            UNROLLED for (int m = 0; m < qn; m++) {
                __m256 pm = _mm256_broadcast_ss(p + m * count + j);
                c[m][0] = _mm256_fmadd_ps(pm, v0, c[m][0]);
                c[m][1] = _mm256_fmadd_ps(pm, v1, c[m][1]);
            }
        }
        UNROLLED for (int m = 0; m < qn; m++) {
            _mm256_storeu_ps(acc + m * hd + d, c[m][0]);
            _mm256_storeu_ps(acc + m * hd + d + 8, c[m][1]);
        }
    }
}

/// One query's online-softmax step over its `count` scores (vectorized max, exp and sum).
AVX2_FMA_F16C static void softmax_step_avx2(float *s, size_t count, float *run_max, float *run_sum, float *a,
                                            size_t hd) {
    __m256 mv = _mm256_set1_ps(*run_max);
    size_t j = 0;
    for (; j + 8 <= count; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + j));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float m = _mm_cvtss_f32(h);
    for (; j < count; j++)
        if (s[j] > m) m = s[j];
    float correction = expf(*run_max - m);
    __m256 shift = _mm256_set1_ps(m), sv = _mm256_setzero_ps();
    for (j = 0; j + 8 <= count; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), shift));
        _mm256_storeu_ps(s + j, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = hsum8(sv);
    if (j < count) {
        float tail[8];
        for (size_t i = 0; i < 8; i++) tail[i] = j + i < count ? s[j + i] : m;
        _mm256_storeu_ps(tail, exp8(_mm256_sub_ps(_mm256_loadu_ps(tail), shift)));
        for (size_t i = 0; j + i < count; i++) {
            s[j + i] = tail[i];
            sum += tail[i];
        }
    }
    *run_sum = *run_sum * correction + sum;
    *run_max = m;
    if (correction != 1) {
        __m256 cv = _mm256_set1_ps(correction);
        for (size_t d = 0; d < hd; d += 8) _mm256_storeu_ps(a + d, _mm256_mul_ps(_mm256_loadu_ps(a + d), cv));
    }
}

AVX2_FMA_F16C __attribute__((always_inline)) static inline void attend_avx2(const int kv_type, const float *q, size_t q_stride, size_t nq, const void *keys,
                                      const void *values, size_t ld, size_t count, size_t hd, float scale,
                                      float *scores, float *run_max, float *run_sum, float *acc) {
    for (size_t r0 = 0; r0 < nq; r0 += 4) {
        const size_t qn = nq - r0 < 4 ? nq - r0 : 4;
        const float *qr = q + r0 * q_stride;
        float *s = scores + r0 * count, *a = acc + r0 * hd;
        switch (qn) {
        case 4: scores_rows(kv_type, qr, q_stride, keys, values, ld, count, hd, scale, s, 4); break;
        case 3: scores_rows(kv_type, qr, q_stride, keys, values, ld, count, hd, scale, s, 3); break;
        case 2: scores_rows(kv_type, qr, q_stride, keys, values, ld, count, hd, scale, s, 2); break;
        default: scores_rows(kv_type, qr, q_stride, keys, values, ld, count, hd, scale, s, 1); break;
        }
        for (size_t m = 0; m < qn; m++)
            softmax_step_avx2(s + m * count, count, run_max + r0 + m, run_sum + r0 + m, a + m * hd, hd);
        switch (qn) {
        case 4: values_rows(kv_type, s, count, values, ld, hd, a, 4); break;
        case 3: values_rows(kv_type, s, count, values, ld, hd, a, 3); break;
        case 2: values_rows(kv_type, s, count, values, ld, hd, a, 2); break;
        default: values_rows(kv_type, s, count, values, ld, hd, a, 1); break;
        }
    }
}

// One copy per element type, so that the loads in the inner loops are fixed.
AVX2_FMA_F16C static void attend_avx2_f16(const float *q, size_t q_stride, size_t nq, const void *keys,
                                          const void *values, size_t ld, size_t count, size_t hd, float scale,
                                          float *scores, float *run_max, float *run_sum, float *acc) {
    attend_avx2(P4K_KV_F16, q, q_stride, nq, keys, values, ld, count, hd, scale, scores, run_max, run_sum, acc);
}

AVX2_FMA_F16C static void attend_avx2_q8_0(const float *q, size_t q_stride, size_t nq, const void *keys,
                                           const void *values, size_t ld, size_t count, size_t hd, float scale,
                                           float *scores, float *run_max, float *run_sum, float *acc) {
    attend_avx2(P4K_KV_Q8_0, q, q_stride, nq, keys, values, ld, count, hd, scale, scores, run_max, run_sum, acc);
}

AVX2_FMA_F16C static void attend_avx2_f32(const float *q, size_t q_stride, size_t nq, const void *keys,
                                          const void *values, size_t ld, size_t count, size_t hd, float scale,
                                          float *scores, float *run_max, float *run_sum, float *acc) {
    attend_avx2(P4K_KV_F32, q, q_stride, nq, keys, values, ld, count, hd, scale, scores, run_max, run_sum, acc);
}
#endif

void p4k_softmax_step(int isa, float *scores, size_t count, float *run_max, float *run_sum, float *acc, size_t hd) {
    if (count == 0) return;
#if defined(__x86_64__)
    if (p4k_attend_vectorized(isa, hd)) {
        softmax_step_avx2(scores, count, run_max, run_sum, acc, hd);
        return;
    }
#endif
    softmax_step_scalar(scores, count, run_max, run_sum, acc, hd);
}

int p4k_attend_vectorized(int isa, size_t hd) {
#if defined(__x86_64__)
    if (isa < 0) isa = p4k_isa_best();
    uint32_t f = p4k_cpu_features();
    return isa != P4K_ISA_SCALAR && (f & P4K_CPU_AVX2) && (f & P4K_CPU_FMA) && (f & P4K_CPU_F16C) && hd % 16 == 0;
#else
    (void)isa;
    (void)hd;
    return 0;
#endif
}

void p4k_attend_tile(int isa, int kv_type, const float *q, size_t q_stride, size_t nq, const void *keys,
                     const void *values, size_t ld, size_t count, size_t hd, float scale, float *scores,
                     float *run_max, float *run_sum, float *acc) {
    if (count == 0 || nq == 0) return;
#if defined(__x86_64__)
    if (p4k_attend_vectorized(isa, hd)) {
        if (kv_type == P4K_KV_F16)
            attend_avx2_f16(q, q_stride, nq, keys, values, ld, count, hd, scale, scores, run_max, run_sum, acc);
        else if (kv_type == P4K_KV_Q8_0)
            attend_avx2_q8_0(q, q_stride, nq, keys, values, ld, count, hd, scale, scores, run_max, run_sum, acc);
        else
            attend_avx2_f32(q, q_stride, nq, keys, values, ld, count, hd, scale, scores, run_max, run_sum, acc);
        return;
    }
#endif
    attend_scalar(kv_type, q, q_stride, nq, keys, values, ld, count, hd, scale, scores, run_max, run_sum, acc);
}
