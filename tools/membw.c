/* membw.c — sequential read bandwidth with N threads over a buffer of SIZE GiB (median of 5).
 *   cc -O2 -pthread tools/membw.c -o membw && ./membw 2 4 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t n_bytes;
static int n_threads;
static uint64_t *buf;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
    size_t id = (size_t)arg, words = n_bytes / 8, a = words / n_threads * id, b = a + words / n_threads;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = a; i + 4 <= b; i += 4) {
        s0 += buf[i];
        s1 += buf[i + 1];
        s2 += buf[i + 2];
        s3 += buf[i + 3];
    }
    static volatile uint64_t sink;
    sink = s0 + s1 + s2 + s3;
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    n_threads = argc > 1 ? atoi(argv[1]) : 2;
    n_bytes = (size_t)(argc > 2 ? atof(argv[2]) : 4) * (1ull << 30);
    buf = aligned_alloc(64, n_bytes);
    memset(buf, 1, n_bytes);
    double r[5];
    for (int k = 0; k < 5; k++) {
        pthread_t th[64];
        double t = now();
        for (long i = 0; i < n_threads; i++) pthread_create(&th[i], NULL, reader, (void *)i);
        for (int i = 0; i < n_threads; i++) pthread_join(th[i], NULL);
        r[k] = n_bytes / (now() - t) / 1e9;
    }
    qsort(r, 5, sizeof r[0], cmp);
    printf("%.2f\n", r[2]);
    free(buf);
    return 0;
}
