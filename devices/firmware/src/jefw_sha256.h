/* SHA-256 (FIPS 180-4), to check every bundle file against manifest.json without any library. */
#ifndef JEFW_SHA256_H
#define JEFW_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char block[64];
    size_t used;
} jefw_sha256_ctx;

void jefw_sha256_init(jefw_sha256_ctx *c);
void jefw_sha256_update(jefw_sha256_ctx *c, const void *data, size_t n);
void jefw_sha256_hex(jefw_sha256_ctx *c, char hex[65]); /* finishes the hash: lower-case hex, NUL-terminated */
/* Hash a file; returns 0 and fills hex / *bytes, or -1 (errno set) if it cannot be read. */
int jefw_sha256_file(const char *path, char hex[65], unsigned long long *bytes);

#ifdef __cplusplus
}
#endif
#endif
