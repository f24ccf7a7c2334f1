/* SPDX-License-Identifier: MIT */
/* The CUDA helpers of a build without CUDA: every pointer is host memory and no device is
 * visible. */
#include "coll_private.h"
#include "coll_cuda.h"

coll_memtype coll_cuda_memtype(const void *p)
{
    (void)p;
    return COLL_MEM_HOST;
}

int coll_cuda_device_count(void)
{
    return 0;
}
