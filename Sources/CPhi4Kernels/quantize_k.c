// K-quant quantizers (Q4_K, Q5_K, Q6_K) with llama.cpp's reference rounding.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#include "CPhi4Kernels.h"
#include "blocks.h"
#include <math.h>
#include <string.h>

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
    p4k_block_q4_k *b4 = (p4k_block_q4_k *)y;  // Q5_K: the same first fields
    p4k_block_q5_k *b5 = (p4k_block_q5_k *)y;
    uint8_t *sc = b4->scales;
    memset(sc, 0, sizeof(b4->scales));
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
    b4->d = hd;
    b4->dmin = hm;
    const float d = p4k_fp16_to_f32(hd), dmin = p4k_fp16_to_f32(hm);
    uint8_t s8[8], m8[8];
    p4k_kscales_bytes(sc, s8, m8);
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
    memset(y, 0, sizeof(p4k_block_q6_k));
    if (max_abs < 1e-15f) return;
    const float iscale = -128.0f / max_scale;
    const uint16_t hd = p4k_f32_to_fp16(1 / iscale);
    p4k_block_q6_k *blk = (p4k_block_q6_k *)y;
    blk->d = hd;
    int8_t *sc = blk->scales;
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
    uint8_t *ql = blk->ql, *qh = blk->qh;
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
