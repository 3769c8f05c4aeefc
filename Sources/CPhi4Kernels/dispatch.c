// Which kernel runs: the one dispatch table of (format, batch class) → kernel, the calibration
// that fills it, and the entry points p4k_matvec / p4k_gemm / p4k_quantize_activation.
//
// Every kernel gives identical bits (kernels.h), so the choice is purely a matter of speed, and
// the newest instruction set is not always the fastest (on AMD Zen 4 the AVX2 one-token kernels
// were measured 1.4–1.8× faster than the first AVX-512 ones). So the choice is measured on the
// running CPU: p4k_kernels_calibrate times every candidate of each batch class once per process
// (a few milliseconds per format) and keeps the fastest. Until then, or with PHI4_CALIBRATE=0, a
// fixed preference applies (AVX2 for one token and small batches, VNNI panels for large batches
// where available). PHI4_ISA=scalar|avx2|avx512|vnni|neon|dotprod limits the candidates to that ISA and the
// ones below it.
#define _GNU_SOURCE
#include "kernels.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---- ISA availability ------------------------------------------------------------------------

int p4k_isa_available(int isa) {
    const uint32_t f = p4k_cpu_features();
    const int avx2 = (f & P4K_CPU_AVX2) && (f & P4K_CPU_F16C);
    switch (isa) {
    case P4K_ISA_SCALAR: return 1;
    case P4K_ISA_AVX2: return avx2;
    case P4K_ISA_AVX512: return avx2 && (f & P4K_CPU_AVX512F) && (f & P4K_CPU_AVX512BW);
    case P4K_ISA_VNNI:
        return avx2 && (f & P4K_CPU_AVX512F) && (f & P4K_CPU_AVX512BW) && (f & P4K_CPU_AVX512VL) &&
               (f & P4K_CPU_AVX512VNNI);
#if defined(__aarch64__)
    case P4K_ISA_NEON: return (f & P4K_CPU_NEON) != 0;
    case P4K_ISA_DOTPROD: return (f & P4K_CPU_NEON) && (f & P4K_CPU_DOTPROD);
#endif
    default: return 0;
    }
}

static int forced_isa(void) {
    const char *env = getenv("PHI4_ISA");
    if (!env) return -1;
    for (int i = 0; i <= P4K_ISA_TOP; i++)
        if (!strcmp(env, p4k_isa_name(i)) && p4k_isa_available(i)) return i;
    return -1;
}

static int selected_isa = -1;

int p4k_isa_best(void) {
    int isa = __atomic_load_n(&selected_isa, __ATOMIC_ACQUIRE);
    if (isa >= 0) return isa;
    isa = P4K_ISA_SCALAR;
    for (int i = P4K_ISA_TOP; i > P4K_ISA_SCALAR; i--)
        if (p4k_isa_available(i)) {
            isa = i;
            break;
        }
    const int forced = forced_isa();
    if (forced >= 0) isa = forced;
    __atomic_store_n(&selected_isa, isa, __ATOMIC_RELEASE);
    return isa;
}

const char *p4k_isa_name(int isa) {
    switch (isa) {
    case P4K_ISA_SCALAR: return "scalar";
    case P4K_ISA_AVX2: return "avx2";
    case P4K_ISA_AVX512: return "avx512";
    case P4K_ISA_VNNI: return "vnni";
    case P4K_ISA_NEON: return "neon";
    case P4K_ISA_DOTPROD: return "dotprod";
    default: return "unknown";
    }
}

// ---- The kernels -----------------------------------------------------------------------------

static const p4k_kernel *const tables[] = {
    p4k_kernels_scalar,
#if defined(__x86_64__)
    p4k_kernels_avx2, p4k_gemm_avx2, p4k_kernels_lowbit_avx2, p4k_kernels_iq_avx2, p4k_kernels_vnni,
#endif
#if defined(__aarch64__)
    p4k_kernels_neon,
#endif
};

enum { MAX_KERNELS = 128 };  // kernel_check fails if the tables fill this (a kernel could have been dropped)
static const p4k_kernel *all[MAX_KERNELS];
static int kernel_count;
static pthread_once_t all_once = PTHREAD_ONCE_INIT;

static void collect(void) {
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const p4k_kernel *k = tables[t]; k->fn && kernel_count < MAX_KERNELS; k++) all[kernel_count++] = k;
}

static void init(void) {
    pthread_once(&all_once, collect);
    p4k_init_tables();
}

int p4k_kernel_count(void) {
    init();
    return kernel_count;
}

int p4k_kernel_info(int index, int *format, int *isa, unsigned *classes, const char **name) {
    init();
    if (index < 0 || index >= kernel_count) return -1;
    if (format) *format = all[index]->format;
    if (isa) *isa = all[index]->isa;
    if (classes) *classes = all[index]->classes;
    if (name) *name = all[index]->name;
    return 0;
}

// The formats the matrix kernels run (those the format table marks in place), each with a row of
// the dispatch table.
static const int kernel_formats[] = {P4K_Q8_0, P4K_Q4_0, P4K_Q4_K, P4K_Q5_K, P4K_Q6_K, P4K_Q4_1,
                                     P4K_Q5_0, P4K_Q5_1, P4K_Q2_K, P4K_Q3_K, P4K_IQ4_NL, P4K_IQ4_XS,
                                     P4K_IQ2_XXS, P4K_IQ2_XS, P4K_IQ2_S, P4K_IQ3_XXS, P4K_IQ3_S, P4K_IQ1_S, P4K_IQ1_M};
enum { FORMATS = sizeof kernel_formats / sizeof kernel_formats[0] };

static int p4k_format_index(int format) {
    for (int f = 0; f < FORMATS; f++)
        if (kernel_formats[f] == format) return f;
    return -1;
}

static int batch_class(size_t t) { return t <= 1 ? P4K_CLASS_ONE : t <= 16 ? P4K_CLASS_SMALL : P4K_CLASS_LARGE; }

// Whether kernel k is a candidate for (format, class) with ISAs up to `limit` on this CPU.
static int candidate(const p4k_kernel *k, int format, int klass, int limit) {
    return k->format == format && (k->classes & (1u << klass)) && k->isa <= limit && p4k_isa_available(k->isa);
}

// The fixed preference. With an ISA limit (a caller's explicit ISA, PHI4_ISA): the highest ISA up
// to it that has a kernel. Without: the same, except that one token and small batches prefer AVX2
// (the first AVX-512 one-token kernels were measured 1.4–1.8× slower than AVX2's on Zen 4;
// calibration decides for the current ones). Within an ISA: rows for one token and small
// batches, panels for large batches.
static int preferred(int format, int klass, int limit) {
    int best = -1, best_rank = -1;
    for (int i = 0; i < kernel_count; i++) {
        const p4k_kernel *k = all[i];
        if (!candidate(k, format, klass, limit >= 0 ? limit : P4K_ISA_TOP)) continue;
        const int avx2_first = limit < 0 && klass != P4K_CLASS_LARGE && k->isa == P4K_ISA_AVX2;
        const int panels = strstr(k->name, "panels") != NULL;
        const int rank = 2 * (avx2_first ? 16 : k->isa) + (klass == P4K_CLASS_LARGE ? panels : !panels);
        if (rank > best_rank) {
            best_rank = rank;
            best = i;
        }
    }
    return best;
}

// The table: chosen[format][class] = index into `all`, or -1 before the first use.
static int chosen[FORMATS][P4K_CLASS_COUNT];
static int calibrated[FORMATS];
static double calibration_ms;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int table_ready;

static void fill_defaults(void) {
    pthread_mutex_lock(&table_lock);
    if (!table_ready) {
        const int forced = forced_isa();
        for (int f = 0; f < FORMATS; f++)
            for (int c = 0; c < P4K_CLASS_COUNT; c++) chosen[f][c] = preferred(kernel_formats[f], c, forced);
        __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&table_lock);
}

static const p4k_kernel *lookup(int format, int isa, size_t t) {
    init();
    const int f = p4k_format_index(format);
    if (f < 0) return NULL;
    const int klass = batch_class(t);
    if (isa >= 0) {  // a caller's explicit choice: the preferred kernel of that ISA or below
        const int i = preferred(format, klass, isa < P4K_ISA_TOP ? isa : P4K_ISA_TOP);
        return i >= 0 ? all[i] : NULL;
    }
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) fill_defaults();
    const int i = __atomic_load_n(&chosen[f][klass], __ATOMIC_ACQUIRE);
    return i >= 0 ? all[i] : NULL;
}

const char *p4k_kernel_choice(int format, int klass) {
    init();
    const int f = p4k_format_index(format);
    if (f < 0 || klass < 0 || klass >= P4K_CLASS_COUNT) return "none";
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) fill_defaults();
    const int i = __atomic_load_n(&chosen[f][klass], __ATOMIC_ACQUIRE);
    return i < 0 ? "none" : all[i]->name;
}

int p4k_kernels_calibrated(int format) {
    const int f = p4k_format_index(format);
    return f >= 0 && __atomic_load_n(&calibrated[f], __ATOMIC_ACQUIRE);
}

double p4k_kernels_calibration_ms(void) { return calibration_ms; }

// ---- Calibration -----------------------------------------------------------------------------

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

// Representative work per class, on matrices that stay in the outer caches: 1, 8 and 32 tokens.
// Decoding streams weights from memory, where a kernel that keeps up with the memory is as good
// as a faster one; in the caches the faster arithmetic shows, and it is never slower in memory.
// (Measured: the kernels that win here also win over 1 GiB, tools/kernel_bench.c.) 5120 columns,
// Phi-4's hidden size.
enum { CAL_COLS = 5120 };
static const size_t cal_tokens[P4K_CLASS_COUNT] = {1, 8, 32};
static const size_t cal_bytes[P4K_CLASS_COUNT] = {2u << 20, 512u << 10, 256u << 10};

int p4k_kernels_calibrate(const int *formats, size_t count) {
    init();
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) fill_defaults();
    const char *env = getenv("PHI4_CALIBRATE");
    if (env && !strcmp(env, "0")) return 0;
    const int forced = forced_isa();
    const double start = now_ms();
    pthread_mutex_lock(&table_lock);
    // The candidates of each (format, class) still to calibrate; scalar only where forced.
    int cand[FORMATS][P4K_CLASS_COUNT][16], nc[FORMATS][P4K_CLASS_COUNT];
    size_t need = 0, min_row = 0;  // the smallest row among the formats sizes the output buffer
    for (size_t n = 0; n < count && n < FORMATS; n++) {
        const int f = p4k_format_index(formats[n]);
        for (int c = 0; c < P4K_CLASS_COUNT; c++) {
            nc[n][c] = 0;
            if (f < 0 || calibrated[f]) continue;
            for (int i = 0; i < kernel_count && nc[n][c] < 16; i++)
                if (candidate(all[i], formats[n], c, forced >= 0 ? forced : P4K_ISA_TOP) &&
                    (all[i]->isa != P4K_ISA_SCALAR || forced == P4K_ISA_SCALAR))
                    cand[n][c][nc[n][c]++] = i;
            if (nc[n][c] == 1) chosen[f][c] = cand[n][c][0];
            if (nc[n][c] > 1 && cal_bytes[c] > need) need = cal_bytes[c];
            const size_t rb = p4k_row_bytes(formats[n], CAL_COLS);
            if (nc[n][c] > 1 && (min_row == 0 || rb < min_row)) min_row = rb;
        }
    }
    uint8_t *buf = NULL;
    const size_t buf_bytes = need + (64u << 10), nb = CAL_COLS / 32;
    int8_t *aq = NULL;
    float *ad = NULL, *out = NULL;
    int32_t *asum = NULL;
    int rc = 0;
    if (need) {
        buf = p4k_alloc_large(buf_bytes);
        aq = malloc(64 * CAL_COLS);
        ad = malloc(64 * nb * sizeof(float));
        asum = malloc(64 * nb * sizeof(int32_t));
        out = malloc(64 * (buf_bytes / min_row + 1) * sizeof(float));
        if (!buf || !aq || !ad || !asum || !out) {
            rc = P4K_ENOMEM;
            goto done;
        }
        // Any bytes are valid weights for timing; the pattern keeps fp16 scales in [2^-7, 1).
        uint64_t s = 0x9E3779B97F4A7C15ull;
        for (size_t i = 0; i + 8 <= buf_bytes; i += 8) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            const uint64_t v = (s & 0x3BFF3BFF3BFF3BFFull) | 0x2000200020002000ull;
            memcpy(buf + i, &v, 8);
        }
        for (size_t i = 0; i < 64 * (size_t)CAL_COLS; i++) aq[i] = (int8_t)(buf[i] % 255 - 127);
        for (size_t i = 0; i < 64 * nb; i++) {
            ad[i] = 0.01f;
            asum[i] = 0;
        }
    }
    for (size_t n = 0; n < count && n < FORMATS; n++) {
        const int format = formats[n], f = p4k_format_index(format);
        if (f < 0 || calibrated[f]) continue;
        for (int c = 0; c < P4K_CLASS_COUNT; c++) {
            if (nc[n][c] < 2) continue;
            const size_t rb = p4k_row_bytes(format, CAL_COLS), t = cal_tokens[c], rows = cal_bytes[c] / rb;
            double best[16];
            for (int k = 0; k < nc[n][c]; k++) best[k] = 1e30;
            const int rounds = 2;
            for (int round = -1; round < rounds; round++)  // round −1 warms caches and page tables
                for (int k = 0; k < nc[n][c]; k++) {
                    const p4k_job job = {format, buf, CAL_COLS, rows, t, aq, ad, asum, out, rows, 0};
                    const double t0 = now_ms();
                    if (all[cand[n][c][k]]->fn(&job) != 0) {
                        rc = P4K_ENOMEM;
                        goto done;
                    }
                    const double dt = now_ms() - t0;
                    if (round >= 0 && dt < best[k]) best[k] = dt;
                }
            int win = 0;
            for (int k = 1; k < nc[n][c]; k++)
                if (best[k] < best[win]) win = k;
            __atomic_store_n(&chosen[f][c], cand[n][c][win], __ATOMIC_RELEASE);
        }
        __atomic_store_n(&calibrated[f], 1, __ATOMIC_RELEASE);
    }
done:
    calibration_ms += now_ms() - start;
    pthread_mutex_unlock(&table_lock);
    if (buf) p4k_free_large(buf, buf_bytes);
    free(aq);
    free(ad);
    free(asum);
    free(out);
    return rc;
}

// ---- Entry points ----------------------------------------------------------------------------

void p4k_quantize_activation(const float *x, size_t n, int8_t *qs, float *d, int32_t *sums) {
#if defined(__x86_64__)
    if (p4k_isa_best() != P4K_ISA_SCALAR) {
        p4k_quantize_activation_avx2(x, n, qs, d, sums);
        return;
    }
#endif
    p4k_quantize_activation_scalar(x, n, qs, d, sums);
}

int p4k_gemm(int format, int isa, const void *w, size_t cols, size_t rows, size_t t, const int8_t *aq, const float *ad,
             const int32_t *asum, float *out, size_t ldo, int accumulate) {
    const p4k_kernel *k = lookup(format, isa, t);
    if (!k) return P4K_EFORMAT;
    if (t == 0 || rows == 0) return 0;
    const p4k_job job = {format, w, cols, rows, t, aq, ad, asum, out, ldo, accumulate};
    return k->fn(&job) == 0 ? 0 : P4K_ENOMEM;
}

int p4k_matvec(int format, int isa, const void *w, size_t cols, size_t rows, const int8_t *aq, const float *ad,
               const int32_t *asum, float *out, int accumulate) {
    return p4k_gemm(format, isa, w, cols, rows, 1, aq, ad, asum, out, rows, accumulate);
}

int p4k_kernel_run(int index, const void *w, size_t cols, size_t rows, size_t t, const int8_t *aq, const float *ad,
                   const int32_t *asum, float *out, size_t ldo, int accumulate) {
    init();
    if (index < 0 || index >= kernel_count || !p4k_isa_available(all[index]->isa)) return P4K_EFORMAT;
    if (t == 0 || rows == 0) return 0;
    const p4k_job job = {all[index]->format, w, cols, rows, t, aq, ad, asum, out, ldo, accumulate};
    return all[index]->fn(&job) == 0 ? 0 : P4K_ENOMEM;
}

int p4k_block_sums(int format, const void *w_row, const int8_t *aq, const int32_t *asum, size_t nb, int32_t *out) {
    switch (format) {
    case P4K_Q8_0: p4k_sums_q8_0(w_row, aq, nb, out); return 0;
    case P4K_Q4_0: p4k_sums_q4_0(w_row, aq, asum, nb, out); return 0;
    default: return P4K_EFORMAT;
    }
}
