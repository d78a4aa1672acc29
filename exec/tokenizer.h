/* Tokenizer from a Hugging Face tokenizer.json, in pure C: BPE models of two families
 *   - byte-level BPE (GPT-2, Llama 3, Qwen2/2.5/3 and `tokenizers`-trained ByteLevel files), with the
 *     pre-tokenizer regex of those files matched by hand (GPT-2 pattern; Llama-3 pattern with \p{N}{1,3};
 *     Qwen2 pattern with single digits);
 *   - SentencePiece-style BPE as Llama 2 / Mistral tokenizer.json files describe it (the "▁" metaspace via
 *     Prepend+Replace normalizers or a Metaspace pre-tokenizer, byte fallback <0xXX>, unk).
 * Added / special tokens are split out of the text first (longest match). Unicode classes (\p{L},
 * \p{N}, \s) are exact for ASCII and Latin-1 and approximate by block elsewhere; NFC normalizers are
 * accepted and treated as identity (input is assumed to be NFC already). */
#ifndef WIKV_EXEC_TOKENIZER_H
#define WIKV_EXEC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct wk_tokenizer wk_tokenizer;

enum {
    WK_TOK_ADD_SPECIAL = 1,  /* encode: add the post-processor template's tokens (e.g. BOS) */
    WK_TOK_SKIP_SPECIAL = 2  /* decode: leave special added tokens out */
};

/* Pre-tokenizer patterns recognised in tokenizer.json. */
typedef enum { WK_PRETOK_NONE = 0, WK_PRETOK_GPT2, WK_PRETOK_LLAMA3, WK_PRETOK_QWEN2 } wk_pretok_kind;

int wk_tokenizer_parse(const char *text, size_t len, const char *what, wk_tokenizer **out, wk_err *err);
int wk_tokenizer_load(const char *path, wk_tokenizer **out, wk_err *err);
/* DIR/tokenizer.json */
int wk_tokenizer_load_dir(const char *dir, wk_tokenizer **out, wk_err *err);
void wk_tokenizer_free(wk_tokenizer *t);

/* Encodes text[0..len) (UTF-8) into a malloc'ed array *ids of *n ids. */
int wk_tokenizer_encode(const wk_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids, size_t *n,
                        wk_err *err);
/* Decodes ids into a malloc'ed NUL-terminated string (*len bytes, may be invalid UTF-8 when the ids
 * split a character). Ids outside the vocabulary are an error. */
int wk_tokenizer_decode(const wk_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char **out, size_t *len,
                        wk_err *err);

int wk_tokenizer_vocab_size(const wk_tokenizer *t);       /* max id + 1 */
int wk_tokenizer_find(const wk_tokenizer *t, const char *piece); /* id of a vocab/added piece, or -1 */
const char *wk_tokenizer_piece(const wk_tokenizer *t, int id);   /* raw piece string, or NULL */
int wk_tokenizer_is_special(const wk_tokenizer *t, int id);
int wk_tokenizer_bos(const wk_tokenizer *t); /* first template token added by WK_TOK_ADD_SPECIAL, or -1 */
wk_pretok_kind wk_tokenizer_pretok(const wk_tokenizer *t);

/* Pre-tokenizer (exposed for tests): splits text into pieces by the pattern `kind`; calls emit for each
 * piece [start, start + len) in order; the pieces cover the text exactly. Returns the first non-zero
 * value emit returns, else 0. */
typedef int (*wk_pretok_emit)(void *ctx, size_t start, size_t len);
int wk_tokenizer_pretok_split(wk_pretok_kind kind, const char *text, size_t len, wk_pretok_emit emit, void *ctx);

#endif
