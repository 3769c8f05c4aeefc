// The interface between the per-ISA kernel files and the dispatcher (private to CPhi4Kernels).
//
// Every matrix kernel has one signature, `int fn(const p4k_job *)`: weights of one format × `t`
// activation rows quantized by p4k_quantize_activation, any row count, any t ≥ 1; 0 on success,
// -1 when scratch memory cannot be allocated (nothing is then written). Each ISA file
// (kernels_scalar.c, kernels_avx2.c, gemm_avx2.c, kernels_lowbit_avx2.c, kernels_vnni.c,
// kernels_neon.c) lists what it implements in one table of p4k_kernel entries; dispatch.c alone
// reads the tables and chooses. The ISA files never call each other: what they share is the
// inline code below.
//
// The arithmetic contract that makes every kernel interchangeable: for each output, the exact
// int32 sum of block b (Q8_0: Σ q·a; Q4_0: Σ (q−8)·a; the K-quants: see kernels_scalar.c), the
// float term of block b added into lane b % 8 in block order, the eight lanes combined by
// p4k_combine8. With contraction off (no fused multiply-add) every ISA gives identical bits.
#ifndef P4K_KERNELS_H
#define P4K_KERNELS_H
#include "CPhi4Kernels.h"
#include "blocks.h"

/// One matrix product: out[i·ldo + r] (+)= Σ_b term(row r, activation row i, block b).
typedef struct {
    int format;            ///< P4K_Q8_0, P4K_Q4_0, P4K_Q4_K, P4K_Q5_K or P4K_Q6_K
    const uint8_t *w;      ///< rows × p4k_row_bytes(format, cols) bytes
    size_t cols, rows;     ///< cols: a multiple of 32 (K-quants: of 256)
    size_t t;              ///< activation rows
    const int8_t *aq;      ///< t × cols int8 values
    const float *ad;       ///< t × cols/32 block scales
    const int32_t *asum;   ///< t × cols/32 block sums of the int8 values
    float *out;
    size_t ldo;            ///< floats between two activation rows' outputs
    int accumulate;        ///< add to out instead of overwriting it
} p4k_job;

typedef int (*p4k_kernel_fn)(const p4k_job *job);

/// Batch-size classes: one token (decode), 2–16 tokens (verification passes, batched decoding
/// of several sequences), 17 and more (prefill).
enum { P4K_CLASS_ONE = P4K_BATCH_ONE, P4K_CLASS_SMALL = P4K_BATCH_SMALL, P4K_CLASS_LARGE = P4K_BATCH_LARGE, P4K_CLASS_COUNT = 3 };
#define P4K_ALL_CLASSES 7u

/// One implementation: which format and ISA, which batch classes it serves, its name in reports.
typedef struct {
    int format;
    int isa;
    unsigned classes;  ///< bit set of 1 << P4K_CLASS_*
    const char *name;  ///< e.g. "avx2-rows", "avx2-panels"
    p4k_kernel_fn fn;
} p4k_kernel;

/// The tables, each ending with an entry whose fn is NULL.
extern const p4k_kernel p4k_kernels_scalar[];
#if defined(__x86_64__)
extern const p4k_kernel p4k_kernels_avx2[];
extern const p4k_kernel p4k_gemm_avx2[];
extern const p4k_kernel p4k_kernels_vnni[];
extern const p4k_kernel p4k_kernels_lowbit_avx2[];
extern const p4k_kernel p4k_kernels_iq_avx2[];
#endif
#if defined(__aarch64__)
extern const p4k_kernel p4k_kernels_neon[];
#endif

/// Activation quantizers (identical results; see kernels_avx2.c).
void p4k_quantize_activation_scalar(const float *x, size_t n, int8_t *qs, float *d, int32_t *sums);
#if defined(__x86_64__)
void p4k_quantize_activation_avx2(const float *x, size_t n, int8_t *qs, float *d, int32_t *sums);
#endif

// ---- Inline code the kernel files share ------------------------------------------------------

/// The fixed combine tree of the eight lanes.
static inline float p4k_combine8(const float *l) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

/// Exact int32 sums of `nb` Q8_0 blocks with int8 activation blocks.
static inline void p4k_sums_q8_0(const uint8_t *w, const int8_t *a, size_t nb, int32_t *out) {
    for (size_t b = 0; b < nb; b++, a += 32) {
        const p4k_block_q8_0 *blk = (const p4k_block_q8_0 *)(w + b * sizeof(p4k_block_q8_0));
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += (int32_t)blk->qs[j] * a[j];
        out[b] = s;
    }
}

/// Exact int32 sums Σ (q − 8)·a of `nb` Q4_0 blocks (asum: the activation blocks' sums).
static inline void p4k_sums_q4_0(const uint8_t *w, const int8_t *a, const int32_t *asum, size_t nb, int32_t *out) {
    for (size_t b = 0; b < nb; b++, a += 32) {
        const p4k_block_q4_0 *blk = (const p4k_block_q4_0 *)(w + b * sizeof(p4k_block_q4_0));
        int32_t s = 0;
        for (int j = 0; j < 16; j++) s += (int32_t)(blk->qs[j] & 0xF) * a[j] + (int32_t)(blk->qs[j] >> 4) * a[16 + j];
        out[b] = s - 8 * asum[b];
    }
}

/// Blocks b…nb−1 of a Q4_0 / Q8_0 row (block stride `stride`) added into the lanes, from their
/// integer sums `sums[0…nb−b)`; then the combine tree. The vector kernels end with this.
static inline float p4k_finish_lanes(float *l, const uint8_t *row, size_t stride, const float *ad, const int32_t *sums,
                                     size_t b, size_t nb) {
    for (size_t k = 0; b < nb; b++, k++) l[b & 7] = l[b & 7] + (float)sums[k] * (p4k_block_scale(row, stride, b) * ad[b]);
    return p4k_combine8(l);
}

/// Stores one result: out = v, or out += v.
static inline void p4k_put(float *out, float v, int accumulate) { *out = accumulate ? *out + v : v; }

/// The activations' sums over each 16 values (|A| ≤ 16·127), which the Q6_K vector kernels use.
static inline void p4k_sums16(const int8_t *aq, size_t cols, int16_t *a16) {
    for (size_t k = 0; k < cols / 16; k++) {
        int s = 0;
        for (int e = 0; e < 16; e++) s += aq[16 * k + (size_t)e];
        a16[k] = (int16_t)s;
    }
}
#endif
