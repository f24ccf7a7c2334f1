/* SPDX-License-Identifier: MIT */
/* CUDA and NCCL error translation: the one place their codes become coll_status. */
#ifndef COLL_CUDA_H
#define COLL_CUDA_H
#ifdef HAVE_CUDA
#include "coll_private.h"
#include <cuda_runtime_api.h>

/* COLL_OK, or COLL_ERR_CUDA with "<what>: <cuda message> (<code name>)" in err. */
coll_status coll_cuda_status(cudaError_t e, const char *what, char *err, size_t errlen);

/* Inside a function with `err`, `errlen`, `st` and the named cleanup label. */
#define CUDA_CHECK(call, label)                                                                    \
    do {                                                                                           \
        if ((st = coll_cuda_status((call), #call, err, errlen)) != COLL_OK) goto label;            \
    } while (0)
#endif
#endif
