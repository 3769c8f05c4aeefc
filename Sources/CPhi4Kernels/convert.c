// Element-type conversions used when loading weights, and large page-aligned allocations.
#define _GNU_SOURCE
#include "CPhi4Kernels.h"
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f")))
static void bf16_to_f32_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(src + i));
        __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(w));
    }
    for (; i < n; i++) {
        uint32_t b = (uint32_t)src[i] << 16;
        memcpy(dst + i, &b, 4);
    }
}

__attribute__((target("avx2,f16c")))
static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) {
        __m128i h = _mm_cvtsi32_si128(src[i]);
        dst[i] = _mm_cvtss_f32(_mm_cvtph_ps(h));
    }
}
#endif

static void bf16_to_f32_scalar(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)src[i] << 16;
        memcpy(dst + i, &b, 4);
    }
}


void p4k_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (p4k_cpu_features() & P4K_CPU_AVX512F) { bf16_to_f32_avx512(src, dst, n); return; }
#endif
    bf16_to_f32_scalar(src, dst, n);
}

void p4k_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if defined(__x86_64__)
    uint32_t f = p4k_cpu_features();
    if ((f & P4K_CPU_F16C) && (f & P4K_CPU_AVX2)) { f16_to_f32_f16c(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = p4k_fp16_to_f32(src[i]);
}

void *p4k_alloc_large(size_t bytes) {
    if (bytes == 0) bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void p4k_free_large(void *p, size_t bytes) {
    if (p) munmap(p, bytes == 0 ? 1 : bytes);
}

void p4k_advise_sequential(const void *p, size_t bytes) {
    if (!p || bytes == 0) return;
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)4095;
    madvise((void *)start, bytes + ((uintptr_t)p - start), MADV_SEQUENTIAL | MADV_WILLNEED);
}

void p4k_advise_done(const void *p, size_t bytes) {
    if (!p || bytes == 0) return;
    // Only whole pages inside the range: a neighbour's data may share the edge pages.
    uintptr_t start = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = p4k_f32_to_fp16(src[i]);
}
#endif

void p4k_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
#if defined(__x86_64__)
    uint32_t f = p4k_cpu_features();
    if ((f & P4K_CPU_F16C) && (f & P4K_CPU_AVX2)) { f32_to_f16_f16c(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = p4k_f32_to_fp16(src[i]);
}
