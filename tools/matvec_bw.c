// The decode kernel's streaming rate against a plain read of the same number of bytes: two
// threads run p4k_matvec (Q4_0 or Q8_0, 5120 columns) over halves of a ~2 GB weight matrix,
// alternating with two threads summing a buffer of the same size, and the medians of both are
// printed in GB/s. When the kernel keeps up with the plain read, the rest of a decode step
// (thread hand-offs, attention, norms) is what separates the engine from the read bandwidth.
//
//   clang -O2 -pthread -I Sources/CPhi4Kernels/include tools/matvec_bw.c Sources/CPhi4Kernels/*.c -lm -o matvec_bw
//
// (clang, as SwiftPM builds the kernels: GCC 12 compiles the AVX2 row kernels ~30 % slower.)
//   ./matvec_bw [q4_0|q8_0] [runs 9] [FILE]    (FILE: read the weights from a mapped file instead)
#include "CPhi4Kernels.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int format;
static size_t rows, cols = 5120, rb, nb, nbytes;
static const uint8_t *w;
static int8_t *aq;
static float *ad, *out;
static int32_t *as;
static uint64_t *buf;
volatile uint64_t sink;  // keeps the plain read from being optimized away

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *matvec_half(void *arg) {
    const size_t half = (size_t)arg, r0 = rows / 2 * half, n = half ? rows - r0 : rows / 2;
    p4k_matvec(format, -1, w + r0 * rb, cols, n, aq, ad, as, out + r0, 0);
    return NULL;
}

static void *read_half(void *arg) {
    const size_t half = (size_t)arg, words = nbytes / 8, a = words / 2 * half, b = half ? words : a + words / 2;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = a; i + 4 <= b; i += 4) {
        s0 += buf[i];
        s1 += buf[i + 1];
        s2 += buf[i + 2];
        s3 += buf[i + 3];
    }
    sink = s0 + s1 + s2 + s3;
    return NULL;
}

static double two_threads(void *(*fn)(void *)) {
    pthread_t th[2];
    const double t = now();
    for (size_t i = 0; i < 2; i++) pthread_create(&th[i], NULL, fn, (void *)i);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    return now() - t;
}

int main(int argc, char **argv) {
    format = argc > 1 && !strcmp(argv[1], "q8_0") ? P4K_Q8_0 : P4K_Q4_0;
    const int runs = argc > 2 ? atoi(argv[2]) : 9;
    if (runs < 1 || runs > 1000) return 2;
    rb = p4k_row_bytes(format, cols);
    nb = cols / 32;
    rows = (size_t)2e9 / rb;
    nbytes = rows * rb;
    if (argc > 3) {  // any bytes will do: the speed does not depend on the values
        const int fd = open(argv[3], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || (size_t)st.st_size < nbytes) {
            fprintf(stderr, "%s: cannot map %zu bytes\n", argv[3], nbytes);
            return 1;
        }
        w = mmap(NULL, nbytes, PROT_READ, MAP_SHARED, fd, 0);
        if (w == MAP_FAILED) return 1;
    } else {
        uint8_t *m = malloc(nbytes);
        float *x = malloc(cols * sizeof(float));
        if (!m || !x) return 1;
        srand(1);
        for (size_t r = 0; r < rows; r++) {
            if (r < 64)
                for (size_t i = 0; i < cols; i++) x[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
            if (format == P4K_Q8_0) p4k_quantize_q8_0(x, m + r * rb, cols);
            else p4k_quantize_q4_0(x, m + r * rb, cols);
        }
        free(x);
        w = m;
    }
    float *x = malloc(cols * sizeof(float));
    aq = malloc(cols);
    ad = malloc(nb * sizeof(float));
    as = malloc(nb * sizeof(int32_t));
    out = malloc(rows * sizeof(float));
    buf = malloc(nbytes);
    double *tk = malloc(runs * sizeof(double)), *tr = malloc(runs * sizeof(double));
    if (!x || !aq || !ad || !as || !out || !buf || !tk || !tr) return 1;
    for (size_t i = 0; i < cols; i++) x[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
    p4k_quantize_activation(x, cols, aq, ad, as);
    memset(buf, 1, nbytes);
    two_threads(matvec_half);  // warm up (page cache, page tables)
    for (int i = 0; i < runs; i++) {
        tk[i] = two_threads(matvec_half);
        tr[i] = two_threads(read_half);
    }
    qsort(tk, (size_t)runs, sizeof(double), by_value);
    qsort(tr, (size_t)runs, sizeof(double), by_value);
    printf("%s, %.2f GB of weights, 2 threads, median of %d, kernels %s\n", format == P4K_Q8_0 ? "q8_0" : "q4_0",
           (double)nbytes / 1e9, runs, p4k_isa_name(p4k_isa_best()));
    printf("p4k_matvec  %.1f GB/s\nplain read  %.1f GB/s\nratio       %.2f\n", (double)nbytes / tk[runs / 2] * 1e-9,
           (double)nbytes / tr[runs / 2] * 1e-9, tr[runs / 2] / tk[runs / 2]);
    return 0;
}
