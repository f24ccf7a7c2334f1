/* SPDX-License-Identifier: MIT */
/* libFuzzer target: Hugging Face tokenizer.json loading (engine/tokenizer/tok_hf_load.c), then,
 * when it loads, encode and decode with what was loaded. Input: the tokenizer.json, written to a
 * memfd that eng_tokenizer_load_hf opens by its /proc path (its folder holds no config.json).
 * Checks besides the sanitizers: a refusal has a one-line message naming the file; a loaded
 * tokenizer gives ids inside its vocabulary into buffers of exactly the size it asked for (a
 * write past them is an ASan report), the same count whatever the buffer, a string for every id
 * and "" for ids outside the vocabulary. */
#include "fuzz.h"
#include "fuzz_tok.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const texts[] = {
    "Hello world, it's 2024! They'LL 've\n\n  x  \t<|endoftext|> y",
    "\xc3\xbf \xe2\x82\xac\xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac 123456 <s></s>",
    "bad utf-8: \xff\xc3( \xed\xa0\x80 \xf4\x90\x80\x80 \r\n\r\n",
    " ",
    "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_with("tokenizer.json", data, size);
    eng_tokenizer *t = (eng_tokenizer *)(void *)&path; /* must come back NULL */
    char err[512] = "";
    eng_status st = eng_tokenizer_load_hf(path, &t, err, sizeof(err));
    if (st != ENG_OK) {
        if (t || !strstr(err, path) || strchr(err, '\n')) abort(); /* one clear line */
        return 0;
    }
    int V = eng_tokenizer_vocab_size(t);
    int bos = eng_tokenizer_bos(t), eos = eng_tokenizer_eos(t);
    if (V <= 0 || bos < -1 || bos >= V || eos < -1 || eos >= V) abort();
    /* and the input itself as text: JSON with the tokenizer's own pieces */
    fuzz_encode_texts(t, texts, sizeof(texts) / sizeof(texts[0]), data, size, 0);
    for (int id = 0; id < V; id++)
        if (!eng_tokenizer_decode(t, id - 1, id)) abort();
    if (strcmp(eng_tokenizer_decode(t, -1, -1), "") || strcmp(eng_tokenizer_decode(t, -1, V), ""))
        abort();
    eng_tokenizer_free(t);
    return 0;
}
