// SIMD microkernels for libphi4, chosen at run time by CPU features.
// Only kernels live here; everything else is Swift. Symbols use the `p4k_` prefix so that the
// shared library's export list (`phi4_*`) never exposes them.
#ifndef CPHI4_KERNELS_H
#define CPHI4_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CPU feature bits reported by `p4k_cpu_features`.
enum {
    P4K_CPU_AVX2 = 1 << 0,
    P4K_CPU_FMA = 1 << 1,
    P4K_CPU_F16C = 1 << 2,
    P4K_CPU_AVX512F = 1 << 3,
    P4K_CPU_AVX512BW = 1 << 4,
    P4K_CPU_AVX512VNNI = 1 << 5,
    P4K_CPU_AVXVNNI = 1 << 6,
    P4K_CPU_NEON = 1 << 7,
};

/// The features of the CPU this process runs on (bit set of P4K_CPU_*), read once from cpuid.
uint32_t p4k_cpu_features(void);

/// Widens `n` bfloat16 values to float32 (AVX-512 when available).
void p4k_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

/// Widens `n` IEEE half values to float32 (F16C when available).
void p4k_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/// Allocates `bytes` of zeroed, page-aligned memory, asking for transparent huge pages; NULL on failure.
void *p4k_alloc_large(size_t bytes);

/// Frees memory from p4k_alloc_large (same size).
void p4k_free_large(void *p, size_t bytes);

/// Tells the kernel a mapped range will be read sequentially soon (read-ahead).
void p4k_advise_sequential(const void *p, size_t bytes);

/// The number of CPUs in this process's affinity mask (0 when unknown).
int p4k_affinity_cpu_count(void);

/// A flag that any thread may set and the generating thread polls (cancellation).
typedef struct { volatile int32_t value; } p4k_flag;

/// Sets the flag to `v` (sequentially consistent).
static inline void p4k_flag_store(p4k_flag *f, int32_t v) { __atomic_store_n(&f->value, v, __ATOMIC_SEQ_CST); }

/// Sets the flag to `v` and returns its previous value (sequentially consistent).
static inline int32_t p4k_flag_exchange(p4k_flag *f, int32_t v) { return __atomic_exchange_n(&f->value, v, __ATOMIC_SEQ_CST); }

/// Reads the flag (sequentially consistent).
static inline int32_t p4k_flag_load(p4k_flag *f) { return __atomic_load_n(&f->value, __ATOMIC_SEQ_CST); }

#ifdef __cplusplus
}
#endif
#endif
