// SHA-256 (FIPS 180-4), to verify downloaded files against the sha256 their repository lists.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// A running SHA-256.
typedef struct {
    uint32_t h[8];
    uint64_t length;      // bytes hashed so far
    uint8_t block[64];    // pending input
    size_t used;          // bytes in block
} p4h_sha256;

/// Starts a hash.
void p4h_sha256_init(p4h_sha256 *s);
/// Adds `n` bytes.
void p4h_sha256_update(p4h_sha256 *s, const void *data, size_t n);
/// Finishes: the 32-byte digest.
void p4h_sha256_final(p4h_sha256 *s, uint8_t digest[32]);
