// Horizontal reductions shared by the AVX2 row kernels (private to CPhi4Kernels).
//
// A row kernel ends each group of eight blocks with eight vectors of partial integer sums, one
// vector per block, and needs the eight exact block sums side by side. `hadd` does that in a
// few instructions but is microcoded on several x86 cores (on AMD Zen 3 one vphaddd costs as much
// as four adds); these use in-lane unpacks and adds, and cross the two
// 128-bit lanes once at the end. Integer sums are exact whatever the order, so the results equal
// the hadd versions' bit for bit.
#ifndef P4K_SIMD_H
#define P4K_SIMD_H
#if defined(__x86_64__)
#include <immintrin.h>

// Eight vectors of eight int32 → one vector of the eight vectors' sums, in order.
__attribute__((target("avx2"))) static inline __m256i p4k_reduce8_i32(__m256i s0, __m256i s1, __m256i s2, __m256i s3,
                                                                     __m256i s4, __m256i s5, __m256i s6, __m256i s7) {
    // Per lane: [s0 s1 s0 s1] partial sums, then [s0 s1 s2 s3].
    const __m256i t01 = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
    const __m256i t23 = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
    const __m256i t45 = _mm256_add_epi32(_mm256_unpacklo_epi32(s4, s5), _mm256_unpackhi_epi32(s4, s5));
    const __m256i t67 = _mm256_add_epi32(_mm256_unpacklo_epi32(s6, s7), _mm256_unpackhi_epi32(s6, s7));
    const __m256i a = _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
    const __m256i b = _mm256_add_epi32(_mm256_unpacklo_epi64(t45, t67), _mm256_unpackhi_epi64(t45, t67));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

// Eight vectors of sixteen int16 (maddubs products) → the eight vectors' sums as int32, in order.
// Precondition: |every element| ≤ 3810 (two products of a 4-bit unsigned weight and an int8
// activation in −127…127), so that the in-lane sums of eight elements stay within int16
// (8 · 3810 = 30480 < 32767); the last step adds the two lanes' halves in int32.
__attribute__((target("avx2"))) static inline __m256i p4k_reduce8_i16(__m256i p0, __m256i p1, __m256i p2, __m256i p3,
                                                                     __m256i p4, __m256i p5, __m256i p6, __m256i p7) {
    // Per lane, int16: [p0 p1 p0 p1 p0 p1 p0 p1] (sums of 2), [p0 p1 p2 p3 p0 p1 p2 p3] (of 4),
    // [p0 … p7] (of 8).
    const __m256i a01 = _mm256_add_epi16(_mm256_unpacklo_epi16(p0, p1), _mm256_unpackhi_epi16(p0, p1));
    const __m256i a23 = _mm256_add_epi16(_mm256_unpacklo_epi16(p2, p3), _mm256_unpackhi_epi16(p2, p3));
    const __m256i a45 = _mm256_add_epi16(_mm256_unpacklo_epi16(p4, p5), _mm256_unpackhi_epi16(p4, p5));
    const __m256i a67 = _mm256_add_epi16(_mm256_unpacklo_epi16(p6, p7), _mm256_unpackhi_epi16(p6, p7));
    const __m256i b0 = _mm256_add_epi16(_mm256_unpacklo_epi32(a01, a23), _mm256_unpackhi_epi32(a01, a23));
    const __m256i b1 = _mm256_add_epi16(_mm256_unpacklo_epi32(a45, a67), _mm256_unpackhi_epi32(a45, a67));
    const __m256i c = _mm256_add_epi16(_mm256_unpacklo_epi64(b0, b1), _mm256_unpackhi_epi64(b0, b1));
    // Pair each lane's value of block k with the other lane's, then madd adds the pair in int32.
    const __m256i sw = _mm256_permute2x128_si256(c, c, 0x01);
    const __m256i m = _mm256_blend_epi32(_mm256_unpacklo_epi16(c, sw), _mm256_unpackhi_epi16(c, sw), 0xF0);
    return _mm256_madd_epi16(m, _mm256_set1_epi16(1));
}

// In-lane 4×4 transpose of 32-bit elements across four vectors: afterwards vector g holds 32-bit
// element g of each input, per 128-bit lane (a b c d order).
#define P4K_TRANSPOSE4(a, b, c, d)                                                                                     \
    do {                                                                                                               \
        __m256i t0_ = _mm256_unpacklo_epi32(a, b), t1_ = _mm256_unpackhi_epi32(a, b);                                  \
        __m256i t2_ = _mm256_unpacklo_epi32(c, d), t3_ = _mm256_unpackhi_epi32(c, d);                                  \
        a = _mm256_unpacklo_epi64(t0_, t2_);                                                                           \
        b = _mm256_unpackhi_epi64(t0_, t2_);                                                                           \
        c = _mm256_unpacklo_epi64(t1_, t3_);                                                                           \
        d = _mm256_unpackhi_epi64(t1_, t3_);                                                                           \
    } while (0)

// 16 bytes at `lo` in the low lane, 16 bytes at `hi` in the high lane.
__attribute__((target("avx2"))) static inline __m256i p4k_load_pair(const void *lo, const void *hi) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)lo)),
                                   _mm_loadu_si128((const __m128i *)hi), 1);
}
#endif
#endif
