#include "eng_internal.h"
eng_status eng_load_hf(const char *dir, eng_source *src, char *err, size_t errlen)
{
    (void)src;
    return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen, "%s: HF folders not yet supported", dir);
}
