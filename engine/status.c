/* SPDX-License-Identifier: MIT */
/* Status strings, generated from ENG_STATUS_LIST. */
#include "eng.h"

const char *eng_status_str(eng_status s)
{
    switch (s) {
#define ENG_STATUS_CASE_(name, msg)                                                                \
    case name:                                                                                     \
        return msg;
        ENG_STATUS_LIST(ENG_STATUS_CASE_)
#undef ENG_STATUS_CASE_
    case ENG_STATUS_COUNT:
        break;
    }
    return "unknown status";
}
