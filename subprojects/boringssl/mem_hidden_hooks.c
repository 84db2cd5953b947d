/*
 * BoringSSL's crypto/mem.c, compiled with its optional allocator hooks made
 * private to libxg2g.
 *
 * mem.c declares weak references to OPENSSL_memory_alloc/_free/_get_size and
 * sdallocx so that a program which links BoringSSL statically can supply its
 * own allocator. In a shared library those references would stay undefined
 * and be bound at load time to whatever the process exports under those
 * names (another copy of BoringSSL, a jemalloc's sdallocx), which is exactly
 * the mixing this private build exists to avoid. Declaring them hidden first
 * makes the linker resolve them inside libxg2g.so, to nothing, so the plain
 * malloc/free path is always taken and the names never reach the dynamic
 * symbol table.
 */
#include <stddef.h>

__attribute__((weak, visibility("hidden"))) void *OPENSSL_memory_alloc(size_t size);
__attribute__((weak, visibility("hidden"))) void OPENSSL_memory_free(void *ptr);
__attribute__((weak, visibility("hidden"))) size_t OPENSSL_memory_get_size(void *ptr);
__attribute__((weak, visibility("hidden"))) void sdallocx(void *ptr, size_t size, int flags);

#include "cache/src/src/crypto/mem.c"
