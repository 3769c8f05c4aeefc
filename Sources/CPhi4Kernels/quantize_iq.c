// Quantizers for the lattice IQ types (IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M),
// computing what llama.cpp's quantizer computes, operation for operation, so that the bytes
// written are the same.
//
// A lattice type stores, per 4 (IQ3) or 8 (IQ2, IQ1) values, the index of a grid entry — a point
// of a fixed codebook (256 to 2048 entries) whose coordinates are small levels —, plus signs
// and scales. Quantizing a group tries a range of candidate scales; at each, every entry's values
// are rounded to the nearest lattice point, and when that point is not in the grid, the best of
// its precomputed grid neighbours (by weighted squared error) is taken. The neighbour lists are
// built once per grid: for every lattice point not in the grid, the grid entries at its nearest
// 1 to 3 squared distances, in order of distance, then of index. IQ1 instead finds the best split
// of each group's sorted values into three levels exactly, then moves off-grid entries to their
// nearest neighbours.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#include "CPhi4Kernels.h"
#include "blocks.h"
#include "quantize.h"
#include "iq_grids.h"
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>



// ---- The lattice of IQ3: 4 coordinates in 0…7, code = Σ l_k · 8^k ------------------------------

// ---- The lattices: a grid entry's coordinates are levels (IQ3: 4 in 0…7; IQ2, IQ1: 8 in 0…2),
// its code Σ level_k · 2^(bits·k) with 3 or 2 bits per level --------------------------------------

enum { LATTICE_IQ3_XXS, LATTICE_IQ3_S, LATTICE_IQ2_XXS, LATTICE_IQ2_XS, LATTICE_IQ2_S, LATTICE_IQ1, LATTICES };

typedef struct {
    int size, dim, maxl, nwant;  // entries; coordinates per entry; largest level; distances kept per list
    int8_t (*pos)[8];            // entry i as odd coordinates 2l + 1
    int16_t *map;                // code → grid entry, or −1
    int32_t *offset;             // code off the grid → its list in `neighbours`: count, then entries
    uint16_t *neighbours;
} lattice;

static lattice lattices[LATTICES];

static inline int code_of(const lattice *g, const int8_t *L) {
    const int bits = g->dim == 4 ? 3 : 2;
    int u = 0;
    for (int i = 0; i < g->dim; i++) u |= L[i] << (bits * i);
    return u;
}

// The level of a grid byte: IQ3_XXS stores 4, 12, …, 52, 62; IQ3_S 2l + 1; IQ2 8, 25, 43; IQ1 −1, 0, 1.
static int level_of(int which, uint8_t b) {
    static const uint8_t xxs[8] = {4, 12, 20, 28, 36, 44, 52, 62};
    switch (which) {
    case LATTICE_IQ3_XXS:
        for (int l = 0; l < 8; l++)
            if (xxs[l] == b) return l;
        return 0;
    case LATTICE_IQ3_S: return (b - 1) / 2;
    case LATTICE_IQ1: return (int)(int8_t)b + 1;
    default: return b == 8 ? 0 : b == 25 ? 1 : 2;
    }
}

static void build_lattice(int which) {
    lattice *g = &lattices[which];
    static const int sizes[LATTICES] = {256, 512, 256, 512, 1024, 2048}, wants[LATTICES] = {2, 3, 2, 2, 1, 3};
    const int size = sizes[which], dim = which <= LATTICE_IQ3_S ? 4 : 8, maxl = dim == 4 ? 7 : 2;
    const int codes = dim == 4 ? 4096 : 43692;  // every code of levels ≤ maxl is below this
    g->dim = dim;
    g->maxl = maxl;
    g->nwant = wants[which];
    g->pos = calloc((size_t)size, 8);
    g->map = malloc((size_t)codes * sizeof(int16_t));
    g->offset = malloc((size_t)codes * sizeof(int32_t));
    int *dist = malloc((size_t)size * sizeof(int));
    size_t cap = (size_t)codes * 32, used = 0;
    g->neighbours = malloc(cap * sizeof(uint16_t));
    if (!g->pos || !g->map || !g->offset || !dist || !g->neighbours) goto fail;
    for (int i = 0; i < codes; i++) g->map[i] = -1;
    for (int i = 0; i < size; i++) {
        int8_t L[8];
        for (int k = 0; k < dim; k++) {
            const uint8_t b = dim == 4 ? (uint8_t)((which == LATTICE_IQ3_XXS ? p4k_iq3xxs_grid : p4k_iq3s_grid)[i] >> (8 * k))
                                       : (uint8_t)((which == LATTICE_IQ2_XXS ? p4k_iq2xxs_grid
                                                    : which == LATTICE_IQ2_XS ? p4k_iq2xs_grid
                                                    : which == LATTICE_IQ2_S  ? p4k_iq2s_grid
                                                                              : p4k_iq1s_grid)[i] >> (8 * k));
            L[k] = (int8_t)level_of(which, b);
            g->pos[i][k] = (int8_t)(2 * L[k] + 1);
        }
        g->map[code_of(g, L)] = (int16_t)i;
    }
    for (int u = 0; u < codes; u++) {
        g->offset[u] = -1;
        if (g->map[u] >= 0) continue;
        int p[8];
        for (int k = 0; k < dim; k++) p[k] = 2 * ((u >> ((dim == 4 ? 3 : 2) * k)) & (dim == 4 ? 7 : 3)) + 1;
        for (int j = 0; j < size; j++) {
            int d2 = 0;
            for (int k = 0; k < dim; k++) d2 += (g->pos[j][k] - p[k]) * (g->pos[j][k] - p[k]);
            dist[j] = d2;
        }
        // The entries at the nwant smallest distances, by distance, then index (what sorting the
        // (distance, index) pairs and cutting after the nwant-th distinct distance gives).
        int levels[3], nl = 0;
        while (nl < g->nwant) {
            int next = -1;
            for (int j = 0; j < size; j++)
                if ((nl == 0 || dist[j] > levels[nl - 1]) && (next < 0 || dist[j] < next)) next = dist[j];
            if (next < 0) break;
            levels[nl++] = next;
        }
        if (used + 1 + (size_t)size > cap) {
            cap *= 2;
            uint16_t *more = realloc(g->neighbours, cap * sizeof(uint16_t));
            if (!more) goto fail;
            g->neighbours = more;
        }
        g->offset[u] = (int32_t)used;
        const size_t start = used++;
        for (int l = 0; l < nl; l++)
            for (int j = 0; j < size; j++)
                if (dist[j] == levels[l]) g->neighbours[used++] = (uint16_t)j;
        g->neighbours[start] = (uint16_t)(used - start - 1);
    }
    free(dist);
    g->size = size;
    return;
fail:  // out of memory: size stays 0 and the quantizers write zero blocks
    free(dist);
    free(g->pos);
    free(g->map);
    free(g->offset);
    free(g->neighbours);
    memset(g, 0, sizeof *g);
}

static void build0(void) { build_lattice(0); }
static void build1(void) { build_lattice(1); }
static void build2(void) { build_lattice(2); }
static void build3(void) { build_lattice(3); }
static void build4(void) { build_lattice(4); }
static void build5(void) { build_lattice(5); }

static const lattice *get_lattice(int which) {
    static pthread_once_t once[LATTICES] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                            PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
    static void (*const builders[LATTICES])(void) = {build0, build1, build2, build3, build4, build5};
    pthread_once(&once[which], builders[which]);
    return &lattices[which];
}

// The grid entry among code u's neighbours nearest to xval at `scale` (weights w); L gets its levels.
static int best_neighbour(const lattice *g, int u, const float *xval, const float *w, float scale, int8_t *L) {
    const uint16_t *nb = g->neighbours + g->offset[u];
    float best = FLT_MAX;
    int index = nb[1];
    for (int j = 1; j <= nb[0]; j++) {
        float d2 = 0;
        for (int i = 0; i < g->dim; i++) {
            const float q = g->pos[nb[j]][i], diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) {
            best = d2;
            index = nb[j];
        }
    }
    for (int i = 0; i < g->dim; i++) L[i] = (int8_t)((g->pos[index][i] - 1) / 2);
    return index;
}

// Levels of one entry's values at inverse scale id, and their code.
static int round_entry(const lattice *g, const float *xval, float id, int8_t *L) {
    for (int i = 0; i < g->dim; i++) L[i] = (int8_t)imax(0, imin(g->maxl, nearest(0.5f * (id * xval[i] - 1))));
    return code_of(g, L);
}

static int grid_index(const lattice *g, const int8_t *L) {
    const int i = g->map[code_of(g, L)];
    return i < 0 ? 0 : i;  // always on the grid after the fits below
}

// One group of n values (signs taken out: xval ≥ 0) as grid entries: the scale search over
// 2·steps + 1 candidates (base + k·delta)/max, rounding every entry to the grid; then, at the
// best scale, the entries that were off the grid (all of them with `redo_all`) rounded again.
// Returns the scale; L holds the levels. (IQ3: n 32, base 15, delta 0.2; IQ2_XS / IQ2_S: n 16,
// base 5, delta 0.1.)
static float fit_group(const lattice *g, const float *xval, const float *weight, const float *waux, int n, float max,
                       int base, int steps, float delta, int redo_all, int8_t *L) {
    int8_t Laux[32];
    int on_grid[8], on_grid_aux[8];
    const int entries = n / g->dim;
    float best = 0, scale = max / base;
    for (int k = 0; k < entries; k++) on_grid[k] = !redo_all;
    for (int is = -steps; is <= steps; is++) {
        const float id = (base + is * delta) / max, this_scale = 1 / id;
        for (int k = 0; k < entries; k++) {
            const int u = round_entry(g, xval + g->dim * k, id, Laux + g->dim * k);
            on_grid_aux[k] = g->map[u] >= 0;
            if (!on_grid_aux[k]) best_neighbour(g, u, xval + g->dim * k, waux + g->dim * k, this_scale, Laux + g->dim * k);
        }
        float sumqx = 0, sumq2 = 0;
        for (int i = 0; i < n; i++) {
            const float w = weight[i], q = 2 * Laux[i] + 1;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(L, Laux, (size_t)n);
            memcpy(on_grid, on_grid_aux, sizeof(int) * (size_t)entries);
        }
    }
    int off = 0;
    for (int k = 0; k < entries; k++) off += !on_grid[k];
    if (off > 0 && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < entries; k++) {
            if (!redo_all && on_grid[k]) continue;
            const int u = round_entry(g, xval + g->dim * k, id, L + g->dim * k);
            if (g->map[u] < 0) best_neighbour(g, u, xval + g->dim * k, waux + g->dim * k, scale, L + g->dim * k);
        }
        float sumqx = 0, sumq2 = 0;
        for (int i = 0; i < n; i++) {
            const float w = weight[i], q = 2 * L[i] + 1;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    return scale;
}

static void group_weights(const float *xb, const float *qw, float sigma2, float *weight, float *waux) {
    for (int i = 0; i < 32; i++) weight[i] = qw ? qw[i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
    for (int i = 0; i < 32; i++) waux[i] = sqrtf(weight[i]);
}

static float super_block_sigma2(const float *x) {
    float s = 0;
    for (int i = 0; i < 256; i++) s += x[i] * x[i];
    return 2 * s / 256;
}

// IQ3_XXS: signs per 8 values with an even count (the cheapest value flips when odd), 7 bits stored.
static void iq3_xxs_block(const float *x, p4k_block_iq3_xxs *y, const float *qw) {
    const lattice *g = get_lattice(LATTICE_IQ3_XXS);
    float scales[8], weight[32], waux[32], xval[32], max_scale = 0;
    int8_t L[32];
    uint8_t q3[104];
    uint32_t sas[8];
    memset(q3, 0, sizeof q3);
    memset(sas, 0, sizeof sas);
    y->d = p4k_f32_to_fp16(0.0f);
    const float sigma2 = super_block_sigma2(x);
    for (int ib = 0; ib < 8; ib++) {
        const float *xb = x + 32 * ib;
        group_weights(xb, qw ? qw + 32 * ib : NULL, sigma2, weight, waux);
        uint8_t block_signs[4];
        for (int k = 0; k < 4; k++) {
            int nflip = 0;
            uint8_t s = 0;
            for (int i = 0; i < 8; i++) {
                if (xb[8 * k + i] >= 0) xval[8 * k + i] = xb[8 * k + i];
                else {
                    xval[8 * k + i] = -xb[8 * k + i];
                    nflip++;
                    s |= (uint8_t)(1 << i);
                }
            }
            if (nflip % 2) {
                int m = 0;
                float min = weight[8 * k] * xb[8 * k] * xb[8 * k];
                for (int i = 1; i < 8; i++) {
                    const float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                    if (ax < min) {
                        min = ax;
                        m = i;
                    }
                }
                xval[8 * k + m] = -xval[8 * k + m];
                s ^= (uint8_t)(1 << m);
            }
            block_signs[k] = s & 127;
        }
        float max = xval[0];
        for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
        if (max < 1e-8f) {
            scales[ib] = 0;
            continue;
        }
        float scale = fit_group(g, xval, weight, waux, 32, max, 15, 15, 0.2f, 0, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; k++) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
        }
        for (int k = 0; k < 8; k++) q3[8 * ib + k] = (uint8_t)grid_index(g, L + 4 * k);
        sas[ib] = block_signs[0] | ((uint32_t)block_signs[1] << 7) | ((uint32_t)block_signs[2] << 14) | ((uint32_t)block_signs[3] << 21);
        scales[ib] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }
    if (!max_scale) {
        memset(y->qs, 0, sizeof y->qs + sizeof y->sas);
        return;
    }
    const float d = max_scale / 31;
    y->d = p4k_f32_to_fp16(d * 1.0125f);
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ib++) {
        const int l = imax(0, imin(15, nearest(0.5f * (id * scales[ib] - 1))));
        sas[ib] |= (uint32_t)l << 28;
    }
    memcpy(y->qs, q3, 64);
    memcpy(y->sas, sas, 32);
}

// IQ3_S: a sign bit per value, 9-bit indices. A group of all zeros writes nothing and does not
// advance the index and sign positions (as llama.cpp: the next group's land in its place).
static void iq3_s_block(const float *x, p4k_block_iq3_s *y, const float *qw) {
    const lattice *g = get_lattice(LATTICE_IQ3_S);
    float scales[8], weight[32], waux[32], xval[32], max_scale = 0;
    int8_t L[32];
    memset(y, 0, sizeof *y);
    y->d = p4k_f32_to_fp16(0.0f);
    uint8_t *qs = y->qs, *signs = y->signs;
    const float sigma2 = super_block_sigma2(x);
    for (int ib = 0; ib < 8; ib++) {
        const float *xb = x + 32 * ib;
        group_weights(xb, qw ? qw + 32 * ib : NULL, sigma2, weight, waux);
        uint8_t block_signs[4];
        for (int k = 0; k < 4; k++) {
            uint8_t s = 0;
            for (int i = 0; i < 8; i++) {
                if (xb[8 * k + i] >= 0) xval[8 * k + i] = xb[8 * k + i];
                else {
                    xval[8 * k + i] = -xb[8 * k + i];
                    s |= (uint8_t)(1 << i);
                }
            }
            block_signs[k] = s;
        }
        float max = xval[0];
        for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
        if (!max) {
            scales[ib] = 0;
            continue;
        }
        float scale = fit_group(g, xval, weight, waux, 32, max, 15, 9, 0.2f, 1, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; k++) block_signs[k] = (uint8_t)~block_signs[k];
        }
        for (int k = 0; k < 8; k++) {
            const int index = grid_index(g, L + 4 * k);
            qs[k] = (uint8_t)(index & 255);
            y->qh[(ib * 8 + k) / 8] |= (uint8_t)((index >> 8) << ((ib * 8 + k) % 8));
        }
        qs += 8;
        memcpy(signs, block_signs, 4);
        signs += 4;
        scales[ib] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }
    if (!max_scale) return;
    const float d = max_scale / 31;
    y->d = p4k_f32_to_fp16(d * 1.033f);
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ib += 2) {
        const int l1 = imax(0, imin(15, nearest(0.5f * (id * scales[ib] - 1))));
        const int l2 = imax(0, imin(15, nearest(0.5f * (id * scales[ib + 1] - 1))));
        y->scales[ib / 2] = (uint8_t)(l1 | (l2 << 4));
    }
}

// Signs of 8 values out of x into xval; with `even`, an odd count flips the value of least
// w·x² back (IQ2_XXS, IQ2_XS store 7 sign bits, the eighth implied by parity).
static uint8_t take_signs(const float *x, const float *w, float *xval, int even) {
    int nflip = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; i++) {
        if (x[i] >= 0) xval[i] = x[i];
        else {
            xval[i] = -x[i];
            nflip++;
            s |= (uint8_t)(1 << i);
        }
    }
    if (even && nflip % 2) {
        int m = 0;
        float min = w[0] * x[0] * x[0];
        for (int i = 1; i < 8; i++) {
            const float ax = w[i] * x[i] * x[i];
            if (ax < min) {
                min = ax;
                m = i;
            }
        }
        xval[m] = -xval[m];
        s ^= (uint8_t)(1 << m);
    }
    return even ? s & 127 : s;
}

static float sum_sq(const float *x) {
    float s = 0;
    for (int i = 0; i < 256; i++) s += x[i] * x[i];
    return s;
}

static const float ones[256] = {
#define O8 1, 1, 1, 1, 1, 1, 1, 1
#define O64 O8, O8, O8, O8, O8, O8, O8, O8
    O64, O64, O64, O64
#undef O64
#undef O8
};

// IQ2_XXS: groups of 32; the first scale from p4k_fit_positive on 4 levels, 13 candidates.
static void iq2_xxs_block(const float *x, p4k_block_iq2_xxs *y, const float *qw) {
    const lattice *g = get_lattice(LATTICE_IQ2_XXS);
    float scales[8], weight[32], waux[32], xval[32], max_scale = 0;
    int8_t L[32], Laux[32];
    uint32_t q2[16];
    memset(q2, 0, sizeof q2);
    y->d = p4k_f32_to_fp16(0.0f);
    const float sigma2 = sum_sq(x) / 256;
    for (int ib = 0; ib < 8; ib++) {
        const float *xb = x + 32 * ib, *w = qw + 32 * ib;
        for (int i = 0; i < 32; i++) weight[i] = w[i] * sqrtf(sigma2 + xb[i] * xb[i]);
        for (int i = 0; i < 32; i++) waux[i] = sqrtf(weight[i]);
        uint8_t block_signs[4];
        for (int k = 0; k < 4; k++) block_signs[k] = take_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, 1);
        float max = xval[0];
        for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
        if (max < 1e-15f) {
            scales[ib] = 0;
            memset(L, 0, 32);
            continue;
        }
        float scale = p4k_fit_positive(32, 4, xval, (uint8_t *)L, weight);
        const float eff_max = scale * 3;
        if (eff_max <= 0) {
            scales[ib] = 0;
            memset(L, 0, 32);
            continue;
        }
        float best = 0;
        for (int is = -6; is <= 6; is++) {
            const float id = (5 + is * 0.1f) / eff_max, this_scale = 1 / id;
            for (int k = 0; k < 4; k++) {
                const int u = round_entry(g, xval + 8 * k, id, Laux + 8 * k);
                if (g->map[u] < 0) best_neighbour(g, u, xval + 8 * k, waux + 8 * k, this_scale, Laux + 8 * k);
            }
            float sumqx = 0, sumq2 = 0;
            for (int i = 0; i < 32; i++) {
                const float w2 = weight[i], q = 2 * Laux[i] + 1;
                sumqx += w2 * xval[i] * q;
                sumq2 += w2 * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                scale = sumqx / sumq2;
                best = scale * sumqx;
                memcpy(L, Laux, 32);
            }
        }
        if (scale > 0) {
            const float id = 1 / scale;
            for (int k = 0; k < 4; k++) {
                int8_t l8[8];
                const int u = round_entry(g, xval + 8 * k, id, l8);
                int index = g->map[u];
                if (index < 0) index = best_neighbour(g, u, xval + 8 * k, waux + 8 * k, scale, L + 8 * k);
                for (int i = 0; i < 8; i++) L[8 * k + i] = (int8_t)((g->pos[index][i] - 1) / 2);
            }
            float sumqx = 0, sumq2 = 0;
            for (int i = 0; i < 32; i++) {
                const float w2 = weight[i], q = 2 * L[i] + 1;
                sumqx += w2 * xval[i] * q;
                sumq2 += w2 * q * q;
            }
            if (sumq2 > 0) scale = sumqx / sumq2;
        }
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; k++) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
        }
        for (int k = 0; k < 4; k++) {
            q2[2 * ib] |= (uint32_t)grid_index(g, L + 8 * k) << (8 * k);
            q2[2 * ib + 1] |= (uint32_t)block_signs[k] << (7 * k);
        }
        scales[ib] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }
    if (!max_scale) {
        memset(y->qs, 0, 64);
        return;
    }
    const float d = max_scale / 31;
    y->d = p4k_f32_to_fp16(d);
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ib++) {
        const int l = imax(0, imin(15, nearest(0.5f * (id * scales[ib] - 1))));
        q2[2 * ib + 1] |= (uint32_t)l << 28;
    }
    memcpy(y->qs, q2, 64);
}

// IQ2_XS (`s` = 0) and IQ2_S (`s` = 1): groups of 16, two grid entries each.
static void iq2_16_block(const float *x, void *out, const float *qw, int s) {
    const lattice *g = get_lattice(s ? LATTICE_IQ2_S : LATTICE_IQ2_XS);
    p4k_block_iq2_xs *yx = out;
    p4k_block_iq2_s *ys = out;
    float scales[16], weight[16], waux[16], xval[16], max_scale = 0;
    int8_t L[16];
    uint16_t q2[32];
    if (s) {
        memset(ys, 0, sizeof *ys);
        ys->d = p4k_f32_to_fp16(0.0f);
    } else {
        yx->d = p4k_f32_to_fp16(0.0f);
        memset(q2, 0, sizeof q2);
        memset(yx->scales, 0, 8);
    }
    const float sigma2 = s ? 2 * sum_sq(x) / 256 : sum_sq(x) / 256;
    for (int ib = 0; ib < 16; ib++) {
        const float *xb = x + 16 * ib;
        if (qw)
            for (int i = 0; i < 16; i++) weight[i] = qw[16 * ib + i] * sqrtf(sigma2 + xb[i] * xb[i]);
        else
            for (int i = 0; i < 16; i++) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
        for (int i = 0; i < 16; i++) waux[i] = sqrtf(weight[i]);
        uint8_t block_signs[2];
        for (int k = 0; k < 2; k++) block_signs[k] = take_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, !s);
        float max = xval[0];
        for (int i = 1; i < 16; i++) max = max > xval[i] ? max : xval[i];
        memset(L, 0, 16);
        if (max < (s ? 1e-8f : 1e-15f)) {
            scales[ib] = 0;
            continue;
        }
        float scale = fit_group(g, xval, weight, waux, 16, max, 5, 9, 0.1f, 0, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 2; k++) block_signs[k] = (uint8_t)(s ? ~block_signs[k] : ~block_signs[k] & 127);
        }
        for (int k = 0; k < 2; k++) {
            const int index = grid_index(g, L + 8 * k);
            if (s) {
                const int i8 = 2 * ib + k;
                ys->qs[i8] = (uint8_t)(index & 255);
                ys->qh[i8 / 4] |= (uint8_t)((index >> 8) << (2 * (i8 % 4)));
                ys->signs[i8] = block_signs[k];
            } else {
                q2[2 * ib + k] = (uint16_t)(index | (block_signs[k] << 9));
            }
        }
        scales[ib] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }
    if (!max_scale) {
        if (!s) memset(yx->qs, 0, 64);
        return;
    }
    const float d = max_scale / 31, id = 1 / d;
    if (s) ys->d = p4k_f32_to_fp16(d * 0.9875f);
    else yx->d = p4k_f32_to_fp16(d);
    uint8_t *sc = s ? ys->scales : yx->scales;
    for (int ib = 0; ib < 16; ib++) {
        const int l = imax(0, imin(15, nearest(0.5f * (id * scales[ib] - 1))));
        if (ib % 2 == 0) sc[ib / 2] = (uint8_t)l;
        else sc[ib / 2] |= (uint8_t)(l << 4);
    }
    if (!s) memcpy(yx->qs, q2, 64);
}

// ---- IQ1_S / IQ1_M: levels −1, 0, 1 (shifted by ±1/8), the best split found exactly ------------

static int by_value(const void *a, const void *b) {
    const float l = *(const float *)a, r = *(const float *)b;
    return l < r ? -1 : l > r ? 1 : 0;
}

// Sorts the group's values, keeping their positions (pairs of a value and its index's bits).
static void sort_values(const float *xb, int n, float *pairs) {
    for (int j = 0; j < n; j++) {
        pairs[2 * j] = xb[j];
        memcpy(&pairs[2 * j + 1], &j, 4);
    }
    qsort(pairs, (size_t)n, 2 * sizeof(float), by_value);
}

static inline int pair_index(const float *pairs, int j) {
    int i;
    memcpy(&i, &pairs[2 * j + 1], 4);
    return i;
}

// The grid entry among code u's neighbours nearest to x (signed) at `scale` with level values xg.
static int best_neighbour_iq1(const lattice *g, int u, const float *x, const float *w, float scale, const float *xg,
                              int8_t *L) {
    const uint16_t *nb = g->neighbours + g->offset[u];
    float best = FLT_MAX;
    int index = nb[1];
    for (int j = 1; j <= nb[0]; j++) {
        float d2 = 0;
        for (int i = 0; i < 8; i++) {
            const float q = xg[(g->pos[nb[j]][i] - 1) / 2], diff = scale * q - x[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) {
            best = d2;
            index = nb[j];
        }
    }
    for (int i = 0; i < 8; i++) L[i] = (int8_t)((g->pos[index][i] - 1) / 2);
    return index;
}

static const float x_p[3] = {-1 + 0.125f, 0.125f, 1 + 0.125f}, x_m[3] = {-1 - 0.125f, -0.125f, 1 - 0.125f};

// Levels of a group from its sorted values and the best split: below b1 → 0, below b2 → 1, else 2.
static void split_levels(const float *pairs, int n, int b1, int b2, int8_t *L) {
    for (int j = 0; j < n; j++) L[pair_index(pairs, j)] = (int8_t)(j < b1 ? 0 : j < b2 ? 1 : 2);
}

// Each 8 levels of a group to a grid entry (off the grid: the neighbour nearest at `scale`, with
// entry k's level values xs[k]); when any entry moved, the scale refitted. Returns the scale.
static float iq1_entries(const lattice *g, int8_t *L, const float *xb, const float *weight, float scale,
                         const float *const *xs, int entries, uint16_t *index) {
    int all_on_grid = 1;
    for (int k = 0; k < entries; k++) {
        const int u = code_of(g, L + 8 * k);
        int gi = g->map[u];
        if (gi < 0) {
            all_on_grid = 0;
            gi = best_neighbour_iq1(g, u, xb + 8 * k, weight + 8 * k, scale, xs[k], L + 8 * k);
        }
        index[k] = (uint16_t)gi;
    }
    if (!all_on_grid) {
        float sumqx = 0, sumq2 = 0;
        for (int k = 0; k < entries; k++)
            for (int j = 0; j < 8; j++) {
                const float w = weight[8 * k + j], q = xs[k][(g->pos[index[k]][j] - 1) / 2];
                sumqx += w * q * xb[8 * k + j];
                sumq2 += w * q * q;
            }
        if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
    }
    return scale;
}

static void iq1_s_block(const float *x, p4k_block_iq1_s *y, const float *qw) {
    const lattice *g = get_lattice(LATTICE_IQ1);
    float scales[8], weight[32], sumx[33], sumw[33], pairs[64], max_scale = 0;
    int8_t L[32], shifts[8];
    uint16_t index[4];
    y->d = p4k_f32_to_fp16(0.0f);
    memset(y->qs, 0, 32);
    memset(y->qh, 0, 16);
    const float sigma2 = 2 * sum_sq(x) / 256;
    for (int ib = 0; ib < 8; ib++) {
        const float *xb = x + 32 * ib;
        for (int i = 0; i < 32; i++) weight[i] = qw[32 * ib + i] * sqrtf(sigma2 + xb[i] * xb[i]);
        float max = fabsf(xb[0]);
        for (int i = 1; i < 32; i++) max = max > fabsf(xb[i]) ? max : fabsf(xb[i]);
        if (max < 1e-12f) {
            scales[ib] = 0;
            shifts[ib] = 1;
            continue;
        }
        sort_values(xb, 32, pairs);
        sumx[0] = sumw[0] = 0;
        for (int j = 0; j < 32; j++) {
            const int i = pair_index(pairs, j);
            sumx[j + 1] = sumx[j] + weight[i] * xb[i];
            sumw[j + 1] = sumw[j] + weight[i];
        }
        float best = -FLT_MAX, scale = max;
        int b1 = -1, b2 = -1, shift = 0;
        for (int i1 = 0; i1 <= 32; i1++) {
            for (int i2 = i1; i2 <= 32; i2++) {
                float sumqx = (sumx[i1] - sumx[0]) * x_p[0] + (sumx[i2] - sumx[i1]) * x_p[1] + (sumx[32] - sumx[i2]) * x_p[2];
                float sumq2 = (sumw[i1] - sumw[0]) * x_p[0] * x_p[0] + (sumw[i2] - sumw[i1]) * x_p[1] * x_p[1] +
                              (sumw[32] - sumw[i2]) * x_p[2] * x_p[2];
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    b1 = i1;
                    b2 = i2;
                    shift = 1;
                }
                sumqx = (sumx[i1] - sumx[0]) * x_m[0] + (sumx[i2] - sumx[i1]) * x_m[1] + (sumx[32] - sumx[i2]) * x_m[2];
                sumq2 = (sumw[i1] - sumw[0]) * x_m[0] * x_m[0] + (sumw[i2] - sumw[i1]) * x_m[1] * x_m[1] +
                        (sumw[32] - sumw[i2]) * x_m[2] * x_m[2];
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    b1 = i1;
                    b2 = i2;
                    shift = -1;
                }
            }
        }
        if (b1 < 0 || b2 < 0 || shift == 0) {
            scales[ib] = 0;
            shifts[ib] = 1;
            continue;
        }
        split_levels(pairs, 32, b1, b2, L);
        if (scale < 0) {
            for (int j = 0; j < 32; j++) L[j] = (int8_t)(2 - L[j]);
            scale = -scale;
            shift = -shift;
        }
        const float *xx = shift == 1 ? x_p : x_m;
        const float *const xs[4] = {xx, xx, xx, xx};
        scale = iq1_entries(g, L, xb, weight, scale, xs, 4, index);
        uint16_t h = 0;
        for (int k = 0; k < 4; k++) {
            y->qs[4 * ib + k] = (uint8_t)(index[k] & 255);
            h |= (uint16_t)((index[k] >> 8) << (3 * k));
        }
        y->qh[ib] = h;
        scales[ib] = scale;
        shifts[ib] = (int8_t)shift;
        max_scale = max_scale > scale ? max_scale : scale;
    }
    if (!max_scale) return;
    const float d = max_scale / 15;
    y->d = p4k_f32_to_fp16(d * 1.125f);
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ib++) {
        int l = imax(0, imin(7, nearest(0.5f * (id * scales[ib] - 1))));
        if (shifts[ib] == -1) l |= 8;
        y->qh[ib] |= (uint16_t)(l << 12);
    }
}

static void iq1_m_block(const float *x, p4k_block_iq1_m *y, const float *qw) {
    const lattice *g = get_lattice(LATTICE_IQ1);
    static const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    float scales[16], weight[16], pairs[32], max_scale = 0;
    int8_t L[16], shifts[16];
    uint16_t index[2];
    memset(y, 0, sizeof *y);
    const float sigma2 = 2 * sum_sq(x) / 256;
    for (int ib = 0; ib < 16; ib++) {
        const float *xb = x + 16 * ib;
        for (int i = 0; i < 16; i++) weight[i] = qw ? qw[16 * ib + i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
        float max = fabsf(xb[0]);
        for (int i = 1; i < 16; i++) max = max > fabsf(xb[i]) ? max : fabsf(xb[i]);
        if (max < 1e-7f) {
            scales[ib] = 0;
            shifts[ib] = 0;
            continue;
        }
        sort_values(xb, 16, pairs);
        float best = -FLT_MAX, scale = max;
        int b1 = -1, b2 = -1, bk = -1;
        // Prefix sums per half of the group: each half has its own shift (x_p or x_m).
        float px[2][17], pw[2][17];
        px[0][0] = px[1][0] = 0;
        pw[0][0] = pw[1][0] = 0;
        for (int j = 0; j < 16; j++) {
            const int i = pair_index(pairs, j), h = i < 8 ? 0 : 1;
            px[h][j + 1] = px[h][j] + weight[i] * xb[i];
            px[1 - h][j + 1] = px[1 - h][j];
            pw[h][j + 1] = pw[h][j] + weight[i];
            pw[1 - h][j + 1] = pw[1 - h][j];
        }
        const float txs[2] = {px[0][16], px[1][16]}, tws[2] = {pw[0][16], pw[1][16]};
        const float p2 = x_p[2], m2 = x_m[2];
        const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1], cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
        const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1], cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
        for (int i1 = 0; i1 <= 16; i1++) {
            for (int i2 = i1; i2 <= 16; i2++) {
                float qx_p[2], qx_m[2], q2_p[2], q2_m[2], sumqx[4], sumq2[4];
                for (int h = 0; h < 2; h++) {
                    const float sx = px[h][i1] + px[h][i2];
                    qx_p[h] = txs[h] * p2 - sx;
                    qx_m[h] = txs[h] * m2 - sx;
                    q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                    q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                }
                sumqx[0] = qx_p[0] + qx_p[1];
                sumqx[1] = qx_p[0] + qx_m[1];
                sumqx[2] = qx_m[0] + qx_p[1];
                sumqx[3] = qx_m[0] + qx_m[1];
                sumq2[0] = q2_p[0] + q2_p[1];
                sumq2[1] = q2_p[0] + q2_m[1];
                sumq2[2] = q2_m[0] + q2_p[1];
                sumq2[3] = q2_m[0] + q2_m[1];
                for (int k = 0; k < 4; k++) {
                    if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best * sumq2[k]) {
                        scale = sumqx[k] / sumq2[k];
                        best = scale * sumqx[k];
                        b1 = i1;
                        b2 = i2;
                        bk = k;
                    }
                }
            }
        }
        if (b1 < 0 || b2 < 0 || bk < 0) {
            scales[ib] = 0;
            shifts[ib] = 0;
            continue;
        }
        split_levels(pairs, 16, b1, b2, L);
        if (scale < 0) {
            for (int j = 0; j < 16; j++) L[j] = (int8_t)(2 - L[j]);
            scale = -scale;
            bk = 3 - bk;
        }
        // The first 8 values' shift is bk's high bit, the second 8's its low bit (+ or −).
        const float *const xs[2] = {bk < 2 ? x_p : x_m, bk % 2 == 0 ? x_p : x_m};
        scale = iq1_entries(g, L, xb, weight, scale, xs, 2, index);
        y->qs[2 * ib] = (uint8_t)(index[0] & 255);
        y->qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
        y->qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
        scales[ib] = scale;
        shifts[ib] = (int8_t)bk;
        max_scale = max_scale > scale ? max_scale : scale;
    }
    if (!max_scale) return;
    uint16_t sc[4] = {0, 0, 0, 0};
    float d = max_scale / 15;
    const float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int ib = 0; ib < 16; ib++) {
        const int l = imax(0, imin(7, nearest(0.5f * (id * scales[ib] - 1))));
        sc[ib / 4] |= (uint16_t)(l << (3 * (ib % 4)));
        y->qh[ib] |= masks[shifts[ib]];
        const float *xb = x + 16 * ib;
        for (int i = 0; i < 16; i++) weight[i] = qw ? qw[16 * ib + i] * sqrtf(sigma2 + xb[i] * xb[i]) : xb[i] * xb[i];
        for (int k = 0; k < 2; k++) {
            const float *xx = (k == 0 ? shifts[ib] < 2 : shifts[ib] % 2 == 0) ? x_p : x_m;
            const int gi = y->qs[2 * ib + k] + ((y->qh[ib] << (8 - 4 * k)) & 0x700);
            for (int j = 0; j < 8; j++) {
                const float w = weight[8 * k + j], q = xx[(g->pos[gi][j] - 1) / 2] * (2 * l + 1);
                sumqx += w * q * xb[8 * k + j];
                sumq2 += w * q * q;
            }
        }
    }
    if (sumq2 > 0) d = sumqx / sumq2;
    const uint16_t h = p4k_f32_to_fp16(d * 1.1125f);
    sc[0] |= (uint16_t)((h & 0x000f) << 12);
    sc[1] |= (uint16_t)((h & 0x00f0) << 8);
    sc[2] |= (uint16_t)((h & 0x0f00) << 4);
    sc[3] |= (uint16_t)(h & 0xf000);
    memcpy(y->scales, sc, 8);
}

void p4k_quantize_iq_row(int format, const float *x, void *out, size_t n, const float *imatrix) {
    const int which = format == P4K_IQ3_XXS ? LATTICE_IQ3_XXS : format == P4K_IQ3_S ? LATTICE_IQ3_S
                      : format == P4K_IQ2_XXS ? LATTICE_IQ2_XXS : format == P4K_IQ2_XS ? LATTICE_IQ2_XS
                      : format == P4K_IQ2_S ? LATTICE_IQ2_S : LATTICE_IQ1;
    const int ready = get_lattice(which)->size != 0;
    const p4k_format_info *f = p4k_format((uint32_t)format);
    if (!ready || !f) {
        if (f) memset(out, 0, n / 256 * f->block_bytes);
        return;
    }
    for (size_t b = 0; b < n / 256; b++) {
        // The types llama.cpp only writes with an importance matrix take uniform importance without one.
        const float *qw = imatrix ? imatrix + 256 * b : NULL, *qw1 = qw ? qw : ones;
        const float *xb = x + 256 * b;
        switch (format) {
        case P4K_IQ3_XXS: iq3_xxs_block(xb, (p4k_block_iq3_xxs *)out + b, qw); break;
        case P4K_IQ3_S: iq3_s_block(xb, (p4k_block_iq3_s *)out + b, qw); break;
        case P4K_IQ2_XXS: iq2_xxs_block(xb, (p4k_block_iq2_xxs *)out + b, qw1); break;
        case P4K_IQ2_XS: iq2_16_block(xb, (p4k_block_iq2_xs *)out + b, qw1, 0); break;
        case P4K_IQ2_S: iq2_16_block(xb, (p4k_block_iq2_s *)out + b, qw, 1); break;
        case P4K_IQ1_S: iq1_s_block(xb, (p4k_block_iq1_s *)out + b, qw1); break;
        case P4K_IQ1_M: iq1_m_block(xb, (p4k_block_iq1_m *)out + b, qw); break;
        default: break;
        }
    }
}
