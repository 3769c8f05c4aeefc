// Scalar kernels: the definition every other ISA path must equal bit for bit, and the path for
// CPUs without a vector one. Activation rows are handled one after another (t loops).
//
// Q8_0 / Q4_0: block b's exact int32 sum s_b (Q4_0: Σ (q − 8)·a, computed as Σ q·a − 8·Σa), its
// float term (float)s_b · (d_w · d_a) added into lane b % 8, lanes combined by p4k_combine8.
// K-quants (activation block b meets sub-block j = b % 8 of super-block b / 8):
//  - Q4_K / Q5_K (q = 4 or 5 bits; 6-bit scale sc and min m per sub-block):
//      isum = Σ q·a,  term = d_a · ((d·sc)·isum − (dmin·m)·Σa)
//  - Q6_K (q − 32 in −32…31; signed 8-bit scale per 16 values):
//      isum = sc₀·Σ₀ (q−32)·a + sc₁·Σ₁ (q−32)·a,  term = isum · (d · d_a)
//  - Q3_K (q in −4…3; 6-bit scale − 32 per 16 values): as Q6_K with its own q and scales.
//  - Q2_K (q in 0…3; 4-bit scale sc and min m per 16 values; A₀, A₁: the activations' sums over
//    each half):  isum = sc₀·Σ₀ q·a + sc₁·Σ₁ q·a,  msum = m₀·A₀ + m₁·A₁,
//      term = d_a · (d·isum − dmin·msum)
//  - IQ4_XS (sub-block of 32 with a 6-bit scale sc − 32, values from the 16-entry table kv):
//      s = Σ kv[q]·a,  term = s · ((d·sc) · d_a)  (d·sc is exact in f32, so the block is a Q8_0
//      block with a float scale, and the Q8_0 panels serve it)
//  - the lattice IQ types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M; values x = (D·m_h)·v
//    with integer v and odd multipliers m₀, m₁ per 16 values, p4k_iq_decode32):
//      isum = m₀·Σ₀ v·a + m₁·Σ₁ v·a,  term = isum · (D · d_a)  (exact integers: |isum| < 2²⁴)
// The other 32-blocks (block b of the row meets activation block b):
//  - Q5_0: s = Σ q·a − 16·Σa, term = s · (d · d_a) (as Q4_0);  IQ4_NL: s = Σ kv[q]·a, the same term
//  - Q4_1 / Q5_1 (x = d·q + m): isum = Σ q·a,  term = d_a · (d·isum + m·Σa)
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#include "kernels.h"
#include <math.h>

// ---- Activations -----------------------------------------------------------------------------

void p4k_quantize_activation_scalar(const float *x, size_t n, int8_t *qs, float *d, int32_t *sums) {
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

// ---- Q8_0 / Q4_0 -----------------------------------------------------------------------------

static int q_legacy(const p4k_job *j) {
    const int q8 = j->format == P4K_Q8_0;
    const size_t nb = j->cols / 32, stride = q8 ? sizeof(p4k_block_q8_0) : sizeof(p4k_block_q4_0), rb = nb * stride;
    for (size_t i = 0; i < j->t; i++) {
        const int8_t *a = j->aq + i * j->cols;
        const float *ad = j->ad + i * nb;
        const int32_t *asum = j->asum + i * nb;
        for (size_t r = 0; r < j->rows; r++) {
            const uint8_t *row = j->w + r * rb;
            float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (size_t b = 0; b < nb; b++) {
                int32_t s;
                if (q8) p4k_sums_q8_0(row + b * stride, a + 32 * b, 1, &s);
                else p4k_sums_q4_0(row + b * stride, a + 32 * b, asum + b, 1, &s);
                l[b & 7] = l[b & 7] + (float)s * (p4k_block_scale(row, stride, b) * ad[b]);
            }
            p4k_put(j->out + i * j->ldo + r, p4k_combine8(l), j->accumulate);
        }
    }
    return 0;
}

// ---- K-quants --------------------------------------------------------------------------------

static float row_q6k(const uint8_t *w, const int8_t *aq, const float *ad, size_t nsb) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < nsb; i++) {
        const p4k_block_q6_k *blk = (const p4k_block_q6_k *)(w + i * sizeof(p4k_block_q6_k));
        const float d = p4k_h2f(blk->d);
        for (int j = 0; j < 8; j++) {
            const size_t b = 8 * i + (size_t)j;
            const int h = j / 4, k = j % 4;
            const int8_t *a = aq + 32 * b;
            int32_t s[2] = {0, 0};
            for (int e = 0; e < 32; e++) {
                const uint8_t lo = blk->ql[64 * h + 32 * (k & 1) + e];
                const int nib = k < 2 ? (lo & 0xF) : (lo >> 4);
                const int q = nib | (((blk->qh[32 * h + e] >> (2 * k)) & 3) << 4);
                s[e / 16] += (q - 32) * a[e];
            }
            const int32_t isum = blk->scales[2 * j] * s[0] + blk->scales[2 * j + 1] * s[1];
            l[j] = l[j] + (float)isum * (d * ad[b]);
        }
    }
    return p4k_combine8(l);
}

// Q4_K and Q5_K share the sub-block structure; Q5_K adds the fifth bits.
static float row_q45k(int five, const uint8_t *w, const int8_t *aq, const float *ad, const int32_t *asum, size_t nsb) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const size_t bb = five ? sizeof(p4k_block_q5_k) : sizeof(p4k_block_q4_k);
    for (size_t i = 0; i < nsb; i++, w += bb) {
        const p4k_block_q4_k *b4 = (const p4k_block_q4_k *)w;
        const p4k_block_q5_k *b5 = (const p4k_block_q5_k *)w;
        const float d = p4k_h2f(b4->d), dmin = p4k_h2f(b4->dmin);
        uint8_t sc[8], m[8];
        p4k_kscales_bytes(b4->scales, sc, m);
        const uint8_t *qs = five ? b5->qs : b4->qs;
        for (int j = 0; j < 8; j++) {
            const size_t b = 8 * i + (size_t)j;
            const int8_t *a = aq + 32 * b;
            int32_t isum = 0;
            for (int e = 0; e < 32; e++) {
                int q = (qs[32 * (j / 2) + e] >> (4 * (j & 1))) & 0xF;
                if (five) q |= ((b5->qh[e] >> j) & 1) << 4;
                isum += q * a[e];
            }
            const float ds = d * (float)sc[j], dm = dmin * (float)m[j];
            const float t1 = ds * (float)isum, t2 = dm * (float)asum[b];
            l[j] = l[j] + ad[b] * (t1 - t2);
        }
    }
    return p4k_combine8(l);
}

// The q value (before any offset) of element e of a 32-block: Q4_1's 4 bits, Q5_0's / Q5_1's 5.
static inline int q_nibble(const uint8_t *qs, int e) { return e < 16 ? qs[e] & 0xF : qs[e - 16] >> 4; }
static inline int q_fifth(const uint8_t qh[4], int e) { return (qh[e / 8] >> (e % 8)) & 1; }

// One row of Q4_1, Q5_0, Q5_1 or IQ4_NL blocks against one activation row.
static float row_small_blocks(int format, const uint8_t *w, const int8_t *aq, const float *ad, const int32_t *asum,
                              size_t nb) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const size_t stride = p4k_format((uint32_t)format)->block_bytes;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * stride;
        const int8_t *a = aq + 32 * b;
        int32_t s = 0;
        switch (format) {
        case P4K_Q4_1: {
            const p4k_block_q4_1 *x = (const p4k_block_q4_1 *)blk;
            for (int e = 0; e < 32; e++) s += q_nibble(x->qs, e) * a[e];
            const float t1 = p4k_h2f(x->d) * (float)s, t2 = p4k_h2f(x->m) * (float)asum[b];
            l[b & 7] = l[b & 7] + ad[b] * (t1 + t2);
            break;
        }
        case P4K_Q5_1: {
            const p4k_block_q5_1 *x = (const p4k_block_q5_1 *)blk;
            for (int e = 0; e < 32; e++) s += (q_nibble(x->qs, e) | q_fifth(x->qh, e) << 4) * a[e];
            const float t1 = p4k_h2f(x->d) * (float)s, t2 = p4k_h2f(x->m) * (float)asum[b];
            l[b & 7] = l[b & 7] + ad[b] * (t1 + t2);
            break;
        }
        case P4K_Q5_0: {
            const p4k_block_q5_0 *x = (const p4k_block_q5_0 *)blk;
            for (int e = 0; e < 32; e++) s += (q_nibble(x->qs, e) | q_fifth(x->qh, e) << 4) * a[e];
            s -= 16 * asum[b];
            l[b & 7] = l[b & 7] + (float)s * (p4k_h2f(x->d) * ad[b]);
            break;
        }
        default: {  // IQ4_NL
            const p4k_block_iq4_nl *x = (const p4k_block_iq4_nl *)blk;
            for (int e = 0; e < 32; e++) s += p4k_iq4nl_values[q_nibble(x->qs, e)] * a[e];
            l[b & 7] = l[b & 7] + (float)s * (p4k_h2f(x->d) * ad[b]);
            break;
        }
        }
    }
    return p4k_combine8(l);
}

static int q_small_blocks(const p4k_job *j) {
    const size_t nb = j->cols / 32, rb = p4k_row_bytes(j->format, j->cols);
    for (size_t i = 0; i < j->t; i++)
        for (size_t r = 0; r < j->rows; r++)
            p4k_put(j->out + i * j->ldo + r,
                    row_small_blocks(j->format, j->w + r * rb, j->aq + i * j->cols, j->ad + i * nb, j->asum + i * nb, nb),
                    j->accumulate);
    return 0;
}

// Q2_K, Q3_K and IQ4_XS: super-blocks of 256; activation block b is values 32·(b % 8)… of
// super-block b / 8.
static float row_low_k(int format, const uint8_t *w, const int8_t *aq, const float *ad, size_t nsb) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const size_t bb = p4k_format((uint32_t)format)->block_bytes;
    for (size_t i = 0; i < nsb; i++, w += bb) {
        for (int j = 0; j < 8; j++) {
            const size_t b = 8 * i + (size_t)j;
            const int8_t *a = aq + 32 * b;
            if (format == P4K_IQ4_XS) {
                const p4k_block_iq4_xs *x = (const p4k_block_iq4_xs *)w;
                int8_t sc[8];
                p4k_iq4xs_scales(x, sc);
                int32_t s = 0;
                for (int e = 0; e < 32; e++) s += p4k_iq4nl_values[q_nibble(x->qs + 16 * j, e)] * a[e];
                l[j] = l[j] + (float)s * ((p4k_h2f(x->d) * (float)sc[j]) * ad[b]);
            } else if (format == P4K_Q3_K) {
                const p4k_block_q3_k *x = (const p4k_block_q3_k *)w;
                int8_t sc[16];
                p4k_q3k_scales(x->scales, sc);
                int32_t s[2] = {0, 0};
                for (int e = 0; e < 32; e++) {
                    const int low = (x->qs[32 * (j / 4) + e] >> (2 * (j % 4))) & 3;
                    const int q = low - (((x->hmask[e] >> j) & 1) ? 0 : 4);
                    s[e / 16] += q * a[e];
                }
                const int32_t isum = sc[2 * j] * s[0] + sc[2 * j + 1] * s[1];
                l[j] = l[j] + (float)isum * (p4k_h2f(x->d) * ad[b]);
            } else {  // Q2_K
                const p4k_block_q2_k *x = (const p4k_block_q2_k *)w;
                int32_t s[2] = {0, 0}, as[2] = {0, 0};
                for (int e = 0; e < 32; e++) {
                    s[e / 16] += ((x->qs[32 * (j / 4) + e] >> (2 * (j % 4))) & 3) * a[e];
                    as[e / 16] += a[e];
                }
                const uint8_t s0 = x->scales[2 * j], s1 = x->scales[2 * j + 1];
                const int32_t isum = (s0 & 0xF) * s[0] + (s1 & 0xF) * s[1];
                const int32_t msum = (s0 >> 4) * as[0] + (s1 >> 4) * as[1];
                const float t1 = p4k_h2f(x->d) * (float)isum, t2 = p4k_h2f(x->dmin) * (float)msum;
                l[j] = l[j] + ad[b] * (t1 - t2);
            }
        }
    }
    return p4k_combine8(l);
}

// The lattice IQ types: super-blocks of 256; activation block b meets sub-block b % 8 of
// super-block b / 8.
static float row_iq(int format, const uint8_t *w, const int8_t *aq, const float *ad, size_t nsb) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const size_t bb = p4k_format((uint32_t)format)->block_bytes;
    for (size_t i = 0; i < nsb; i++, w += bb)
        for (int j = 0; j < 8; j++) {
            const size_t b = 8 * i + (size_t)j;
            const int8_t *a = aq + 32 * b;
            int16_t v[32];
            int32_t m[2], s[2] = {0, 0};
            const float d = p4k_iq_decode32(format, w, j, v, m);
            for (int e = 0; e < 32; e++) s[e / 16] += v[e] * a[e];
            const int32_t isum = m[0] * s[0] + m[1] * s[1];
            l[j] = l[j] + (float)isum * (d * ad[b]);
        }
    return p4k_combine8(l);
}

// Q2_K, Q3_K, IQ4_XS and the lattice IQ types: row by row, token by token.
static int q_low_k(const p4k_job *j) {
    const size_t nb = j->cols / 32, nsb = j->cols / 256, rb = p4k_row_bytes(j->format, j->cols);
    for (size_t i = 0; i < j->t; i++)
        for (size_t r = 0; r < j->rows; r++)
            p4k_put(j->out + i * j->ldo + r,
                    (j->format == P4K_Q2_K || j->format == P4K_Q3_K || j->format == P4K_IQ4_XS ? row_low_k : row_iq)(
                        j->format, j->w + r * rb, j->aq + i * j->cols, j->ad + i * nb, nsb),
                    j->accumulate);
    return 0;
}

static int q_kquant(const p4k_job *j) {
    const size_t nb = j->cols / 32, nsb = j->cols / 256, rb = p4k_row_bytes(j->format, j->cols);
    for (size_t i = 0; i < j->t; i++) {
        const int8_t *a = j->aq + i * j->cols;
        const float *ad = j->ad + i * nb;
        const int32_t *asum = j->asum + i * nb;
        for (size_t r = 0; r < j->rows; r++) {
            const uint8_t *row = j->w + r * rb;
            const float v = j->format == P4K_Q6_K ? row_q6k(row, a, ad, nsb)
                                                  : row_q45k(j->format == P4K_Q5_K, row, a, ad, asum, nsb);
            p4k_put(j->out + i * j->ldo + r, v, j->accumulate);
        }
    }
    return 0;
}

const p4k_kernel p4k_kernels_scalar[] = {
    {P4K_Q8_0, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_legacy},
    {P4K_Q4_0, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_legacy},
    {P4K_Q4_K, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_kquant},
    {P4K_Q5_K, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_kquant},
    {P4K_Q6_K, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_kquant},
    {P4K_Q4_1, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_small_blocks},
    {P4K_Q5_0, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_small_blocks},
    {P4K_Q5_1, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_small_blocks},
    {P4K_IQ4_NL, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_small_blocks},
    {P4K_Q2_K, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_Q3_K, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_IQ4_XS, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_IQ2_XXS, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_IQ2_XS, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_IQ2_S, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_IQ3_XXS, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_IQ3_S, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_IQ1_S, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {P4K_IQ1_M, P4K_ISA_SCALAR, P4K_ALL_CLASSES, "scalar", q_low_k},
    {0, 0, 0, NULL, NULL},
};
