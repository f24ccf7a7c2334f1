/* SPDX-License-Identifier: MIT */
/* Tokenizers of the engine: the llama2.c format and Hugging Face tokenizer.json byte-level BPE.
 *
 * Thread safety: a tokenizer is used by one thread at a time (different tokenizers may be used by
 * different threads at once). Nothing global is mutable. */
#ifndef ENG_TOKENIZER_H
#define ENG_TOKENIZER_H

#include <stddef.h>

#include "eng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_tokenizer eng_tokenizer;

/* Loads a llama2.c tokenizer .bin holding vocab_size entries (the model's vocab size, absolute
 * value of the header field). On failure *out is NULL and err holds one line naming the file and
 * what is wrong (err may be NULL). */
eng_status eng_tokenizer_load_llama2(const char *path, int vocab_size, eng_tokenizer **out,
                                     char *err, size_t errlen);

/* Loads a tokenizer.json (model BPE, byte-level pre-tokenizer). BOS/EOS come from
 * generation_config.json or config.json in the same folder when present (bos_token_id,
 * eos_token_id; the first id of a list), else BOS from a TemplateProcessing post-processor. */
eng_status eng_tokenizer_load_hf(const char *tokenizer_json_path, eng_tokenizer **out, char *err,
                                 size_t errlen);

/* The tokenizer a model comes with: the llama2.c .bin named by tokenizer_file when given, else
 * MODEL/tokenizer.json when the model is a folder holding one. ENG_OK with *out NULL when there
 * is none (the caller works in token ids). */
eng_status eng_tokenizer_load_for_model(const char *model, const char *tokenizer_file,
                                        int vocab_size, eng_tokenizer **out, char *err,
                                        size_t errlen);

/* Encodes the NUL-terminated UTF-8 text (add_bos: prepend BOS when the tokenizer has one). Writes
 * at most max_ids ids and sets *n_ids to the number the text needs; if that is more than max_ids
 * it returns ENG_ERR_INVALID_ARG (ids may be NULL with max_ids 0 to ask for the count). */
eng_status eng_tokenizer_encode(const eng_tokenizer *t, const char *text, int add_bos, int *ids,
                                int max_ids, int *n_ids);

/* The text piece of id, given the id before it (-1 at the start). llama2.c: after BOS the leading
 * space is dropped; byte tokens <0xXX> give the raw byte. tokenizer.json: the raw bytes (a piece
 * may end inside a UTF-8 sequence; concatenate pieces). A NUL byte gives "". An id out of range
 * gives "". The pointer stays valid at least until the next call on t (in fact until free). */
const char *eng_tokenizer_decode(const eng_tokenizer *t, int prev_id, int id);

int eng_tokenizer_bos(const eng_tokenizer *t); /* -1 when none */
int eng_tokenizer_eos(const eng_tokenizer *t); /* -1 when none */
int eng_tokenizer_vocab_size(const eng_tokenizer *t);
void eng_tokenizer_free(eng_tokenizer *t);

#ifdef __cplusplus
}
#endif

#endif
