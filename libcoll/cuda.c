/* SPDX-License-Identifier: MIT */
/* CUDA helpers: pointer kinds, device count, error translation (cuda_none.c: the same
 * without CUDA). */
#include "coll_private.h"
#include "coll_cuda.h"

coll_status coll_cuda_status(cudaError_t e, const char *what, char *err, size_t errlen)
{
    if (e == cudaSuccess) return COLL_OK;
    return coll_fail(COLL_ERR_CUDA, err, errlen, "CUDA %s: %s (%s)", what, cudaGetErrorString(e),
                     cudaGetErrorName(e));
}

coll_memtype coll_cuda_memtype(const void *p)
{
    struct cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error so later calls are not blamed */
        return COLL_MEM_HOST;
    }
    return (a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged) ? COLL_MEM_DEVICE
                                                                               : COLL_MEM_HOST;
}

int coll_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}
