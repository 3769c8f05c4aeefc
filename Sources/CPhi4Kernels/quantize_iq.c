// Quantizers for the lattice IQ types (IQ3_XXS, IQ3_S), computing what llama.cpp's quantizer
// computes, operation for operation, so that the bytes written are the same.
//
// A lattice type stores, per 4 values, the index of a grid entry (a point of a fixed codebook of
// 256 or 512 points with coordinates in 0…7), plus signs and a scale per 32 values. Quantizing a
// group tries 19 or 31 candidate scales; at each, every 4 values are rounded to the nearest
// lattice point, and when that point is not in the grid, the best of its precomputed grid
// neighbours (by weighted squared error) is taken. The neighbour lists are built once per grid:
// for every point of the lattice that is not in the grid, the grid entries at the nearest 2
// (IQ3_XXS) or 3 (IQ3_S) squared distances, in order of distance, then of index.
#pragma clang fp contract(off)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") // the same for GCC: no fused multiply-add, identical bits on every path
#endif
#include "CPhi4Kernels.h"
#include "blocks.h"
#include "iq_grids.h"
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static inline int nearest(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// ---- The lattice of IQ3: 4 coordinates in 0…7, code = Σ l_k · 8^k ------------------------------

typedef struct {
    int size;              // grid entries
    int8_t pos[512][4];    // entry i as odd coordinates 2l + 1
    int16_t map[4096];     // code → grid entry, or −1
    int32_t offset[4096];  // code off the grid → its list in `neighbours`: count, then entries
    uint16_t *neighbours;
} iq3_lattice;

static iq3_lattice lattice[2];  // IQ3_XXS (256 entries), IQ3_S (512)
static pthread_once_t lattice_once[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static int compare_pairs(const void *a, const void *b) {
    const int *l = a, *r = b;
    return l[0] < r[0] ? -1 : l[0] > r[0] ? 1 : l[1] < r[1] ? -1 : l[1] > r[1] ? 1 : 0;
}

// The level (0…7) of a grid byte: IQ3_XXS stores 4, 12, …, 52, 62; IQ3_S stores 2l + 1.
static int level_of(int which, uint8_t b) {
    static const uint8_t xxs[8] = {4, 12, 20, 28, 36, 44, 52, 62};
    if (which == 1) return (b - 1) / 2;
    for (int l = 0; l < 8; l++)
        if (xxs[l] == b) return l;
    return 0;
}

static void build_lattice(int which) {
    iq3_lattice *g = &lattice[which];
    g->size = which == 0 ? 256 : 512;
    const int nwant = which == 0 ? 2 : 3;
    for (int i = 0; i < 4096; i++) g->map[i] = -1;
    for (int i = 0; i < g->size; i++) {
        const uint32_t e = which == 0 ? p4k_iq3xxs_grid[i] : p4k_iq3s_grid[i];
        int code = 0;
        for (int k = 0; k < 4; k++) {
            const int l = level_of(which, (uint8_t)(e >> (8 * k)));
            g->pos[i][k] = (int8_t)(2 * l + 1);
            code |= l << (3 * k);
        }
        g->map[code] = (int16_t)i;
    }
    int *dist = malloc(2 * (size_t)g->size * sizeof(int));
    size_t cap = 4096 * 64, used = 0;
    g->neighbours = malloc(cap * sizeof(uint16_t));
    if (!dist || !g->neighbours) goto fail;
    for (int u = 0; u < 4096; u++) {
        g->offset[u] = -1;
        if (g->map[u] >= 0) continue;
        for (int j = 0; j < g->size; j++) {
            int d2 = 0;
            for (int k = 0; k < 4; k++) {
                const int p = 2 * ((u >> (3 * k)) & 7) + 1, q = g->pos[j][k];
                d2 += (q - p) * (q - p);
            }
            dist[2 * j] = d2;
            dist[2 * j + 1] = j;
        }
        qsort(dist, (size_t)g->size, 2 * sizeof(int), compare_pairs);
        if (used + 1 + (size_t)g->size > cap) {
            cap *= 2;
            uint16_t *more = realloc(g->neighbours, cap * sizeof(uint16_t));
            if (!more) goto fail;
            g->neighbours = more;
        }
        g->offset[u] = (int32_t)used;
        const size_t start = used++;
        int n = 0, have = 1, d2 = dist[0];
        for (int j = 0; j < g->size; j++) {
            if (dist[2 * j] > d2) {
                if (have == nwant) break;
                d2 = dist[2 * j];
                have++;
            }
            g->neighbours[used++] = (uint16_t)dist[2 * j + 1];
            n++;
        }
        g->neighbours[start] = (uint16_t)n;
    }
    free(dist);
    return;
fail:  // out of memory: the quantizers write zero blocks
    free(dist);
    free(g->neighbours);
    g->neighbours = NULL;
    g->size = 0;
}

static void build_xxs(void) { build_lattice(0); }
static void build_s(void) { build_lattice(1); }

static const iq3_lattice *get_lattice(int which) {
    pthread_once(&lattice_once[which], which == 0 ? build_xxs : build_s);
    return &lattice[which];
}

// The grid entry among code u's neighbours nearest to xval at `scale` (weights w); L gets its levels.
static int best_neighbour(const iq3_lattice *g, int u, const float *xval, const float *w, float scale, int8_t *L) {
    const uint16_t *nb = g->neighbours + g->offset[u];
    float best = FLT_MAX;
    int index = nb[1];
    for (int j = 1; j <= nb[0]; j++) {
        const int8_t *pg = g->pos[nb[j]];
        float d2 = 0;
        for (int i = 0; i < 4; i++) {
            const float q = pg[i], diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) {
            best = d2;
            index = nb[j];
        }
    }
    for (int i = 0; i < 4; i++) L[i] = (int8_t)((g->pos[index][i] - 1) / 2);
    return index;
}

// Levels of 4 values at inverse scale id, and their code.
static int round_four(const float *xval, float id, int8_t *L) {
    int u = 0;
    for (int i = 0; i < 4; i++) {
        L[i] = (int8_t)imax(0, imin(7, nearest(0.5f * (id * xval[i] - 1))));
        u |= L[i] << (3 * i);
    }
    return u;
}

// One group of 32 values (signs taken out: xval ≥ 0): the scale search over `steps` candidates
// each side, rounding to the grid; then, with the best scale, the groups of 4 that were off the
// grid (IQ3_XXS) or all of them (IQ3_S) rounded again. Returns the scale; L holds the levels.
static float fit_group(const iq3_lattice *g, const float *xval, const float *weight, const float *waux, float max,
                       int steps, int redo_all, int8_t *L) {
    int8_t Laux[32];
    int on_grid[8], on_grid_aux[8];
    float best = 0, scale = max / 15;
    for (int k = 0; k < 8; k++) on_grid[k] = !redo_all;
    for (int is = -steps; is <= steps; is++) {
        const float id = (15 + is * 0.2f) / max, this_scale = 1 / id;
        for (int k = 0; k < 8; k++) {
            const int u = round_four(xval + 4 * k, id, Laux + 4 * k);
            on_grid_aux[k] = g->map[u] >= 0;
            if (!on_grid_aux[k]) best_neighbour(g, u, xval + 4 * k, waux + 4 * k, this_scale, Laux + 4 * k);
        }
        float sumqx = 0, sumq2 = 0;
        for (int i = 0; i < 32; i++) {
            const float w = weight[i], q = 2 * Laux[i] + 1;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(L, Laux, 32);
            memcpy(on_grid, on_grid_aux, sizeof on_grid);
        }
    }
    int off = 0;
    for (int k = 0; k < 8; k++) off += !on_grid[k];
    if (off > 0 && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < 8; k++) {
            if (!redo_all && on_grid[k]) continue;
            int8_t l4[4];
            const int u = round_four(xval + 4 * k, id, l4);
            int index = g->map[u];
            if (index < 0) index = best_neighbour(g, u, xval + 4 * k, waux + 4 * k, scale, L + 4 * k);
            for (int i = 0; i < 4; i++) L[4 * k + i] = (int8_t)((g->pos[index][i] - 1) / 2);
        }
        float sumqx = 0, sumq2 = 0;
        for (int i = 0; i < 32; i++) {
            const float w = weight[i], q = 2 * L[i] + 1;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    return scale;
}

static int grid_index(const iq3_lattice *g, const int8_t *L) {
    int u = 0;
    for (int i = 0; i < 4; i++) u |= L[i] << (3 * i);
    return g->map[u] < 0 ? 0 : g->map[u];  // always on the grid after fit_group
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
    const iq3_lattice *g = get_lattice(0);
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
        float scale = fit_group(g, xval, weight, waux, max, 15, 0, L);
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
    const iq3_lattice *g = get_lattice(1);
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
        float scale = fit_group(g, xval, weight, waux, max, 9, 1, L);
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

void p4k_quantize_iq_row(int format, const float *x, void *out, size_t n, const float *imatrix) {
    if (get_lattice(format == P4K_IQ3_XXS ? 0 : 1)->size == 0) {
        memset(out, 0, n / 256 * (format == P4K_IQ3_XXS ? sizeof(p4k_block_iq3_xxs) : sizeof(p4k_block_iq3_s)));
        return;
    }
    for (size_t b = 0; b < n / 256; b++) {
        const float *qw = imatrix ? imatrix + 256 * b : NULL;
        if (format == P4K_IQ3_XXS) iq3_xxs_block(x + 256 * b, (p4k_block_iq3_xxs *)out + b, qw);
        else if (format == P4K_IQ3_S) iq3_s_block(x + 256 * b, (p4k_block_iq3_s *)out + b, qw);
    }
}
