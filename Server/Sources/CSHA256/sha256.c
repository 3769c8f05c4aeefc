// SHA-256 as FIPS 180-4 defines it: the portable compression function, and one with the x86 SHA
// extensions (SHA-NI: Intel since Ice Lake / Goldmont, AMD since Zen), chosen at run time.
#include "sha256.h"
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void compress_portable(uint32_t h[8], const uint8_t *p, size_t blocks) {
    for (; blocks > 0; blocks--, p += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; i++) {
            const uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
        for (int i = 0; i < 64; i++) {
            const uint32_t t1 = k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
            const uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }
}

#if defined(__x86_64__)
// The SHA extensions: sha256rnds2 does two rounds on the state held as (ABEF, CDGH); sha256msg1 /
// sha256msg2 extend the message schedule four words at a time.
__attribute__((target("sha,sse4.1"))) static void compress_shani(uint32_t h[8], const uint8_t *p, size_t blocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_loadu_si128((const __m128i *)&h[0]);      // A B C D (lanes 0..3)
    __m128i s1 = _mm_loadu_si128((const __m128i *)&h[4]);     // E F G H
    t = _mm_shuffle_epi32(t, 0xB1);                           // B A D C
    s1 = _mm_shuffle_epi32(s1, 0x1B);                         // H G F E
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);                   // ABEF (as F E B A lanes)
    s1 = _mm_blend_epi16(s1, t, 0xF0);                        // CDGH
    for (; blocks > 0; blocks--, p += 64) {
        const __m128i a0 = s0, c0 = s1;
        __m128i m[4];
        for (int i = 0; i < 4; i++) m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
        for (int r = 0; r < 16; r++) {
            __m128i msg = _mm_add_epi32(m[r % 4], _mm_loadu_si128((const __m128i *)&K[4 * r]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, msg);  // two rounds each: (s0, s1) is (ABEF, CDGH) again
            if (r < 12) {
                // the next schedule words W[16+4r..] from m[r], m[r+1], m[r+2], m[r+3]
                __m128i x = _mm_sha256msg1_epu32(m[r % 4], m[(r + 1) % 4]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(m[(r + 3) % 4], m[(r + 2) % 4], 4));
                m[r % 4] = _mm_sha256msg2_epu32(x, m[(r + 3) % 4]);
            }
        }
        s0 = _mm_add_epi32(s0, a0);
        s1 = _mm_add_epi32(s1, c0);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);                          // FEBA
    s1 = _mm_shuffle_epi32(s1, 0xB1);                         // DCHG
    s0 = _mm_blend_epi16(t, s1, 0xF0);                        // DCBA
    s1 = _mm_alignr_epi8(s1, t, 8);                           // ABEF
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

static int has_shani(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const int sha = (b >> 29) & 1;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return sha && ((c >> 19) & 1) && ((c >> 9) & 1);  // SHA, SSE4.1, SSSE3
}
#endif

static void compress(uint32_t h[8], const uint8_t *p, size_t blocks) {
#if defined(__x86_64__)
    static int shani = -1;
    if (shani < 0) shani = has_shani();
    if (shani) { compress_shani(h, p, blocks); return; }
#endif
    compress_portable(h, p, blocks);
}

void p4h_sha256_init(p4h_sha256 *s) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->length = 0;
    s->used = 0;
}

void p4h_sha256_update(p4h_sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->length += n;
    if (s->used > 0) {
        const size_t take = n < 64 - s->used ? n : 64 - s->used;
        memcpy(s->block + s->used, p, take);
        s->used += take; p += take; n -= take;
        if (s->used < 64) return;
        compress(s->h, s->block, 1);
        s->used = 0;
    }
    if (n >= 64) {
        compress(s->h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(s->block, p, n);
    s->used = n;
}

void p4h_sha256_final(p4h_sha256 *s, uint8_t digest[32]) {
    const uint64_t bits = s->length * 8;
    s->block[s->used++] = 0x80;
    if (s->used > 56) {
        memset(s->block + s->used, 0, 64 - s->used);
        compress(s->h, s->block, 1);
        s->used = 0;
    }
    memset(s->block + s->used, 0, 56 - s->used);
    for (int i = 0; i < 8; i++) s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(s->h, s->block, 1);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(s->h[i] >> 24); digest[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(s->h[i] >> 8); digest[4 * i + 3] = (uint8_t)s->h[i];
    }
}
