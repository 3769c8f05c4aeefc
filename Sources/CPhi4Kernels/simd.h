// Vector helpers shared by the AVX2 and VNNI kernels (private to CPhi4Kernels).
//
// Horizontal reductions:
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
#include "blocks.h"
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

// Eight fp16 block scales at `stride` bytes apart, widened to f32. The halves are gathered in
// general-purpose registers (shifts and ors), which leaves the vector units to the dot products.
__attribute__((target("avx2,f16c"))) static inline __m256 p4k_scales8(const uint8_t *row, size_t stride) {
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

// The transposed layout of the row kernels (kernels_avx2.c, kernels_vnni.c): they read eight blocks
// at a time and transpose them in registers (4 bytes of each block side by side, as the panels
// hold rows), so that one vector holds a group of elements of all eight blocks and a block's
// products add up vertically, with no horizontal reduction. The activations are rearranged to
// match once per call.
//
// Transposed activation layout, per group of 8 blocks (256 bytes): vector v = 0…7 (32 bytes),
// element group g = v % 4 of the low (v < 4) or high (v ≥ 4) half of each block:
// byte 4k + m of vector v = a[32k + 16·(v / 4) + 4g + m], k = block 0…7, m = 0…3.
// The same 4×4 transpose as the weights': for each half, blocks k and k + 4 share a vector.
__attribute__((target("avx2"))) static inline void p4k_transpose_activations(const int8_t *a, size_t nb, int8_t *t) {
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
__attribute__((target("avx2"), always_inline)) static inline void p4k_q4_load8(const uint8_t *wb, __m256i v[4]) {
    _mm_prefetch((const char *)(wb + 2048), _MM_HINT_T0);
    _mm_prefetch((const char *)(wb + 2112), _MM_HINT_T0);
    _mm_prefetch((const char *)(wb + 2176), _MM_HINT_T0);
    const p4k_block_q4_0 *blk = (const p4k_block_q4_0 *)wb;  // blocks k and k + 4 share a vector
    __m256i v0 = p4k_load_pair(blk[0].qs, blk[4].qs), v1 = p4k_load_pair(blk[1].qs, blk[5].qs);
    __m256i v2 = p4k_load_pair(blk[2].qs, blk[6].qs), v3 = p4k_load_pair(blk[3].qs, blk[7].qs);
    P4K_TRANSPOSE4(v0, v1, v2, v3);
    v[0] = v0;
    v[1] = v1;
    v[2] = v2;
    v[3] = v3;
}


// ---- Decoding the low-bit formats (kernels_lowbit_avx2.c, the decoded panels of panels.c) ------

// The 16 IQ4 values in both 128-bit lanes (for the byte shuffle).
__attribute__((target("avx2"))) static inline __m256i p4k_iq4_table(void) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p4k_iq4nl_values);
    return _mm256_set_m128i(t, t);
}

// Σ w·a per 32-bit group of four, for signed weights w (|w| ≤ 127) and activations a.
__attribute__((target("avx2"))) static inline __m256i p4k_dot_signed(__m256i w, __m256i a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)), _mm256_set1_epi16(1));
}

// The 32 values of a 16-byte nibble block in element order: low nibbles (elements 0…15) in the low
// lane, high nibbles (16…31) in the high lane.
__attribute__((target("avx2"))) static inline __m256i p4k_nibbles32(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0xF));
}

// The fifth bits of a Q5 block (bit e of the 32-bit qh → byte e) as 0x10 bytes.
__attribute__((target("avx2"))) static inline __m256i p4k_fifth_bits(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h),
                                               _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// IQ4_XS's eight sub-block scales (6 bits, minus 32) as int32 lanes: low 4 bits at bits 4j of
// scales_l, high 2 bits at bits 2j of scales_h (as p4k_iq4xs_scales).
__attribute__((target("avx2"))) static inline __m256i p4k_iq4xs_scales8(const p4k_block_iq4_xs *x) {
    uint32_t l;
    memcpy(&l, x->scales_l, 4);
    const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)l), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                        _mm256_set1_epi32(0xF));
    const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(p4k_load_u16(&x->scales_h)), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                                        _mm256_set1_epi32(3));
    return _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
}

// Q3_K's sixteen 6-bit scales, minus 32, as int16 lanes (as p4k_q3k_scales, in registers).
__attribute__((target("avx2"))) static inline __m256i p4k_q3k_scales16(const uint8_t s[12]) {
    // Low 4 bits: scale j < 8 from byte j's low nibble, j ≥ 8 from byte j − 8's high nibble. High 2
    // bits: bits 2g…2g+1 of byte 8 + (j % 4) for g = j / 4, one 32-bit lane per g (srlv).
    uint64_t lo;
    uint32_t hi;
    memcpy(&lo, s, 8);
    memcpy(&hi, s + 8, 4);
    const __m128i l = _mm_cvtsi64_si128((long long)lo);
    const __m128i low = _mm_and_si128(_mm_unpacklo_epi64(l, _mm_srli_epi16(l, 4)), _mm_set1_epi8(0x0F));
    const __m128i h = _mm_srlv_epi32(_mm_set1_epi32((int)hi), _mm_setr_epi32(0, 2, 4, 6));
    const __m128i high = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi8(3)), 4);
    return _mm256_cvtepi8_epi16(_mm_sub_epi8(_mm_or_si128(low, high), _mm_set1_epi8(32)));
}

// Bits 2s…2s+1 of every byte (s = 0…3) as 0…3.
__attribute__((target("avx2"), always_inline)) static inline __m256i p4k_crumbs(__m256i v, int s) {
    const __m256i three = _mm256_set1_epi8(3);
    switch (s) {
    case 0: return _mm256_and_si256(v, three);
    case 1: return _mm256_and_si256(_mm256_srli_epi16(v, 2), three);
    case 2: return _mm256_and_si256(_mm256_srli_epi16(v, 4), three);
    default: return _mm256_and_si256(_mm256_srli_epi16(v, 6), three);
    }
}

// Bit j of every byte moved to bit 2 (value 4; 16-bit shifts by at most 5 keep it in its byte).
__attribute__((target("avx2"), always_inline)) static inline __m256i p4k_bit_to_4(__m256i v, int j) {
    const __m256i four = _mm256_set1_epi8(4);
    switch (j) {
    case 0: return _mm256_and_si256(_mm256_slli_epi16(v, 2), four);
    case 1: return _mm256_and_si256(_mm256_slli_epi16(v, 1), four);
    case 2: return _mm256_and_si256(v, four);
    case 3: return _mm256_and_si256(_mm256_srli_epi16(v, 1), four);
    case 4: return _mm256_and_si256(_mm256_srli_epi16(v, 2), four);
    case 5: return _mm256_and_si256(_mm256_srli_epi16(v, 3), four);
    case 6: return _mm256_and_si256(_mm256_srli_epi16(v, 4), four);
    default: return _mm256_and_si256(_mm256_srli_epi16(v, 5), four);
    }
}
#endif
#endif
