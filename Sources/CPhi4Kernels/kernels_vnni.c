// AVX-512 VNNI kernels on 256-bit vectors (AVX512-VL): `vpdpbusd` multiplies unsigned by signed
// bytes and adds each group of four products into an int32 lane, exactly (no int16 stage, no
// saturation), so one instruction does what AVX2 does with `maddubs` + `madd` + an add.
//  - Rows (one token, small batches): the transposed layout of simd.h, where 32-bit lane k of a
//    vector holds 4 bytes of block k, so `vpdpbusd` leaves block k's partial sum in lane k: eight
//    block sums per vector, no reduction at all. Q4_0 multiplies the nibbles (0…15) and subtracts
//    8·Σa; Q8_0 multiplies u = q + 128 (0…255) and subtracts 128·Σa.
//  - Panels (larger batches): Q4_0 and Q8_0 in 16-row tiles (one broadcast of 4 activation bytes
//    feeds two `vpdpbusd`), 8-row tiles for the rest; Q4_K, Q5_K and Q6_K in 8-row
//    tiles over the panels of panels.h. IQ4_XS, IQ4_NL and Q5_0 run Q8_0's tiles on their decoded
//    values, Q4_1 and Q5_1 Q4_K's and Q5_K's (on AMD Zen 5: IQ4_XS 64 tokens 128 → 301 GMAC/s
//    on 2 threads against the AVX2 tiles, which need two `maddubs` planes for 8-bit values).
//  - 512-bit panels (16 rows in one zmm, up to 8 tokens per weight load) for the byte panels
//    (Q4_0, Q8_0, IQ4_XS, IQ4_NL, Q5_0), the K-quants (Q4_K, Q5_K, Q6_K; Q4_1, Q5_1) and, with
//    AVX-512 BW's `maddubs`, Q3_K and Q2_K.
//  - The lattice IQ types on Q6_K's tiles (256- and 512-bit), their blocks decoded into Q6_K-shaped
//    panels (P4K_TILE_IQ, panels.h). AMD Zen 4 runs 512-bit operations as two 256-bit halves; Zen 5
//    does not (there, 2 threads, 64 tokens: Q8_0 262 → 359, IQ4_XS 273 → 385, Q4_0 295 → 432
//    GMAC/s against the 256-bit tiles). Both are candidates; the calibration keeps the faster.
// The integer sums are exact and the float operations are the AVX2 kernels', in their order:
// identical bits.
// (AVX-VNNI, the same instruction without AVX-512 on Intel desktop cores, could run the same code
// but no such CPU was available to check it, so it is not used.)
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#define _GNU_SOURCE
#include "panels.h"
#if defined(__x86_64__)

#define VNNI_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c"
#define AVX512_TARGET "avx512f,avx512bw,avx512vl,avx2,f16c"

// ---- Rows ------------------------------------------------------------------------------------

// `nt` ≤ 8 tokens × one Q4_0 or Q8_0 row: each group of 8 blocks is loaded and transposed once
// and multiplied by every token's transposed activations (`at`, `ldt` apart; `a`, `lda` apart, as
// quantized, for the tail blocks). `off` = the format's offset × Σa per token and block.
__attribute__((target(VNNI_TARGET), always_inline)) static inline void
rows_vnni(int q8, const uint8_t *w, size_t nb, int nt, const int8_t *a, size_t lda, const int8_t *at, size_t ldt,
          const float *ad, const int32_t *asum, const int32_t *off, float *res) {
    const size_t stride = q8 ? sizeof(p4k_block_q8_0) : sizeof(p4k_block_q4_0);
    const __m256i nib = _mm256_set1_epi8(0xF), flip = _mm256_set1_epi8((char)0x80);
    __m256 acc[8];
    for (int j = 0; j < nt; j++) acc[j] = _mm256_setzero_ps();
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *wb = w + b * stride;
        __m256i u[8];  // vector v multiplies activation vector v of the transposed layout
        if (q8) {
            for (int k = 0; k < 5; k++) _mm_prefetch((const char *)(wb + 2048 + 64 * k), _MM_HINT_T0);
            const p4k_block_q8_0 *blk = (const p4k_block_q8_0 *)wb;
            for (int half = 0; half < 2; half++) {
                __m256i v0 = p4k_load_pair(blk[0].qs + 16 * half, blk[4].qs + 16 * half);
                __m256i v1 = p4k_load_pair(blk[1].qs + 16 * half, blk[5].qs + 16 * half);
                __m256i v2 = p4k_load_pair(blk[2].qs + 16 * half, blk[6].qs + 16 * half);
                __m256i v3 = p4k_load_pair(blk[3].qs + 16 * half, blk[7].qs + 16 * half);
                P4K_TRANSPOSE4(v0, v1, v2, v3);
                u[4 * half] = _mm256_xor_si256(v0, flip);
                u[4 * half + 1] = _mm256_xor_si256(v1, flip);
                u[4 * half + 2] = _mm256_xor_si256(v2, flip);
                u[4 * half + 3] = _mm256_xor_si256(v3, flip);
            }
        } else {
            __m256i v[4];
            p4k_q4_load8(wb, v);
            for (int g = 0; g < 4; g++) {
                u[g] = _mm256_and_si256(v[g], nib);
                u[4 + g] = _mm256_and_si256(_mm256_srli_epi16(v[g], 4), nib);
            }
        }
        const __m256 sc = p4k_scales8(wb, stride);
        for (int j = 0; j < nt; j++) {
            const __m256i *ab = (const __m256i *)(at + (size_t)j * ldt + b * 32);
            __m256i s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)(off + (size_t)j * nb + b)));
            for (int v = 0; v < 8; v++) s = _mm256_dpbusd_epi32(s, u[v], _mm256_loadu_si256(ab + v));
            const __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(sc, _mm256_loadu_ps(ad + (size_t)j * nb + b)));
            acc[j] = _mm256_add_ps(acc[j], p);
        }
    }
    for (int j = 0; j < nt; j++) {
        float l[8];
        _mm256_storeu_ps(l, acc[j]);
        int32_t tail[8];
        if (q8) p4k_sums_q8_0(w + b * stride, a + (size_t)j * lda + b * 32, nb - b, tail);
        else p4k_sums_q4_0(w + b * stride, a + (size_t)j * lda + b * 32, asum + (size_t)j * nb + b, nb - b, tail);
        res[j] = p4k_finish_lanes(l, w, stride, ad + (size_t)j * nb, tail, b, nb);
    }
}

// One copy per format and token count, so that the token loops unroll.
#define ROWS_COPIES(Q8)                                                                                                \
    switch (nt) {                                                                                                      \
    case 1: rows_vnni(Q8, w, nb, 1, a, lda, at, ldt, ad, asum, off, res); break;                                       \
    case 2: rows_vnni(Q8, w, nb, 2, a, lda, at, ldt, ad, asum, off, res); break;                                       \
    case 3: rows_vnni(Q8, w, nb, 3, a, lda, at, ldt, ad, asum, off, res); break;                                       \
    case 4: rows_vnni(Q8, w, nb, 4, a, lda, at, ldt, ad, asum, off, res); break;                                       \
    default: rows_vnni(Q8, w, nb, nt, a, lda, at, ldt, ad, asum, off, res); break;                                     \
    }

__attribute__((target(VNNI_TARGET))) static void rows_vnni_any(int q8, const uint8_t *w, size_t nb, int nt,
                                                               const int8_t *a, size_t lda, const int8_t *at, size_t ldt,
                                                               const float *ad, const int32_t *asum, const int32_t *off,
                                                               float *res) {
    if (q8) {
        ROWS_COPIES(1)
    } else {
        ROWS_COPIES(0)
    }
}

// Q4_0 / Q8_0 × t activation rows, row by row, in groups of up to 8 tokens. Scratch (64-byte
// aligned): the transposed activations, then the offsets; one token of up to 8,192 columns uses
// the stack.
__attribute__((target(VNNI_TARGET))) static int legacy_rows(const p4k_job *job) {
    const int q8 = job->format == P4K_Q8_0;
    const size_t t = job->t, cols = job->cols, nb = cols / 32, rb = p4k_row_bytes(job->format, cols);
    const size_t bytes = (t * cols + t * nb * sizeof(int32_t) + 63) / 64 * 64;
    _Alignas(64) int8_t stack[36864];
    int8_t *at = bytes <= sizeof(stack) ? stack : aligned_alloc(64, bytes);
    if (!at) return -1;
    int32_t *off = (int32_t *)(at + t * cols);
    for (size_t i = 0; i < t; i++) p4k_transpose_activations(job->aq + i * cols, nb, at + i * cols);
    for (size_t i = 0; i < t * nb; i++) off[i] = (q8 ? 128 : 8) * job->asum[i];
    for (size_t r = 0; r < job->rows; r++) {
        const uint8_t *row = job->w + r * rb;
        if (r + 4 < job->rows) __builtin_prefetch(row + 4 * rb, 0, 0);
        for (size_t i = 0; i < t; i += 8) {
            const int nt = (int)(t - i < 8 ? t - i : 8);
            float res[8];
            rows_vnni_any(q8, row, nb, nt, job->aq + i * cols, cols, at + i * cols, cols, job->ad + i * nb,
                          job->asum + i * nb, off + i * nb, res);
            for (int j = 0; j < nt; j++) p4k_put(job->out + (i + (size_t)j) * job->ldo + r, res[j], job->accumulate);
        }
    }
    if (at != stack) free(at);
    return 0;
}

// ---- Panels: `nt` (≤ TILE) tokens × 8 rows over all blocks -----------------------------------

__attribute__((target(VNNI_TARGET), always_inline)) static inline void
tile_vnni(int format, const panel_t *p, size_t nb, const int8_t *a, size_t lda, const float *ad, const int32_t *asum,
          int nt, float *acc_out) {
    float lanes[TILE * 64];
    const int offset = format == P4K_Q4_0 ? 8 : format == P4K_Q8_0 ? 128 : 0;
    for (size_t k = 0; k < 8; k++) {
        __m256 acc[TILE];
        for (int j = 0; j < TILE; j++) acc[j] = _mm256_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *wb = p->w + at * p->block_bytes;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            const __m256 dw = _mm256_loadu_ps(p->d + at * 8);
            // Q6_K: element groups 0–3 and 4–7 sum separately (their 16-value scales differ).
            __m256i s32[TILE], hi[TILE];
            for (int j = 0; j < nt; j++) s32[j] = hi[j] = _mm256_set1_epi32(-offset * asum[j * nb + b]);
            for (int g = 0; g < 8; g++) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(wb + 32 * g));
                for (int j = 0; j < nt; j++) {
                    const __m256i x = bcast4(ab + j * lda + 4 * g);
                    if ((format == P4K_Q6_K || format == P4K_TILE_IQ) && g >= 4) hi[j] = _mm256_dpbusd_epi32(hi[j], wv, x);
                    else s32[j] = _mm256_dpbusd_epi32(s32[j], wv, x);
                }
            }
            if (format == P4K_Q4_K || format == P4K_Q5_K) {
                // term = d_a · ((d·sc)·Σq·a − (dmin·m)·Σa), as the K-quant row kernel computes it.
                const __m256 dm = _mm256_loadu_ps(p->dm + at * 8);
                for (int j = 0; j < nt; j++) {
                    const __m256 t1 = _mm256_mul_ps(dw, _mm256_cvtepi32_ps(s32[j]));
                    const __m256 t2 = _mm256_mul_ps(dm, _mm256_set1_ps((float)asum[j * nb + b]));
                    acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(_mm256_set1_ps(ad[j * nb + b]), _mm256_sub_ps(t1, t2)));
                }
            } else if (format == P4K_Q6_K || format == P4K_TILE_IQ) {
                // sc₀·Σ₀ q·a + sc₁·Σ₁ q·a − 32·(sc₀·A₀ + sc₁·A₁) (asum holds the A pairs): the row
                // kernel's exact integer (the lattice types: u = v + 64, multipliers m, 64·(…)).
                // The stored [sc sc] int16 pairs give sc as int32 by a shift.
                const __m256i *sv = (const __m256i *)(p->sc + at * 48);
                const __m256i sc0 = _mm256_srai_epi32(_mm256_load_si256(sv), 16);
                const __m256i sc1 = _mm256_srai_epi32(_mm256_load_si256(sv + 1), 16), sx = _mm256_load_si256(sv + 2);
                for (int j = 0; j < nt; j++) {
                    const __m256i off = _mm256_madd_epi16(sx, _mm256_set1_epi32(asum[j * nb + b]));
                    __m256i isum = _mm256_add_epi32(_mm256_mullo_epi32(s32[j], sc0), _mm256_mullo_epi32(hi[j], sc1));
                    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(off, format == P4K_TILE_IQ ? 6 : 5));
                    FLOAT_STEP(j, isum);
                }
            } else {
                for (int j = 0; j < nt; j++) FLOAT_STEP(j, s32[j]);
            }
        }
        for (int j = 0; j < nt; j++) _mm256_storeu_ps(lanes + (j * 8 + k) * 8, acc[j]);
    }
    combine_lanes(lanes, nt, acc_out);
}

__attribute__((target(VNNI_TARGET))) static void tile_vnni_any(int format, const panel_t *p, size_t nb, const int8_t *a,
                                                               size_t lda, const float *ad, const int32_t *asum, int nt,
                                                               float *o) {
    if (format == P4K_Q4_0) {
        TILE_COPIES(tile_vnni, P4K_Q4_0)
    } else if (format == P4K_Q8_0) {
        TILE_COPIES(tile_vnni, P4K_Q8_0)
    } else if (format == P4K_Q4_K) {
        TILE_COPIES(tile_vnni, P4K_Q4_K)
    } else if (format == P4K_Q5_K) {
        TILE_COPIES(tile_vnni, P4K_Q5_K)
    } else if (format == P4K_TILE_IQ) {
        TILE_COPIES(tile_vnni, P4K_TILE_IQ)
    } else {
        TILE_COPIES(tile_vnni, P4K_Q6_K)
    }
}


// ---- Panels: 16 rows (two panels) × up to TILE16 tokens, Q4_0 and Q8_0 -----------------------
// One broadcast of 4 activation bytes feeds two `vpdpbusd`; the sums start at −offset·Σa.
__attribute__((target(VNNI_TARGET), always_inline)) static inline void
tile16_vnni(const panel_t *p, const panel_t *q, size_t nb, const int8_t *a, size_t lda, const float *ad,
            const int32_t *off, int nt, float *acc_out) {
    float lanes[2 * TILE16 * 64];
    for (size_t k = 0; k < 8; k++) {
        __m256 acc0[TILE16], acc1[TILE16];
        for (int j = 0; j < TILE16; j++) acc0[j] = acc1[j] = _mm256_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *w0 = p->w + at * 256, *w1 = q->w + at * 256;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            __m256i s0[TILE16], s1[TILE16];
            for (int j = 0; j < nt; j++) s0[j] = s1[j] = _mm256_set1_epi32(-off[j * nb + b]);
            for (int g = 0; g < 8; g++) {
                const __m256i v0 = _mm256_load_si256((const __m256i *)(w0 + 32 * g));
                const __m256i v1 = _mm256_load_si256((const __m256i *)(w1 + 32 * g));
                for (int j = 0; j < nt; j++) {
                    const __m256i x = bcast4(ab + j * lda + 4 * g);
                    s0[j] = _mm256_dpbusd_epi32(s0[j], v0, x);
                    s1[j] = _mm256_dpbusd_epi32(s1[j], v1, x);
                }
            }
            const __m256 d0 = _mm256_load_ps(p->d + at * 8), d1 = _mm256_load_ps(q->d + at * 8);
            for (int j = 0; j < nt; j++) {
                const __m256 da = _mm256_set1_ps(ad[j * nb + b]);
                acc0[j] = _mm256_add_ps(acc0[j], _mm256_mul_ps(_mm256_cvtepi32_ps(s0[j]), _mm256_mul_ps(d0, da)));
                acc1[j] = _mm256_add_ps(acc1[j], _mm256_mul_ps(_mm256_cvtepi32_ps(s1[j]), _mm256_mul_ps(d1, da)));
            }
        }
        for (int j = 0; j < nt; j++) {
            _mm256_storeu_ps(lanes + (2 * j * 8 + k) * 8, acc0[j]);
            _mm256_storeu_ps(lanes + ((2 * j + 1) * 8 + k) * 8, acc1[j]);
        }
    }
    combine_lanes(lanes, 2 * nt, acc_out);  // token j: rows 0…7 at 16 j, rows 8…15 at 16 j + 8
}

__attribute__((target(VNNI_TARGET))) static void tile16_vnni_any(const panel_t *p, const panel_t *q, size_t nb,
                                                                 const int8_t *a, size_t lda, const float *ad,
                                                                 const int32_t *off, int nt, float *o) {
    switch (nt) {
    case 1: tile16_vnni(p, q, nb, a, lda, ad, off, 1, o); break;
    case 2: tile16_vnni(p, q, nb, a, lda, ad, off, 2, o); break;
    default: tile16_vnni(p, q, nb, a, lda, ad, off, 3, o); break;
    }
}

// ---- Panels, 512 bits: 16 rows × up to TILE512 tokens, the byte panels (Q4_0, Q8_0 and the formats
// decoded to Q8_0's) ----------------------------------------------------------------------------
// One zmm holds a group of 4 values of all 16 rows (panel p's 8 rows, then q's), so one broadcast
// of 4 activation bytes feeds one 512-bit `vpdpbusd`, and more tokens share each weight load than
// in 256 bits. Every row's integer sum and float steps are those of the 256-bit tiles, in the same
// order: identical bits. Whether it is faster is the CPU's business (AMD Zen 4 splits 512-bit
// operations in two; Zen 5 does not): the calibration times both.
enum { TILE512 = 8 };

__attribute__((target(AVX512_TARGET), always_inline)) static inline __m512i join256(const void *lo, const void *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)lo)),
                              _mm256_load_si256((const __m256i *)hi), 1);
}

__attribute__((target(AVX512_TARGET), always_inline)) static inline __m512 join256_ps(const float *lo, const float *hi) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_load_pd((const double *)lo)),
                                               _mm256_load_pd((const double *)hi), 1));
}

// Token j's 16 row sums of lane k into `lanes` as two 8-row halves (combine_lanes' layout: rows
// 0…7 of token j at 16 j, rows 8…15 at 16 j + 8).
__attribute__((target(AVX512_TARGET), always_inline)) static inline void store_halves(float *lanes, int j, size_t k, __m512 acc) {
    _mm256_storeu_ps(lanes + (2 * (size_t)j * 8 + k) * 8, _mm512_castps512_ps256(acc));
    _mm256_storeu_ps(lanes + ((2 * (size_t)j + 1) * 8 + k) * 8, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
}

// One copy of a 512-bit tile per token count 1…TILE512 (the token loops unroll).
#define TILE512_COPIES(CALL, ...)                                                                                      \
    switch (nt) {                                                                                                      \
    case 1: CALL(__VA_ARGS__, 1, o); break;                                                                            \
    case 2: CALL(__VA_ARGS__, 2, o); break;                                                                            \
    case 3: CALL(__VA_ARGS__, 3, o); break;                                                                            \
    case 4: CALL(__VA_ARGS__, 4, o); break;                                                                            \
    case 5: CALL(__VA_ARGS__, 5, o); break;                                                                            \
    case 6: CALL(__VA_ARGS__, 6, o); break;                                                                            \
    case 7: CALL(__VA_ARGS__, 7, o); break;                                                                            \
    default: CALL(__VA_ARGS__, 8, o); break;                                                                           \
    }


__attribute__((target(VNNI_TARGET), always_inline)) static inline void
tile16_vnni512(const panel_t *p, const panel_t *q, size_t nb, const int8_t *a, size_t lda, const float *ad,
               const int32_t *off, int nt, float *acc_out) {
    float lanes[2 * TILE512 * 64];
    for (size_t k = 0; k < 8; k++) {
        __m512 acc[TILE512];
        for (int j = 0; j < TILE512; j++) acc[j] = _mm512_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *w0 = p->w + at * 256, *w1 = q->w + at * 256;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            __m512i s[TILE512];
            for (int j = 0; j < nt; j++) s[j] = _mm512_set1_epi32(-off[j * nb + b]);
            for (int g = 0; g < 8; g++) {
                const __m512i v = join256(w0 + 32 * g, w1 + 32 * g);
                for (int j = 0; j < nt; j++) {
                    int32_t x;
                    memcpy(&x, ab + j * lda + 4 * g, 4);
                    s[j] = _mm512_dpbusd_epi32(s[j], v, _mm512_set1_epi32(x));
                }
            }
            const __m512 d = join256_ps(p->d + at * 8, q->d + at * 8);
            for (int j = 0; j < nt; j++) {
                const __m512 da = _mm512_set1_ps(ad[j * nb + b]);
                acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(_mm512_cvtepi32_ps(s[j]), _mm512_mul_ps(d, da)));
            }
        }
        for (int j = 0; j < nt; j++) store_halves(lanes, j, k, acc[j]);
    }
    combine_lanes(lanes, 2 * nt, acc_out);  // token j: rows 0…7 at 16 j, rows 8…15 at 16 j + 8
}

__attribute__((target(VNNI_TARGET))) static void tile16_vnni512_any(const panel_t *p, const panel_t *q, size_t nb,
                                                                    const int8_t *a, size_t lda, const float *ad,
                                                                    const int32_t *off, int nt, float *o) {
    TILE512_COPIES(tile16_vnni512, p, q, nb, a, lda, ad, off)
}

__attribute__((target(VNNI_TARGET))) static int byte_panels512(const p4k_job *job) {
    return p4k_panels_gemm(job, 0, tile_vnni_any, tile16_vnni512_any, TILE512);
}

// ---- Panels, 512 bits: the K-quants (Q4_K, Q5_K, Q6_K, and Q4_1 / Q5_1 decoded to the first two),
// 16 rows × up to TILE512 tokens -----------------------------------------------------------------
// The 8-row VNNI tile's arithmetic (tile_vnni) on 16 rows per zmm; identical bits.
__attribute__((target(VNNI_TARGET), always_inline)) static inline void
tile16_kq_512(int format, const panel_t *p, const panel_t *q, size_t nb, const int8_t *a, size_t lda, const float *ad,
              const int32_t *asum, int nt, float *acc_out) {
    float lanes[2 * TILE512 * 64];
    const size_t bytes = p->block_bytes;
    for (size_t k = 0; k < 8; k++) {
        __m512 acc[TILE512];
        for (int j = 0; j < TILE512; j++) acc[j] = _mm512_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const uint8_t *w0 = p->w + at * bytes, *w1 = q->w + at * bytes;
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            const __m512 dw = join256_ps(p->d + at * 8, q->d + at * 8);
            __m512i s32[TILE512], hi[TILE512];
            for (int j = 0; j < nt; j++) s32[j] = hi[j] = _mm512_setzero_si512();
            for (int g = 0; g < 8; g++) {
                const __m512i wv = join256(w0 + 32 * g, w1 + 32 * g);
                for (int j = 0; j < nt; j++) {
                    int32_t x4;
                    memcpy(&x4, ab + j * lda + 4 * g, 4);
                    const __m512i x = _mm512_set1_epi32(x4);
                    if ((format == P4K_Q6_K || format == P4K_TILE_IQ) && g >= 4) hi[j] = _mm512_dpbusd_epi32(hi[j], wv, x);
                    else s32[j] = _mm512_dpbusd_epi32(s32[j], wv, x);
                }
            }
            if (format == P4K_Q4_K || format == P4K_Q5_K) {
                const __m512 dm = join256_ps(p->dm + at * 8, q->dm + at * 8);
                for (int j = 0; j < nt; j++) {
                    const __m512 t1 = _mm512_mul_ps(dw, _mm512_cvtepi32_ps(s32[j]));
                    const __m512 t2 = _mm512_mul_ps(dm, _mm512_set1_ps((float)asum[j * nb + b]));
                    acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(_mm512_set1_ps(ad[j * nb + b]), _mm512_sub_ps(t1, t2)));
                }
            } else {  // Q6_K and the lattice types, as tile_vnni
                const int16_t *sp = p->sc + at * 48, *sq = q->sc + at * 48;
                const __m512i sc0 = _mm512_srai_epi32(join256(sp, sq), 16), sc1 = _mm512_srai_epi32(join256(sp + 16, sq + 16), 16);
                const __m512i sx = join256(sp + 32, sq + 32);
                for (int j = 0; j < nt; j++) {
                    const __m512i off = _mm512_madd_epi16(sx, _mm512_set1_epi32(asum[j * nb + b]));
                    __m512i isum = _mm512_add_epi32(_mm512_mullo_epi32(s32[j], sc0), _mm512_mullo_epi32(hi[j], sc1));
                    isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(off, format == P4K_TILE_IQ ? 6 : 5));
                    acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(ad[j * nb + b]))));
                }
            }
        }
        for (int j = 0; j < nt; j++) store_halves(lanes, j, k, acc[j]);
    }
    combine_lanes(lanes, 2 * nt, acc_out);  // token j: rows 0…7 at 16 j, rows 8…15 at 16 j + 8
}

#define KQ_TILE512(NAME, FMT)                                                                                          \
    __attribute__((target(VNNI_TARGET))) static void NAME(const panel_t *p, const panel_t *q, size_t nb,               \
                                                          const int8_t *a, size_t lda, const float *ad,                 \
                                                          const int32_t *asum, int nt, float *o) {                      \
        TILE512_COPIES(tile16_kq_512, FMT, p, q, nb, a, lda, ad, asum)                                                 \
    }
KQ_TILE512(tile16_q4k_512, P4K_Q4_K)
KQ_TILE512(tile16_q5k_512, P4K_Q5_K)
KQ_TILE512(tile16_q6k_512, P4K_Q6_K)
KQ_TILE512(tile16_iq_512, P4K_TILE_IQ)

// ---- Panels, 512 bits: Q3_K and Q2_K, 16 rows × up to TILE512 tokens (AVX-512 BW) ---------------
// The AVX2 tiles' arithmetic (gemm_avx2.c, tile_q23k_avx2) on 16 rows per zmm: the values and
// activations with the halves interleaved in pairs, int16 pair sums over the eight groups, one
// `madd` by [sc₀ sc₁] per row; the same exact integers and float steps, identical bits.
__attribute__((target(AVX512_TARGET), always_inline)) static inline void
tile16_q23k_512(int q2, const panel_t *p, const panel_t *q, size_t nb, const int8_t *a, size_t lda, const float *ad,
                const int32_t *pairs, int nt, float *acc_out) {
    float lanes[2 * TILE512 * 64];
    for (size_t k = 0; k < 8; k++) {
        __m512 acc[TILE512];
        for (int j = 0; j < TILE512; j++) acc[j] = _mm512_setzero_ps();
        for (size_t b = k; b < nb; b += 8) {
            const size_t at = slot(p, b);
            const int8_t *ab = a + at * 32;  // activations stored in panel order
            __m512i s16[TILE512];
            for (int j = 0; j < nt; j++) s16[j] = _mm512_setzero_si512();
            for (int g = 0; g < 8; g++) {
                const __m512i wv = join256(p->w + at * 256 + 32 * g, q->w + at * 256 + 32 * g);
                for (int j = 0; j < nt; j++) {
                    int32_t x;
                    memcpy(&x, ab + j * lda + 4 * g, 4);
                    s16[j] = _mm512_add_epi16(s16[j], _mm512_maddubs_epi16(wv, _mm512_set1_epi32(x)));
                }
            }
            const __m512i sx = join256(p->sc + at * 48 + 32, q->sc + at * 48 + 32);
            const __m512 dw = join256_ps(p->d + at * 8, q->d + at * 8);
            const __m512i sm = q2 ? join256(p->sc + at * 48, q->sc + at * 48) : sx;
            const __m512 dm = q2 ? join256_ps(p->dm + at * 8, q->dm + at * 8) : dw;
            for (int j = 0; j < nt; j++) {
                const __m512i pr = _mm512_set1_epi32(pairs[j * nb + b]);
                const __m512 da = _mm512_set1_ps(ad[j * nb + b]);
                if (q2) {  // term = d_a · (d·Σ sc·q·a − dmin·Σ m·A), as the Q2_K row kernel
                    const __m512 t1 = _mm512_mul_ps(dw, _mm512_cvtepi32_ps(_mm512_madd_epi16(s16[j], sx)));
                    const __m512 t2 = _mm512_mul_ps(dm, _mm512_cvtepi32_ps(_mm512_madd_epi16(sm, pr)));
                    acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(da, _mm512_sub_ps(t1, t2)));
                } else {
                    const __m512i off = _mm512_madd_epi16(sx, pr);
                    const __m512i isum = _mm512_sub_epi32(_mm512_madd_epi16(s16[j], sx), _mm512_slli_epi32(off, 2));
                    acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, da)));
                }
            }
        }
        for (int j = 0; j < nt; j++) store_halves(lanes, j, k, acc[j]);
    }
    combine_lanes(lanes, 2 * nt, acc_out);  // token j: rows 0…7 at 16 j, rows 8…15 at 16 j + 8
}

#define Q23K_TILE512(NAME, Q2)                                                                                         \
    __attribute__((target(AVX512_TARGET))) static void NAME(const panel_t *p, const panel_t *q, size_t nb,             \
                                                            const int8_t *a, size_t lda, const float *ad,               \
                                                            const int32_t *pairs, int nt, float *o) {                   \
        TILE512_COPIES(tile16_q23k_512, Q2, p, q, nb, a, lda, ad, pairs)                                               \
    }
Q23K_TILE512(tile16_q3k_512, 0)
Q23K_TILE512(tile16_q2k_512, 1)

// ---- Kernel entry points ---------------------------------------------------------------------

__attribute__((target(VNNI_TARGET))) static int legacy_panels(const p4k_job *job) {
    return p4k_panels_gemm(job, 0, tile_vnni_any, tile16_vnni_any, TILE16);
}

__attribute__((target(VNNI_TARGET))) static int kquant_panels(const p4k_job *job) {
    return p4k_panels_gemm(job, 0, tile_vnni_any, NULL, 0);
}

// Formats decoded into another format's panels (panels.c, p4k_panel_tile_format): IQ4_XS, IQ4_NL
// and Q5_0 run Q8_0's tiles (u = value + 128, one `vpdpbusd` per 4 bytes, no second plane as
// AVX2's `maddubs` needs), Q4_1 Q4_K's and Q5_1 Q5_K's. Q3_K and Q2_K keep their AVX2 tiles (their
// panels interleave a block's halves for `maddubs`).
__attribute__((target(VNNI_TARGET))) static int decoded_panels(const p4k_job *job) {
    if (p4k_panel_tile_format(job->format) == P4K_Q8_0) return p4k_panels_gemm(job, 0, tile_vnni_any, tile16_vnni_any, TILE16);
    return p4k_panels_gemm(job, 0, tile_vnni_any, NULL, 0);
}

__attribute__((target(AVX512_TARGET))) static int q23k_panels512(const p4k_job *job) {
    if (job->format == P4K_Q2_K) return p4k_panels_gemm(job, 0, p4k_tile_q23k_avx2[1], tile16_q2k_512, TILE512);
    return p4k_panels_gemm(job, 0, p4k_tile_q23k_avx2[0], tile16_q3k_512, TILE512);
}

__attribute__((target(VNNI_TARGET))) static int kquant_panels512(const p4k_job *job) {
    switch (p4k_panel_tile_format(job->format)) {
    case P4K_Q4_K: return p4k_panels_gemm(job, 0, tile_vnni_any, tile16_q4k_512, TILE512);
    case P4K_Q5_K: return p4k_panels_gemm(job, 0, tile_vnni_any, tile16_q5k_512, TILE512);
    default: return p4k_panels_gemm(job, 0, tile_vnni_any, tile16_q6k_512, TILE512);
    }
}

// The lattice IQ types (P4K_TILE_IQ): their blocks decoded into Q6_K-shaped panels (panels.c).
__attribute__((target(VNNI_TARGET))) static int iq_panels(const p4k_job *job) {
    return p4k_panels_gemm(job, 0, tile_vnni_any, NULL, 0);
}

__attribute__((target(VNNI_TARGET))) static int iq_panels512(const p4k_job *job) {
    return p4k_panels_gemm(job, 0, tile_vnni_any, tile16_iq_512, TILE512);
}

#define ONE_SMALL ((1u << P4K_CLASS_ONE) | (1u << P4K_CLASS_SMALL))
#define BATCHES ((1u << P4K_CLASS_SMALL) | (1u << P4K_CLASS_LARGE))

const p4k_kernel p4k_kernels_vnni[] = {
    {P4K_Q4_0, P4K_ISA_VNNI, ONE_SMALL, "vnni-rows", legacy_rows},
    {P4K_Q8_0, P4K_ISA_VNNI, ONE_SMALL, "vnni-rows", legacy_rows},
    {P4K_Q4_0, P4K_ISA_VNNI, BATCHES, "vnni-panels", legacy_panels},
    {P4K_Q8_0, P4K_ISA_VNNI, BATCHES, "vnni-panels", legacy_panels},
    {P4K_Q4_K, P4K_ISA_VNNI, BATCHES, "vnni-panels", kquant_panels},
    {P4K_Q5_K, P4K_ISA_VNNI, BATCHES, "vnni-panels", kquant_panels},
    {P4K_Q6_K, P4K_ISA_VNNI, BATCHES, "vnni-panels", kquant_panels},
    {P4K_IQ4_XS, P4K_ISA_VNNI, BATCHES, "vnni-panels", decoded_panels},
    {P4K_IQ4_NL, P4K_ISA_VNNI, BATCHES, "vnni-panels", decoded_panels},
    {P4K_Q5_0, P4K_ISA_VNNI, BATCHES, "vnni-panels", decoded_panels},
    {P4K_Q4_1, P4K_ISA_VNNI, BATCHES, "vnni-panels", decoded_panels},
    {P4K_Q5_1, P4K_ISA_VNNI, BATCHES, "vnni-panels", decoded_panels},
    {P4K_Q4_0, P4K_ISA_VNNI, BATCHES, "vnni512-panels", byte_panels512},
    {P4K_Q8_0, P4K_ISA_VNNI, BATCHES, "vnni512-panels", byte_panels512},
    {P4K_IQ4_XS, P4K_ISA_VNNI, BATCHES, "vnni512-panels", byte_panels512},
    {P4K_IQ4_NL, P4K_ISA_VNNI, BATCHES, "vnni512-panels", byte_panels512},
    {P4K_Q5_0, P4K_ISA_VNNI, BATCHES, "vnni512-panels", byte_panels512},
    {P4K_Q3_K, P4K_ISA_AVX512, BATCHES, "avx512-panels", q23k_panels512},
    {P4K_Q4_K, P4K_ISA_VNNI, BATCHES, "vnni512-panels", kquant_panels512},
    {P4K_Q5_K, P4K_ISA_VNNI, BATCHES, "vnni512-panels", kquant_panels512},
    {P4K_Q6_K, P4K_ISA_VNNI, BATCHES, "vnni512-panels", kquant_panels512},
    {P4K_Q4_1, P4K_ISA_VNNI, BATCHES, "vnni512-panels", kquant_panels512},
    {P4K_Q5_1, P4K_ISA_VNNI, BATCHES, "vnni512-panels", kquant_panels512},
    {P4K_IQ2_XXS, P4K_ISA_VNNI, BATCHES, "vnni-panels", iq_panels},
    {P4K_IQ2_XXS, P4K_ISA_VNNI, BATCHES, "vnni512-panels", iq_panels512},
    {P4K_IQ2_XS, P4K_ISA_VNNI, BATCHES, "vnni-panels", iq_panels},
    {P4K_IQ2_XS, P4K_ISA_VNNI, BATCHES, "vnni512-panels", iq_panels512},
    {P4K_IQ2_S, P4K_ISA_VNNI, BATCHES, "vnni-panels", iq_panels},
    {P4K_IQ2_S, P4K_ISA_VNNI, BATCHES, "vnni512-panels", iq_panels512},
    {P4K_IQ3_XXS, P4K_ISA_VNNI, BATCHES, "vnni-panels", iq_panels},
    {P4K_IQ3_XXS, P4K_ISA_VNNI, BATCHES, "vnni512-panels", iq_panels512},
    {P4K_IQ3_S, P4K_ISA_VNNI, BATCHES, "vnni-panels", iq_panels},
    {P4K_IQ3_S, P4K_ISA_VNNI, BATCHES, "vnni512-panels", iq_panels512},
    {P4K_IQ1_S, P4K_ISA_VNNI, BATCHES, "vnni-panels", iq_panels},
    {P4K_IQ1_S, P4K_ISA_VNNI, BATCHES, "vnni512-panels", iq_panels512},
    {P4K_IQ1_M, P4K_ISA_VNNI, BATCHES, "vnni-panels", iq_panels},
    {P4K_IQ1_M, P4K_ISA_VNNI, BATCHES, "vnni512-panels", iq_panels512},
    {P4K_Q2_K, P4K_ISA_AVX512, BATCHES, "avx512-panels", q23k_panels512},
    {0, 0, 0, NULL, NULL},
};
#endif
