/*
 * The CUDA kernels as a tiny C library for tools/gpu_check.py (GPU machines only, never CI):
 * host buffers in, host buffer out, mean kernel time over `repeats` launches (CUDA events).
 * Built by gpu_check.py with nvcc together with simamKernel.cu and ccAttentionKernel.cu.
 */
#include "ccAttentionPlugin/ccAttentionKernel.h"
#include "simamPlugin/simamKernel.h"

#include <cstdio>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace
{
template <typename T>
cudaError_t launch(int op, void* const* in, void* out, long long planes, long long hw, float lambda, cudaStream_t s)
{
    if (op == 0)
    {
        return fer_edge::launchSimam(static_cast<T const*>(in[0]), static_cast<T*>(out), planes, hw, lambda, s);
    }
    return fer_edge::launchCcAttention(static_cast<T const*>(in[0]), static_cast<T const*>(in[1]),
        static_cast<T const*>(in[2]), static_cast<T const*>(in[3]), static_cast<T*>(out), planes, hw, s);
}
} // namespace

extern "C" __attribute__((visibility("default"))) int ferEdgeKernelCheck(int op, int half, void const* const* hostIn,
    void* hostOut, long long planes, long long hw, float lambda, int repeats, float* msPerLaunch, char* error,
    int errorLength)
{
    int const nbInputs = op == 0 ? 1 : 4;
    size_t const bytes = static_cast<size_t>(planes * hw) * (half ? 2 : 4);
    void* dIn[4] = {nullptr, nullptr, nullptr, nullptr};
    void* dOut = nullptr;
    cudaEvent_t start = nullptr;
    cudaEvent_t stop = nullptr;
    cudaError_t status = cudaSuccess;
#define FER_TRY(call)                                                                                                  \
    do                                                                                                                 \
    {                                                                                                                  \
        status = (call);                                                                                               \
        if (status != cudaSuccess)                                                                                     \
        {                                                                                                              \
            std::snprintf(error, static_cast<size_t>(errorLength), "%s: %s", #call, cudaGetErrorString(status));      \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)
    for (int i = 0; i < nbInputs; ++i)
    {
        FER_TRY(cudaMalloc(&dIn[i], bytes));
        FER_TRY(cudaMemcpy(dIn[i], hostIn[i], bytes, cudaMemcpyHostToDevice));
    }
    FER_TRY(cudaMalloc(&dOut, bytes));
    FER_TRY(cudaEventCreate(&start));
    FER_TRY(cudaEventCreate(&stop));
    FER_TRY(half ? launch<__half>(op, dIn, dOut, planes, hw, lambda, nullptr)
                 : launch<float>(op, dIn, dOut, planes, hw, lambda, nullptr)); // warm-up, and the checked result
    FER_TRY(cudaDeviceSynchronize());
    FER_TRY(cudaMemcpy(hostOut, dOut, bytes, cudaMemcpyDeviceToHost));
    FER_TRY(cudaEventRecord(start));
    for (int r = 0; r < repeats; ++r)
    {
        FER_TRY(half ? launch<__half>(op, dIn, dOut, planes, hw, lambda, nullptr)
                     : launch<float>(op, dIn, dOut, planes, hw, lambda, nullptr));
    }
    FER_TRY(cudaEventRecord(stop));
    FER_TRY(cudaEventSynchronize(stop));
    {
        float total = 0.F;
        FER_TRY(cudaEventElapsedTime(&total, start, stop));
        *msPerLaunch = repeats > 0 ? total / static_cast<float>(repeats) : 0.F;
    }
done:
#undef FER_TRY
    for (void* p : dIn)
    {
        cudaFree(p);
    }
    cudaFree(dOut);
    if (start != nullptr)
    {
        cudaEventDestroy(start);
    }
    if (stop != nullptr)
    {
        cudaEventDestroy(stop);
    }
    return static_cast<int>(status);
}
