/*
 * ollamars: work around GCC's `_tile_loadconfig` (gcc <= 13) under-declaring what it reads.
 *
 * GCC's amxtileintrin.h implements `_tile_loadconfig(p)` as inline asm whose only memory input
 * is `*(const void **)p`: 8 bytes. The tile configuration is 64 bytes, so the optimiser may drop
 * the stores of `rows[]`/`colsb[]` that precede the call as dead. gcc 12 does exactly that in
 * ggml-cpu's `ggml_tile_config_init` (ggml/src/ggml-cpu/amx/mmq.cpp): `ldtilecfg` then loads an
 * invalid configuration and the CPU raises #GP. Upstream: llama.cpp issue #20824, PR #26954.
 *
 * llama-sys force-includes this header (`-include`) into ggml's C++ sources when it builds with
 * GCC for x86-64. It changes no upstream file: after <immintrin.h> has declared the intrinsic,
 * the macro below redirects later uses to a version whose asm operand covers all 64 bytes.
 * It is inert unless the translation unit is compiled with AMX enabled (__AMX_TILE__), and
 * LLAMA_SYS_AMX_FIX=0 turns it off.
 */
#ifndef OLLAMARS_AMX_TILECFG_FIX_H
#define OLLAMARS_AMX_TILECFG_FIX_H
#if defined(__AMX_TILE__) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h>
struct ollamars_tilecfg_bytes { unsigned char bytes[64]; };
static inline __attribute__((__always_inline__)) void ollamars_tile_loadconfig(const void *config) {
    __asm__ volatile("ldtilecfg\t%X0" ::"m"(*(const struct ollamars_tilecfg_bytes *)config));
}
#undef _tile_loadconfig
#define _tile_loadconfig(config) ollamars_tile_loadconfig(config)
#endif
#endif
