// Records what upstream's `llama-mtmd-cli` computes, without changing what it computes.
//
// testkit links this file into upstream's unmodified tools/mtmd/mtmd-cli.cpp with
// `-Wl,--wrap=<symbol>` for the two functions below: the linker sends mtmd-cli's calls to the
// `__wrap_` functions here, which call the real function (`__real_`) and write what went in and
// came out, one `ollamars-ref` line each, to the file named by OLLAMARS_REF_RECORD (stderr when
// it is unset). Strings are written as hex, so that no byte of them can break a line.
// `common_sampler_sample` is a C++ function: its mangled name comes in as the macro
// OLLAMARS_SAMPLE_SYMBOL (testkit reads it from libcommon with nm). Written for the ollamars
// parity tests.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "llama.h"
#include "mtmd.h"

#ifndef OLLAMARS_SAMPLE_SYMBOL
#error "define OLLAMARS_SAMPLE_SYMBOL as the mangled name of common_sampler_sample"
#endif

struct common_sampler;

static FILE * record_file() {
    static FILE * f = nullptr;
    if (f == nullptr) {
        const char * path = getenv("OLLAMARS_REF_RECORD");
        f = (path != nullptr && path[0] != '\0') ? fopen(path, "w") : stderr;
        if (f == nullptr) {
            fprintf(stderr, "ollamars-ref error: cannot open %s\n", path);
            exit(3);
        }
    }
    return f;
}

static void put_hex(FILE * f, const char * s, size_t n) {
    static const char digits[] = "0123456789abcdef";
    fputc(' ', f);
    if (n == 0) {
        fputc('-', f);  // an empty string, still one field
    }
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char) s[i];
        fputc(digits[c >> 4], f);
        fputc(digits[c & 15], f);
    }
}

// The real and wrapped sampler, named by their linker symbols.
llama_token real_common_sampler_sample(common_sampler * smpl, llama_context * ctx, int idx, bool grammar_first)
    __asm__("__real_" OLLAMARS_SAMPLE_SYMBOL);
llama_token wrap_common_sampler_sample(common_sampler * smpl, llama_context * ctx, int idx, bool grammar_first)
    __asm__("__wrap_" OLLAMARS_SAMPLE_SYMBOL);

// Every sampled id, whether it is an end-of-generation id, and its piece as mtmd-cli prints it
// (common_token_to_piece with special tokens rendered).
llama_token wrap_common_sampler_sample(common_sampler * smpl, llama_context * ctx, int idx, bool grammar_first) {
    const llama_token id = real_common_sampler_sample(smpl, ctx, idx, grammar_first);
    const llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
    std::string piece(64, '\0');
    int32_t n = llama_token_to_piece(vocab, id, &piece[0], (int32_t) piece.size(), 0, true);
    if (n < 0) {
        piece.resize(-n);
        n = llama_token_to_piece(vocab, id, &piece[0], (int32_t) piece.size(), 0, true);
    }
    piece.resize(n < 0 ? 0 : n);
    FILE * f = record_file();
    fprintf(f, "ollamars-ref token %d %d", id, llama_vocab_is_eog(vocab, id) ? 1 : 0);
    put_hex(f, piece.data(), piece.size());
    fputc('\n', f);
    fflush(f);
    return id;
}

extern "C" {

int32_t __real_mtmd_tokenize_from_parts(const mtmd_context * ctx, mtmd_input_chunks * output,
                                        const mtmd_input_part * const * parts, size_t n_parts,
                                        bool add_special);

// The prompt as mtmd-cli hands it over (text parts, and a media marker for each bitmap: the
// formatted chat it split), then the chunks it became: text token ids, media token counts.
int32_t __wrap_mtmd_tokenize_from_parts(const mtmd_context * ctx, mtmd_input_chunks * output,
                                        const mtmd_input_part * const * parts, size_t n_parts,
                                        bool add_special) {
    FILE * f = record_file();
    fprintf(f, "ollamars-ref add_special %d\n", add_special ? 1 : 0);
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i]->text != nullptr) {
            fprintf(f, "ollamars-ref part text %d %d", parts[i]->text->add_special ? 1 : 0,
                    parts[i]->text->parse_special ? 1 : 0);
            put_hex(f, parts[i]->text->text, parts[i]->text->text_len);
            fputc('\n', f);
        } else {
            fprintf(f, "ollamars-ref part media");
            const char * marker = mtmd_default_marker();
            put_hex(f, marker, std::string(marker).size());
            fputc('\n', f);
        }
    }
    const int32_t res = __real_mtmd_tokenize_from_parts(ctx, output, parts, n_parts, add_special);
    fprintf(f, "ollamars-ref tokenize_result %d\n", res);
    if (res == 0) {
        for (size_t i = 0; i < mtmd_input_chunks_size(output); i++) {
            const mtmd_input_chunk * chunk = mtmd_input_chunks_get(output, i);
            if (mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
                size_t n = 0;
                const llama_token * ids = mtmd_input_chunk_get_tokens_text(chunk, &n);
                fprintf(f, "ollamars-ref chunk text");
                for (size_t j = 0; j < n; j++) {
                    fprintf(f, " %d", ids[j]);
                }
                fputc('\n', f);
            } else {
                fprintf(f, "ollamars-ref chunk media %zu\n", mtmd_input_chunk_get_n_tokens(chunk));
            }
        }
    }
    fflush(f);
    return res;
}

}  // extern "C"
