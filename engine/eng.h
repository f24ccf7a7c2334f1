/* PLACEHOLDER written by the tokenizer helper: the engine helper owns this file and the lead
 * reconciles it. Only the status list the tokenizer needs is here. */
#ifndef ENG_H
#define ENG_H

#include <stddef.h>

#define ENG_STATUS_LIST(X)                                                                         \
    X(ENG_OK, "success")                                                                           \
    X(ENG_ERR_INVALID_ARG, "invalid argument")                                                     \
    X(ENG_ERR_IO, "I/O error")                                                                     \
    X(ENG_ERR_FORMAT, "bad file format")                                                           \
    X(ENG_ERR_UNSUPPORTED, "not supported")                                                        \
    X(ENG_ERR_NOMEM, "out of memory")                                                              \
    X(ENG_ERR_COLL, "collective communication failed")

#define ENG_STATUS_ENUM_(name, msg) name,
typedef enum { ENG_STATUS_LIST(ENG_STATUS_ENUM_) ENG_STATUS_COUNT } eng_status;
#undef ENG_STATUS_ENUM_

#endif
