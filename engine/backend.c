/* SPDX-License-Identifier: MIT */
/* Which backend runs a model: the one asked for, or for ENG_DEVICE_AUTO the first that can
 * run here (a GPU, then the CPU). */
#include "backend.h"

const eng_backend *eng_backend_pick(const eng_load_params *p, char *err, size_t errlen)
{
    switch (p->device) {
    case ENG_DEVICE_CPU:
        return &eng_backend_cpu;
    case ENG_DEVICE_CUDA:
#ifdef ENG_WITH_CUDA
        if (eng_backend_cuda.available(p, err, errlen) != ENG_OK) return NULL;
        return &eng_backend_cuda;
#else
        eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                 "--device cuda: this build has no CUDA backend (configure --with-cuda)");
        return NULL;
#endif
    case ENG_DEVICE_AUTO:
#ifdef ENG_WITH_CUDA
        if (eng_backend_cuda.available(p, NULL, 0) == ENG_OK) return &eng_backend_cuda;
#endif
        return &eng_backend_cpu;
    }
    eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "eng_load_params: unknown device %d",
             (int)p->device);
    return NULL;
}

const eng_backend *eng_backend_gpu(void)
{
#ifdef ENG_WITH_CUDA
    return &eng_backend_cuda;
#else
    return NULL;
#endif
}

#ifdef ENG_WITH_CUDA
void eng_cuda_print_devices(FILE *out); /* cuda/cuda_backend.c */
#endif

void eng_backends_print(FILE *out)
{
    fprintf(out, "%-12s = %s\n", "backend cpu", "built in (kernels picked at run time)");
#ifdef ENG_WITH_CUDA
    eng_cuda_print_devices(out);
#else
    fprintf(out, "%-12s = %s\n", "backend cuda", "not built (configure --with-cuda)");
#endif
}
