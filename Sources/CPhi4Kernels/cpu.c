#define _GNU_SOURCE
#include "CPhi4Kernels.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

static uint32_t cached_features;
static int features_ready;

static uint32_t detect_features(void);

// Threads may race to fill the cache on first use: each stores the same value, atomically.
uint32_t p4k_cpu_features(void) {
    if (__atomic_load_n(&features_ready, __ATOMIC_ACQUIRE)) return __atomic_load_n(&cached_features, __ATOMIC_RELAXED);
    uint32_t f = detect_features();
    __atomic_store_n(&cached_features, f, __ATOMIC_RELAXED);
    __atomic_store_n(&features_ready, 1, __ATOMIC_RELEASE);
    return f;
}

static uint32_t detect_features(void) {
    uint32_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) f |= P4K_CPU_AVX2;
    if (__builtin_cpu_supports("fma")) f |= P4K_CPU_FMA;
    if (__builtin_cpu_supports("f16c")) f |= P4K_CPU_F16C;
    if (__builtin_cpu_supports("avx512f")) f |= P4K_CPU_AVX512F;
    if (__builtin_cpu_supports("avx512bw")) f |= P4K_CPU_AVX512BW;
    if (__builtin_cpu_supports("avx512vl")) f |= P4K_CPU_AVX512VL;
    if (__builtin_cpu_supports("avx512vnni")) f |= P4K_CPU_AVX512VNNI;
    if (__builtin_cpu_supports("avxvnni")) f |= P4K_CPU_AVXVNNI;
#elif defined(__aarch64__)
    f |= P4K_CPU_NEON;  // Advanced SIMD is part of ARMv8-A
#if defined(__linux__)
    if (getauxval(AT_HWCAP) & (1ul << 20)) f |= P4K_CPU_DOTPROD;  // HWCAP_ASIMDDP
#endif
#endif
    return f;
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdio.h>
#include <string.h>

void p4k_cpu_model(char *buf, size_t n) {
    if (!buf || !n) return;
    char name[49] = "unknown";
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(name, r, 48);
        name[48] = 0;
    }
#endif
    const char *s = name;
    while (*s == ' ') s++;
    size_t len = strlen(s);
    while (len && s[len - 1] == ' ') len--;
    if (len >= n) len = n - 1;
    memcpy(buf, s, len);
    buf[len] = 0;
}

void p4k_cpu_flags(char *buf, size_t n) {
    if (!buf || !n) return;
    static const struct { uint32_t bit; const char *name; } names[] = {
        {P4K_CPU_AVX2, "avx2"}, {P4K_CPU_FMA, "fma"}, {P4K_CPU_F16C, "f16c"}, {P4K_CPU_AVX512F, "avx512f"},
        {P4K_CPU_AVX512BW, "avx512bw"}, {P4K_CPU_AVX512VL, "avx512vl"}, {P4K_CPU_AVX512VNNI, "avx512_vnni"},
        {P4K_CPU_AVXVNNI, "avx_vnni"}, {P4K_CPU_NEON, "neon"}, {P4K_CPU_DOTPROD, "dotprod"}};
    const uint32_t f = p4k_cpu_features();
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(f & names[i].bit)) continue;
        const int w = snprintf(buf + used, n - used, "%s%s", used ? " " : "", names[i].name);
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
}

#if defined(__linux__)
#include <sched.h>
#endif

int p4k_affinity_cpu_count(void) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
#endif
    return 0;
}

// ---- Counters shared by the thread pool's threads (sequentially consistent) ----

long p4k_atomic_load(const long *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

long p4k_atomic_add(long *p, long delta) { return __atomic_add_fetch(p, delta, __ATOMIC_SEQ_CST); }

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define P4K_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define P4K_PAUSE() __asm__ __volatile__("yield")
#else
#define P4K_PAUSE() ((void)0)
#endif

int p4k_spin_while_equal(const long *p, long value, long spins) {
    for (long i = 0; i < spins; i++) {
        if (__atomic_load_n(p, __ATOMIC_SEQ_CST) != value) return 1;
        P4K_PAUSE();
    }
    return __atomic_load_n(p, __ATOMIC_SEQ_CST) != value;
}

int p4k_spin_until_zero(const long *p, long spins) {
    for (long i = 0; i < spins; i++) {
        if (__atomic_load_n(p, __ATOMIC_SEQ_CST) == 0) return 1;
        P4K_PAUSE();
    }
    return __atomic_load_n(p, __ATOMIC_SEQ_CST) == 0;
}
