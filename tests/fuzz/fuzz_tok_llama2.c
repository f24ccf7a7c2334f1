/* SPDX-License-Identifier: MIT */
/* libFuzzer target: llama2.c tokenizer.bin loading (engine/tokenizer/tok_llama2.c), then, when
 * it loads, encode and decode. Input: the .bin, written to a memfd that
 * eng_tokenizer_load_llama2 opens by its /proc path. The vocabulary size it is given is the
 * number of entries the file holds (at least 259, the byte tokens), counted here the simple way,
 * plus the low two bits of the first byte minus one, so that one more or one fewer than the file
 * holds is tried too. Checks besides the sanitizers: a refusal has a one-line message naming the
 * file; a loaded tokenizer gives ids inside its vocabulary into buffers of exactly the size it
 * asked for, the same count whatever the buffer, a string for every id, "" outside. */
#include "fuzz.h"
#include "fuzz_tok.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const texts[] = {
    "Once upon a time, there was a little girl named Lily.\n\n  \t<s></s> 12345",
    "\xc3\xbf \xe2\x82\xac\xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac",
    "bad utf-8: \xff\xc3( \xed\xa0\x80 \xf4\x90\x80\x80 \x80\x80\x80\x80\x80",
    " ",
    "",
};

/* Entries in the file: score (4 bytes), length (4 bytes), text; until the data ends. */
static int count_entries(const uint8_t *d, size_t n)
{
    size_t off = 4;
    int k = 0;
    while (n >= off + 8 && k < 1 << 20) {
        int32_t len;
        memcpy(&len, d + off + 4, 4);
        if (len < 0 || (size_t)len > n - off - 8) break;
        off += 8 + (size_t)len;
        k++;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_with("tokenizer.bin", data, size);
    int V = count_entries(data, size) + (size ? (data[0] & 3) - 1 : 0);
    if (V < 259) V = 259;
    eng_tokenizer *t = (eng_tokenizer *)(void *)&path; /* must come back NULL */
    char err[512] = "";
    eng_status st = eng_tokenizer_load_llama2(path, V, &t, err, sizeof(err));
    if (st != ENG_OK) {
        if (t || !strstr(err, path) || strchr(err, '\n')) abort(); /* one clear line */
        return 0;
    }
    if (eng_tokenizer_vocab_size(t) != V) abort();
    fuzz_encode_texts(t, texts, sizeof(texts) / sizeof(texts[0]), data, size, 1);
    for (int id = 0; id < V; id++) {
        if (!eng_tokenizer_decode(t, id - 1, id) || !eng_tokenizer_decode(t, 1, id)) abort();
    }
    if (strcmp(eng_tokenizer_decode(t, -1, -1), "") || strcmp(eng_tokenizer_decode(t, -1, V), ""))
        abort();
    eng_tokenizer_free(t);
    return 0;
}
