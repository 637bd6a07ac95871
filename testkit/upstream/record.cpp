// Records what upstream's `simple` program computes, without changing what it computes.
//
// testkit links this file into upstream's unmodified examples/simple/simple.cpp with
// `-Wl,--wrap=<symbol>` for the five functions below: the linker sends simple's calls to the
// `__wrap_` functions here, which call the real llama.cpp function (`__real_`) and print what it
// returned to stderr, one `ollamars-ref` line each. Written for the ollamars parity tests.
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <string>

#include "ggml-backend.h"
#include "llama.h"

extern "C" {

int32_t __real_llama_tokenize(const llama_vocab * vocab, const char * text, int32_t text_len,
                              llama_token * tokens, int32_t n_tokens_max, bool add_special,
                              bool parse_special);
llama_token __real_llama_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx);
bool __real_llama_vocab_is_eog(const llama_vocab * vocab, llama_token token);
void __real_llama_backend_init(void);
llama_context * __real_llama_init_from_model(llama_model * model, llama_context_params params);

// The prompt's token ids, from the call that fills the buffer (the first one only sizes it).
int32_t __wrap_llama_tokenize(const llama_vocab * vocab, const char * text, int32_t text_len,
                              llama_token * tokens, int32_t n_tokens_max, bool add_special,
                              bool parse_special) {
    const int32_t n = __real_llama_tokenize(vocab, text, text_len, tokens, n_tokens_max, add_special,
                                            parse_special);
    if (n >= 0 && tokens != nullptr) {
        fprintf(stderr, "ollamars-ref prompt");
        for (int32_t i = 0; i < n; i++) {
            fprintf(stderr, " %d", tokens[i]);
        }
        fprintf(stderr, "\n");
    }
    return n;
}

// Every sampled id. Before the first one, a record separator on stdout marks where the echoed
// prompt ends and the generated text begins.
llama_token __wrap_llama_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx) {
    static bool first = true;
    if (first) {
        first = false;
        fputs("\x1e", stdout);
    }
    const llama_token id = __real_llama_sampler_sample(smpl, ctx, idx);
    fprintf(stderr, "ollamars-ref token %d\n", id);
    return id;
}

// Which sampled id ended the generation (simple stops there without printing it).
bool __wrap_llama_vocab_is_eog(const llama_vocab * vocab, llama_token token) {
    const bool eog = __real_llama_vocab_is_eog(vocab, token);
    if (eog) {
        fprintf(stderr, "ollamars-ref eog %d\n", token);
    }
    return eog;
}

// Builds with GGML_BACKEND_DL have no backend until a module is loaded; upstream's tools load
// them through common's init, which `simple` does not use. OLLAMARS_REF_MODULE loads the module
// files it lists (':'-separated: one CPU variant, a GPU backend), OLLAMARS_REF_BACKENDS_DIR every module of a folder; without either,
// nothing is loaded here (static builds).
void __wrap_llama_backend_init(void) {
    const char * module = getenv("OLLAMARS_REF_MODULE");
    const char * dir    = getenv("OLLAMARS_REF_BACKENDS_DIR");
    if (module != nullptr && module[0] != '\0') {
        std::string list(module);
        size_t start = 0;
        while (start <= list.size()) {
            const size_t end  = std::min(list.find(':', start), list.size());
            const std::string path = list.substr(start, end - start);
            if (!path.empty() && ggml_backend_load(path.c_str()) == nullptr) {
                fprintf(stderr, "ollamars-ref error: could not load backend module %s\n", path.c_str());
                exit(3);
            }
            start = end + 1;
        }
    } else if (dir != nullptr && dir[0] != '\0') {
        ggml_backend_load_all_from_path(dir);
    }
    for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
        fprintf(stderr, "ollamars-ref backend %s\n", ggml_backend_reg_name(ggml_backend_reg_get(i)));
    }
    __real_llama_backend_init();
}

// The one parameter `simple` takes no argument for: its thread count (llama.cpp's default
// otherwise). OLLAMARS_REF_THREADS sets it to the value the test runs with, so that both sides
// split the work the same way (and an oversubscribed default does not crawl on a small machine).
llama_context * __wrap_llama_init_from_model(llama_model * model, llama_context_params params) {
    const char * threads = getenv("OLLAMARS_REF_THREADS");
    if (threads != nullptr && atoi(threads) > 0) {
        params.n_threads       = atoi(threads);
        params.n_threads_batch = atoi(threads);
    }
    fprintf(stderr, "ollamars-ref context n_ctx %u n_batch %u n_threads %d\n", params.n_ctx, params.n_batch,
            params.n_threads);
    return __real_llama_init_from_model(model, params);
}

}  // extern "C"
