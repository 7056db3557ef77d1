/* CUDA devices: discovery. A machine without a GPU (or without a driver) has 0. */
#include <cuda_runtime.h>

extern "C" int wk_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky error */
        return 0;
    }
    return n;
}
