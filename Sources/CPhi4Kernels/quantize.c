// Quantizers for the formats built from scalar blocks (Q4_0 … Q8_0, Q2_K … Q6_K, IQ4_NL, IQ4_XS)
// with and without an importance matrix, computing what llama.cpp's quantizer computes, operation
// for operation, so that the bytes written are the same (`tools/compare_llama_quantize.py`).
//
// Every format follows one pattern: per small group (16 or 32 values) a scale (and for the
// "_1" and K types with mins, a min) is chosen by a short search for the least weighted squared
// error; the group scales are then themselves quantized against one fp16 super-block scale, and
// the values rounded again against the stored scales. The weights of the error are the importance
// matrix's column means times sqrt(σ² + x²) when one is given, else a function of x.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#include "CPhi4Kernels.h"
#include "blocks.h"
#include "quantize.h"
#include <float.h>
#include <math.h>
#include <string.h>

#define ALL_ZERO 1e-15f  // a group whose largest magnitude is below this is all zeros

// ---- Scale searches ---------------------------------------------------------------------------

// The value of largest magnitude (the first of equal ones); its magnitude through `amax`.
static float signed_max(int n, const float *x, float *amax) {
    float max = 0, a = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > a) {
            a = ax;
            max = x[i];
        }
    }
    *amax = a;
    return max;
}

// Symmetric: values l in −nmax…nmax−1 (stored as l + nmax) and a signed scale. `rmse` 0: the
// plain scale −max/nmax; 1: weights `qw` (x² without), least squares over 19 candidate scales
// around nmax/max.
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L, int rmse, const float *qw) {
    float amax;
    const float max = signed_max(n, x, &amax);
    if (amax < ALL_ZERO) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = -nmax / max;
    if (rmse == 0) {
        for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest(iscale * x[i]))));
        return 1 / iscale;
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(-nmax, imin(nmax - 1, nearest(iscale * x[i])));
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q3_K's symmetric search without an importance matrix: the plain scale, then up to five passes
// moving single values to their best level (weights x²). L holds l + nmax.
static float fit_symmetric_refined(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = signed_max(n, x, &amax);
    if (amax < ALL_ZERO) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int l = imax(-nmax, imin(nmax - 1, nearest(x[i] * sl2 / slx)));
                if (l != L[i]) {
                    slx += w * x[i] * l;
                    sl2 += w * l * l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric: values 0…nmax, a scale and a min ≤ 0 (returned negated through `neg_min`), chosen
// among nstep + 1 candidate scales (rmin + rdelta·k + nmax)/(max − min) by the weighted error
// (squared, or absolute with `mad`). Without `w` the weights are x².
static float fit_asymmetric(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, uint8_t *aux,
                            float rmin, float rdelta, int nstep, int mad) {
#define W(i) (w ? w[i] : x[i] * x[i])
    float min = x[0], max = x[0], sum_w = W(0), sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float wi = W(i);
        sum_w += wi;
        sum_x += wi * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)imax(0, imin(nmax, nearest(iscale * (x[i] - min))));
        float diff = scale * L[i] + min - x[i];
        diff = mad ? fabsf(diff) : diff * diff;
        best += W(i) * diff;
    }
    if (nstep < 1) {
        *neg_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(0, imin(nmax, nearest(iscale * (x[i] - min))));
            aux[i] = (uint8_t)l;
            const float wi = W(i);
            sum_l += wi * l;
            sum_l2 += wi * l * l;
            sum_xl += wi * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float s = (sum_w * sum_xl - sum_x * sum_l) / D, m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (m > 0) {
                m = 0;
                s = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = s * aux[i] + m - x[i];
                diff = mad ? fabsf(diff) : diff * diff;
                err += W(i) * diff;
            }
            if (err < best) {
                memcpy(L, aux, (size_t)n);
                best = err;
                scale = s;
                min = m;
            }
        }
    }
#undef W
    *neg_min = -min;
    return scale;
}

// Positive values (group scales or mins) to 0…nmax against one scale: 9 candidate scales, then up
// to five passes moving single values to their best level, weights `qw`.
float p4k_fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++) max = fmaxf(max, x[i]);
    if (max < ALL_ZERO) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)nearest(iscale * x[i]);
    const float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * L[i];
        best += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max, scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            const int l = imin(nmax, nearest(iscale_is * x[i]));
            const float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best) {
            best = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imin(nmax, nearest(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * l;
        suml2 += qw[i] * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * L[i], sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                const int l = imin(nmax, nearest(x[i] * sl2 / slx));
                if (l != L[i]) {
                    slx += w * x[i] * l;
                    sl2 += w * l * l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// The index of the entry of the sorted table `val` nearest to x (ties to the lower).
static inline int nearest_entry(int n, const int8_t *val, float x) {
    if (x <= val[0]) return 0;
    if (x >= val[n - 1]) return n - 1;
    int lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < val[mid]) hi = mid;
        else lo = mid;
    }
    return x - val[hi - 1] < val[hi] - x ? hi - 1 : hi;
}

// Importance weights of a group: qw · sqrt(σ² + x²).
static inline void importance(const float *qw, const float *x, float sigma2, float *w, int n) {
    for (int l = 0; l < n; l++) w[l] = qw[l] * sqrtf(sigma2 + x[l] * x[l]);
}

static inline float sum_squares(const float *x, int n) {
    float s = 0;
    for (int j = 0; j < n; j++) s += x[j] * x[j];
    return s;
}

// ---- Packing ----------------------------------------------------------------------------------

// Four 2-bit planes: value 128h + 32s + l is bits 2s…2s+1 of qs[32h + l] (Q2_K, Q3_K).
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q3_K: 16 signed 6-bit scales (stored + 32): low nibbles in bytes 0…7, high 2 bits in 8…11.
static void pack_q3k_scales(uint8_t *sc, int j, int l) {
    if (j < 8) sc[j] = (uint8_t)(l & 0xF);
    else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
    sc[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

static int q3k_scale(const uint8_t *sc, int j) {
    int8_t s = (int8_t)(j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4);
    return (int8_t)(s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

// Q3_K's values (L in 0…7 after rounding against the stored scales) to hmask + 2-bit planes.
static void finish_q3k(p4k_block_q3_k *y, const float *x, int8_t *L) {
    const float d0 = p4k_fp16_to_f32(y->d);
    for (int j = 0; j < 16; j++) {
        const float d = d0 * q3k_scale(y->scales, j);
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(imax(-4, imin(3, nearest(x[16 * j + i] / d))) + 4);
    }
    memset(y->hmask, 0, 32);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < 256; j++) {
        if (L[j] > 3) {
            y->hmask[m] |= hm;
            L[j] -= 4;
        }
        if (++m == 32) {
            m = 0;
            hm <<= 1;
        }
    }
    pack_2bit((const uint8_t *)L, y->qs);
}

// Q4_K / Q5_K: 6-bit scale and min of sub-block j.
static void pack_k4_scales(uint8_t *sc, int j, uint8_t ls, uint8_t lm) {
    if (j < 4) {
        sc[j] = ls;
        sc[j + 4] = lm;
    } else {
        sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
        sc[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

// Q4_K / Q5_K: values against the stored scales, then nibbles (and Q5_K's fifth bits).
static void finish_k45(uint8_t *block, const float *x, uint8_t *L, int bits) {
    p4k_block_q4_k *b4 = (p4k_block_q4_k *)block;  // Q5_K: the same first fields
    p4k_block_q5_k *b5 = (p4k_block_q5_k *)block;
    const int nmax = bits == 4 ? 15 : 31;
    const float d0 = p4k_fp16_to_f32(b4->d), m0 = p4k_fp16_to_f32(b4->dmin);
    uint8_t s8[8], m8[8];
    p4k_kscales_bytes(b4->scales, s8, m8);
    for (int j = 0; j < 8; j++) {
        const float d = d0 * s8[j];
        if (!d) continue;
        const float dm = m0 * m8[j];
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)imax(0, imin(nmax, nearest((x[32 * j + l] + dm) / d)));
    }
    // Pairs of sub-blocks share 32 bytes: low nibbles = the first, high nibbles = the second;
    // Q5_K's fifth bits go to qh (bit j of byte l = value l of sub-block j).
    uint8_t *qh = b5->qh, *qs = bits == 4 ? b4->qs : b5->qs;
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

// Q5_0 / Q5_1 nibbles and fifth bits of 32 values L (0…31).
static void pack_5bit(const uint8_t *L, uint8_t *qs, uint8_t *qh_bytes) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((L[j] & 0xF) | ((L[j + 16] & 0xF) << 4));
        qh |= (uint32_t)((L[j] & 0x10) >> 4) << j;
        qh |= (uint32_t)((L[j + 16] & 0x10) >> 4) << (j + 16);
    }
    memcpy(qh_bytes, &qh, 4);
}

// ---- Q4_1 (the reference rounding; the others are in formats.c) ------------------------------

void p4k_quantize_q4_1(const float *x, void *out, size_t n) {
    p4k_block_q4_1 *y = out;
    for (size_t b = 0; b < n / 32; b++, x += 32, y++) {
        float lo = FLT_MAX, hi = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        const float d = (hi - lo) / 15, id = d ? 1.0f / d : 0.0f;
        y->d = p4k_f32_to_fp16(d);
        y->m = p4k_f32_to_fp16(lo);
        for (int j = 0; j < 16; j++) {
            const float x0 = (x[j] - lo) * id, x1 = (x[16 + j] - lo) * id;
            int a = (int8_t)(x0 + 0.5f), c = (int8_t)(x1 + 0.5f);
            y->qs[j] = (uint8_t)(imin(15, a) | (imin(15, c) << 4));
        }
    }
}

// ---- K-quants without an importance matrix (llama.cpp's reference rounding) -----------------

static void q2k_reference(const float *x, p4k_block_q2_k *y) {
    uint8_t L[256], aux[16];
    float w[16], mins[16], scales[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
        scales[j] = fit_asymmetric(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], aux, -0.5f, 0.1f, 15, 1);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
        const float iscale = 15.0f / max_scale;
        for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)nearest(iscale * scales[j]);
        y->d = p4k_f32_to_fp16(max_scale / 15.0f);
    } else {
        memset(y->scales, 0, 16);
        y->d = p4k_f32_to_fp16(0.0f);
    }
    if (max_min > 0) {
        const float iscale = 15.0f / max_min;
        for (int j = 0; j < 16; j++) y->scales[j] |= (uint8_t)(nearest(iscale * mins[j]) << 4);
        y->dmin = p4k_f32_to_fp16(max_min / 15.0f);
    } else {
        y->dmin = p4k_f32_to_fp16(0.0f);
    }
    for (int j = 0; j < 16; j++) {
        const float d = p4k_fp16_to_f32(y->d) * (y->scales[j] & 0xF);
        if (!d) continue;
        const float dm = p4k_fp16_to_f32(y->dmin) * (y->scales[j] >> 4);
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)imax(0, imin(3, nearest((x[16 * j + i] + dm) / d)));
    }
    pack_2bit(L, y->qs);
}

static void q3k_reference(const float *x, p4k_block_q3_k *y) {
    int8_t L[256];
    float scales[16], max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_symmetric_refined(16, 4, x + 16 * j, L + 16 * j);
        const float s = fabsf(scales[j]);
        if (s > amax) {
            amax = s;
            max_scale = scales[j];
        }
    }
    memset(y->scales, 0, 12);
    if (max_scale) {
        const float iscale = -32.0f / max_scale;
        for (int j = 0; j < 16; j++) {
            int8_t l = (int8_t)nearest(iscale * scales[j]);
            l = (int8_t)(imax(-32, imin(31, l)) + 32);
            pack_q3k_scales(y->scales, j, l);
        }
        y->d = p4k_f32_to_fp16(1 / iscale);
    } else {
        y->d = p4k_f32_to_fp16(0.0f);
    }
    finish_q3k(y, x, L);
}

static void k45_reference(const float *x, uint8_t *y, int bits) {
    const int nmax = bits == 4 ? 15 : 31;
    uint8_t L[256], aux[32];
    float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        const float av = sqrtf(sum_squares(xs, 32) / 32);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
        scales[j] = bits == 4 ? fit_asymmetric(32, nmax, xs, w, L + 32 * j, &mins[j], aux, -1.0f, 0.1f, 20, 0)
                              : fit_asymmetric(32, nmax, xs, w, L + 32 * j, &mins[j], aux, -0.5f, 0.1f, 15, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    p4k_block_q4_k *b = (p4k_block_q4_k *)y;
    memset(b->scales, 0, sizeof(b->scales));
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest(inv_scale * scales[j]), lm = (uint8_t)nearest(inv_min * mins[j]);
        pack_k4_scales(b->scales, j, ls > 63 ? 63 : ls, lm > 63 ? 63 : lm);
    }
    b->d = p4k_f32_to_fp16(max_scale / 63.0f);
    b->dmin = p4k_f32_to_fp16(max_min / 63.0f);
    finish_k45(y, x, L, bits);
}

// Q6_K: signed 6-bit values per 16 and signed 8-bit scales; `qw` the importance (NULL: x²).
static void q6k_block(const float *x, p4k_block_q6_k *y, const float *qw) {
    int8_t L[256];
    float scales[16], max_scale = 0, max_abs = 0;
    for (int b = 0; b < 16; b++) {
        scales[b] = fit_symmetric(16, 32, x + 16 * b, L + 16 * b, 1, qw ? qw + 16 * b : NULL);
        if (fabsf(scales[b]) > max_abs) {
            max_abs = fabsf(scales[b]);
            max_scale = scales[b];
        }
    }
    memset(y, 0, sizeof *y);
    if (max_abs < ALL_ZERO) return;
    const float iscale = -128.0f / max_scale;
    y->d = p4k_f32_to_fp16(1 / iscale);
    for (int b = 0; b < 16; b++) y->scales[b] = (int8_t)imin(127, nearest(iscale * scales[b]));
    const float d0 = p4k_fp16_to_f32(y->d);
    for (int b = 0; b < 16; b++) {
        const float d = d0 * y->scales[b];
        if (!d) continue;
        for (int l = 0; l < 16; l++) L[16 * b + l] = (int8_t)(imax(-32, imin(31, nearest(x[16 * b + l] / d))) + 32);
    }
    uint8_t *ql = y->ql, *qh = y->qh;
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
        switch (format) {
        case P4K_Q2_K: q2k_reference(x, (p4k_block_q2_k *)y); break;
        case P4K_Q3_K: q3k_reference(x, (p4k_block_q3_k *)y); break;
        case P4K_Q4_K: k45_reference(x, y, 4); break;
        case P4K_Q5_K: k45_reference(x, y, 5); break;
        case P4K_Q6_K: q6k_block(x, (p4k_block_q6_k *)y, NULL); break;
        default: break;
        }
    }
}

// ---- K-quants with an importance matrix -------------------------------------------------------

static void q2k_weighted(const float *x, p4k_block_q2_k *y, const float *qw) {
    uint8_t L[256], aux[16], Ls[16], Lm[16];
    float mins[16], scales[16], sw[16], w[16];
    const float sigma2 = sum_squares(x, 256) / 256;
    for (int j = 0; j < 16; j++) {
        importance(qw + 16 * j, x + 16 * j, sigma2, w, 16);
        sw[j] = 0;
        for (int l = 0; l < 16; l++) sw[j] += w[l];
        scales[j] = fit_asymmetric(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], aux, -0.9f, 0.05f, 36, 0);
    }
    y->d = p4k_f32_to_fp16(p4k_fit_positive(16, 15, scales, Ls, sw));
    y->dmin = p4k_f32_to_fp16(p4k_fit_positive(16, 15, mins, Lm, sw));
    const float dm = p4k_fp16_to_f32(y->d), mm = p4k_fp16_to_f32(y->dmin);
    for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
    for (int j = 0; j < 16; j++) {
        const float d = dm * (y->scales[j] & 0xF);
        if (!d) continue;
        const float m = mm * (y->scales[j] >> 4);
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)imax(0, imin(3, nearest((x[16 * j + i] + m) / d)));
    }
    pack_2bit(L, y->qs);
}

static void q3k_weighted(const float *x, p4k_block_q3_k *y, const float *qw) {
    int8_t L[256], Ls[16];
    float scales[16], w[16], sw[16];
    const float sigma2 = 2 * sum_squares(x, 256) / 256;
    for (int j = 0; j < 16; j++) {
        importance(qw + 16 * j, x + 16 * j, sigma2, w, 16);
        float s = 0;
        for (int l = 0; l < 16; l++) s += w[l];
        sw[j] = s;
        scales[j] = fit_symmetric(16, 4, x + 16 * j, L + 16 * j, 1, w);
    }
    memset(y->scales, 0, 12);
    const float d_block = fit_symmetric(16, 32, scales, Ls, 1, sw);
    for (int j = 0; j < 16; j++) pack_q3k_scales(y->scales, j, Ls[j]);
    y->d = p4k_f32_to_fp16(d_block);
    finish_q3k(y, x, L);
}

static void k45_weighted(const float *x, uint8_t *y, const float *qw, int bits) {
    const int nmax = bits == 4 ? 15 : 31;
    uint8_t L[256], aux[32], Ls[8], Lm[8];
    float w[32], sw[8], mins[8], scales[8];
    const float sigma2 = 2 * sum_squares(x, 256) / 256;
    for (int j = 0; j < 8; j++) {
        importance(qw + 32 * j, x + 32 * j, sigma2, w, 32);
        float s = 0;
        for (int l = 0; l < 32; l++) s += w[l];
        sw[j] = s;
        scales[j] = fit_asymmetric(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], aux, -0.9f, 0.05f, 36, 0);
    }
    const float d_block = p4k_fit_positive(8, 63, scales, Ls, sw), m_block = p4k_fit_positive(8, 63, mins, Lm, sw);
    p4k_block_q4_k *b = (p4k_block_q4_k *)y;
    memset(b->scales, 0, sizeof(b->scales));
    // Q5_K caps the 6-bit codes at 63; Q4_K stores them as they come (they never exceed it).
    for (int j = 0; j < 8; j++)
        pack_k4_scales(b->scales, j, bits == 5 && Ls[j] > 63 ? 63 : Ls[j], bits == 5 && Lm[j] > 63 ? 63 : Lm[j]);
    b->d = p4k_f32_to_fp16(d_block);
    b->dmin = p4k_f32_to_fp16(m_block);
    finish_k45(y, x, L, bits);
}

// ---- 32-value formats with an importance matrix ----------------------------------------------

// Q4_0 / Q5_0: one scale; `out` blocks of the one or the other.
static void q_0_weighted(const float *x, uint8_t *out, size_t n, const float *qw, int bits) {
    const float sigma2 = sum_squares(x, (int)n) / (float)n;
    float w[32];
    int8_t L[32];
    for (size_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        importance(qw + 32 * b, xb, sigma2, w, 32);
        const float d = fit_symmetric(32, bits == 4 ? 8 : 16, xb, L, 1, w);
        if (bits == 4) {
            p4k_block_q4_0 *y = (p4k_block_q4_0 *)out + b;
            y->d = p4k_f32_to_fp16(d);
            for (int j = 0; j < 16; j++) y->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
        } else {
            p4k_block_q5_0 *y = (p4k_block_q5_0 *)out + b;
            y->d = p4k_f32_to_fp16(d);
            pack_5bit((const uint8_t *)L, y->qs, y->qh);
        }
    }
}

// Q4_1 / Q5_1: scale and min; `out` blocks of the one or the other.
static void q_1_weighted(const float *x, uint8_t *out, size_t n, const float *qw, int bits) {
    const float sigma2 = sum_squares(x, (int)n) / (float)n;
    float w[32], min;
    uint8_t L[32], aux[32];
    for (size_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        importance(qw + 32 * b, xb, sigma2, w, 32);
        const float d = fit_asymmetric(32, bits == 4 ? 15 : 31, xb, w, L, &min, aux, -0.9f, 0.05f, 36, 0);
        if (bits == 4) {
            p4k_block_q4_1 *y = (p4k_block_q4_1 *)out + b;
            y->d = p4k_f32_to_fp16(d);
            y->m = p4k_f32_to_fp16(-min);
            for (int j = 0; j < 16; j++) y->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
        } else {
            p4k_block_q5_1 *y = (p4k_block_q5_1 *)out + b;
            y->d = p4k_f32_to_fp16(d);
            y->m = p4k_f32_to_fp16(-min);
            pack_5bit(L, y->qs, y->qh);
        }
    }
}

// ---- IQ4_NL / IQ4_XS: 16 non-uniform levels -----------------------------------------------------

// One super-block of `size` values (32: IQ4_NL, 256: IQ4_XS) in groups of 32; `qw` may be NULL
// (weights x²). IQ4_XS stores signed 6-bit group scales against an fp16 super-block scale.
static void iq4_block(int size, const float *x, uint16_t *dh, uint8_t *q4, uint16_t *scales_h, uint8_t *scales_l,
                      const float *qw) {
    const int8_t *values = p4k_iq4nl_values;
    const int ntry = 7;
    float sigma2 = sum_squares(x, size) * (2.0f / size);
    float scales[8], w[32];
    uint8_t L[256];
    memset(q4, 0, (size_t)size / 2);
    *dh = p4k_f32_to_fp16(0.0f);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < size / 32; ib++) {
        const float *xb = x + 32 * ib;
        uint8_t *Lb = L + 32 * ib;
        if (qw) importance(qw + 32 * ib, xb, sigma2, w, 32);
        else
            for (int j = 0; j < 32; j++) w[j] = xb[j] * xb[j];
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax < ALL_ZERO) {
            scales[ib] = 0;
            continue;
        }
        float d = -max / values[0], id = 1 / d, sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            const int l = nearest_entry(16, values, id * xb[j]);
            Lb[j] = (uint8_t)l;
            const float q = values[l];
            sumqx += w[j] * q * xb[j];
            sumq2 += w[j] * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
        float best = d * sumqx;
        for (int t = -ntry; t <= ntry; t++) {
            id = (t + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; j++) {
                const float q = values[nearest_entry(16, values, id * xb[j])];
                sumqx += w[j] * q * xb[j];
                sumq2 += w[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (fabsf(d) > amax_scale) {
            amax_scale = fabsf(d);
            max_scale = d;
        }
    }
    if (size > 32) {
        *scales_h = 0;
        const float d = -max_scale / 32, id = d ? 1 / d : 0.0f;
        *dh = p4k_f32_to_fp16(d);
        for (int ib = 0; ib < size / 32; ib++) {
            int l = imax(-32, imin(31, nearest(id * scales[ib])));
            const float dl = d * l, idl = dl ? 1 / dl : 0.0f;
            for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)nearest_entry(16, values, idl * x[32 * ib + j]);
            l += 32;
            if (ib % 2 == 0) scales_l[ib / 2] = (uint8_t)(l & 0xF);
            else scales_l[ib / 2] |= (uint8_t)((l & 0xF) << 4);
            *scales_h |= (uint16_t)((l >> 4) << (2 * (ib % 8)));
        }
    } else {
        *dh = p4k_f32_to_fp16(scales[0]);
        const float id = scales[0] ? 1 / scales[0] : 0;
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)nearest_entry(16, values, id * x[j]);
    }
    for (int i = 0; i < size / 32; i++)
        for (int j = 0; j < 16; j++) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

// ---- Entry point --------------------------------------------------------------------------------

int p4k_quantize_rows(int format, const float *x, void *out, size_t rows, size_t cols, const float *imatrix) {
    const size_t rb = p4k_row_bytes(format, cols);
    const p4k_format_info *f = format >= 0 ? p4k_format((uint32_t)format) : NULL;
    if (!rb || !f || cols % f->block_values) return P4K_EFORMAT;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        uint8_t *y = (uint8_t *)out + r * rb;
        switch (format) {
        case P4K_Q8_0: p4k_quantize_q8_0(xr, y, cols); break;
        case P4K_Q4_0: imatrix ? q_0_weighted(xr, y, cols, imatrix, 4) : p4k_quantize_q4_0(xr, y, cols); break;
        case P4K_Q4_1: imatrix ? q_1_weighted(xr, y, cols, imatrix, 4) : p4k_quantize_q4_1(xr, y, cols); break;
        case P4K_Q5_0: imatrix ? q_0_weighted(xr, y, cols, imatrix, 5) : p4k_quantize_q5_0(xr, y, cols); break;
        case P4K_Q5_1: imatrix ? q_1_weighted(xr, y, cols, imatrix, 5) : p4k_quantize_q5_1(xr, y, cols); break;
        case P4K_IQ4_NL:
            for (size_t b = 0; b < cols / 32; b++) {
                p4k_block_iq4_nl *blk = (p4k_block_iq4_nl *)y + b;
                uint16_t unused_h;
                iq4_block(32, xr + 32 * b, &blk->d, blk->qs, &unused_h, NULL, imatrix ? imatrix + 32 * b : NULL);
            }
            break;
        case P4K_IQ4_XS:
            for (size_t b = 0; b < cols / 256; b++) {
                p4k_block_iq4_xs *blk = (p4k_block_iq4_xs *)y + b;
                iq4_block(256, xr + 256 * b, &blk->d, blk->qs, &blk->scales_h, blk->scales_l, imatrix ? imatrix + 256 * b : NULL);
            }
            break;
        case P4K_IQ3_XXS: case P4K_IQ3_S: case P4K_IQ2_XXS: case P4K_IQ2_XS: case P4K_IQ2_S: case P4K_IQ1_S: case P4K_IQ1_M:
            p4k_quantize_iq_row(format, xr, y, cols, imatrix);
            break;
        case P4K_Q2_K: case P4K_Q3_K: case P4K_Q4_K: case P4K_Q5_K: case P4K_Q6_K:
            if (!imatrix) {
                p4k_quantize_kquant(format, xr, y, cols);
                break;
            }
            for (size_t b = 0; b < cols / 256; b++) {
                const float *xb = xr + 256 * b, *qw = imatrix + 256 * b;
                uint8_t *yb = y + b * f->block_bytes;
                if (format == P4K_Q2_K) q2k_weighted(xb, (p4k_block_q2_k *)yb, qw);
                else if (format == P4K_Q3_K) q3k_weighted(xb, (p4k_block_q3_k *)yb, qw);
                else if (format == P4K_Q6_K) q6k_block(xb, (p4k_block_q6_k *)yb, qw);
                else k45_weighted(xb, yb, qw, format == P4K_Q4_K ? 4 : 5);
            }
            break;
        default: return P4K_EFORMAT;
        }
    }
    return 0;
}
