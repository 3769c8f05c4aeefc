/*
 * phi4.h — the C ABI of libphi4, an inference engine for Microsoft's Phi-4 on CPUs.
 *
 * This is the one public header. Link with -lphi4 (see `make lib` / `make install`).
 * Every function is safe to call with any argument: bad input returns an error, it never
 * crashes the host process.
 */
#ifndef PHI4_H
#define PHI4_H

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header; compare with phi4_version() at run time. */
#define PHI4_VERSION_MAJOR 0
#define PHI4_VERSION_MINOR 1
#define PHI4_VERSION_PATCH 0

/*
 * phi4_version: the library's version as "MAJOR.MINOR.PATCH".
 * Returns a pointer to static storage; never NULL; do not free. Thread-safe.
 */
const char *phi4_version(void);

#ifdef __cplusplus
}
#endif

#endif /* PHI4_H */
