/* SPDX-License-Identifier: MIT */
/* Tokenizer entry points shared by the formats, error lines and file reading. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tok_impl.h"
#include "common/errline.h"

eng_status tok_fail(eng_status st, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_errline_v(err, errlen, fmt, ap);
    va_end(ap);
    rc_errline_escape(err, errlen);
    return st;
}

eng_status tok_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO is refused below (not a regular file) instead of blocking open(). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return tok_fail(ENG_ERR_IO, err, errlen, "%s: cannot open: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return tok_fail(ENG_ERR_NOMEM, err, errlen, "%s: out of memory", path);
    }
    eng_status st = ENG_OK;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = tok_fail(ENG_ERR_IO, err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        goto close_file;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = tok_fail(ENG_ERR_IO, err, errlen, "%s: not a regular file", path);
        goto close_file;
    }
    /* Tokenizer files are megabytes at most; refuse absurd sizes before allocating. */
    if (sb.st_size > (off_t)1 << 30) {
        st = tok_fail(ENG_ERR_FORMAT, err, errlen, "%s: %lld bytes is too large for a tokenizer",
                      path, (long long)sb.st_size);
        goto close_file;
    }
    size_t n = (size_t)sb.st_size;
    char *b = malloc(n + 1);
    if (!b) {
        st = tok_fail(ENG_ERR_NOMEM, err, errlen, "%s: out of memory for %zu bytes", path, n);
        goto close_file;
    }
    if (fread(b, 1, n, f) != n) {
        st = tok_fail(ENG_ERR_IO, err, errlen, "%s: read failed", path);
        free(b);
        goto close_file;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
close_file:
    fclose(f);
    return st;
}

eng_status eng_tokenizer_encode(const eng_tokenizer *t, const char *text, int add_bos, int *ids,
                                int max_ids, int *n_ids)
{
    if (n_ids) *n_ids = 0;
    if (!t || !text || !n_ids || max_ids < 0 || (!ids && max_ids > 0)) return ENG_ERR_INVALID_ARG;
    tok_out out = {.ids = ids, .cap = max_ids, .n = 0};
    if (add_bos && t->bos >= 0) tok_out_push(&out, t->bos);
    eng_status st = t->ops->encode(t, text, &out);
    if (st != ENG_OK) return st;
    *n_ids = out.n;
    return out.n > max_ids ? ENG_ERR_INVALID_ARG : ENG_OK;
}

const char *eng_tokenizer_decode(const eng_tokenizer *t, int prev_id, int id)
{
    if (!t || id < 0 || id >= t->vocab_size) return "";
    return t->ops->decode(t, prev_id, id);
}

int eng_tokenizer_bos(const eng_tokenizer *t)
{
    return t ? t->bos : -1;
}
int eng_tokenizer_eos(const eng_tokenizer *t)
{
    return t ? t->eos : -1;
}
int eng_tokenizer_vocab_size(const eng_tokenizer *t)
{
    return t ? t->vocab_size : 0;
}

void eng_tokenizer_free(eng_tokenizer *t)
{
    if (t) t->ops->destroy(t);
}

eng_status eng_tokenizer_load_for_model(const char *model, const char *tokenizer_file,
                                        int vocab_size, eng_tokenizer **out, char *err,
                                        size_t errlen)
{
    *out = NULL;
    if (tokenizer_file)
        return eng_tokenizer_load_llama2(tokenizer_file, vocab_size, out, err, errlen);
    struct stat sb;
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer.json", model);
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(path, &sb) == 0)
        return eng_tokenizer_load_hf(path, out, err, errlen);
    return ENG_OK;
}
