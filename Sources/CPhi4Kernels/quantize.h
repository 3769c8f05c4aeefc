// Helpers the quantizers share (quantize.c, quantize_iq.c): llama.cpp's rounding and the search
// for positive group scales.
#ifndef P4K_QUANTIZE_H
#define P4K_QUANTIZE_H
#include <stdint.h>
#include <string.h>

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

// Round to nearest (ties to even) with the float trick: the integer lands in the low mantissa
// bits of 1.5 · 2^23 + v (|v| < 2^22).
static inline int nearest(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// Positive values (group scales or mins) to levels 0…nmax against one scale, weights qw
// (quantize.c).
float p4k_fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *qw);

#endif
