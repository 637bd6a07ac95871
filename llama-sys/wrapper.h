/* The headers llama-sys binds. bindgen reads this file at build time; nothing generated is committed. */
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "gguf.h"
#ifdef LLAMA_SYS_MTMD
#include "mtmd.h"
#include "mtmd-helper.h"
#endif
#ifdef LLAMA_SYS_RPC
#include "ggml-rpc.h"
#endif
