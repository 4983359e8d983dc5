/*
 * SimAM kernel: one block per (n, c) plane; a Welford read pass, a block merge, a fused
 * elementwise pass. The arithmetic is simamMath.h, the same the CPU reference runs.
 */
#include "common/blockReduce.cuh"
#include "simamPlugin/simamKernel.h"
#include "simamPlugin/simamMath.h"

namespace fer_edge
{
namespace
{

struct WelfordMerge
{
    __device__ Welford operator()(Welford a, Welford b) const
    {
        return welfordMerge(a, b);
    }
};

template <typename T>
__global__ void simamKernel(T const* __restrict__ x, T* __restrict__ y, int64_t hw, float lambda)
{
    int64_t const base = static_cast<int64_t>(blockIdx.x) * hw;
    Welford s = welfordInit();
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x)
    {
        s = welfordUpdate(s, toFloat(x[base + i]));
    }
    s = blockReduce(s, welfordInit(), WelfordMerge{});
    float const inv = simamInvDenominator(s, lambda);
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x)
    {
        y[base + i] = fromFloat<T>(simamApply(toFloat(x[base + i]), s.mean, inv));
    }
}

} // namespace

template <typename T>
cudaError_t launchSimam(T const* x, T* y, int64_t planes, int64_t hw, float lambda, cudaStream_t stream)
{
    if (planes == 0 || hw == 0)
    {
        return cudaSuccess;
    }
    if (planes > 0x7fffffffLL || hw < 0)
    {
        return cudaErrorInvalidValue;
    }
    simamKernel<T><<<static_cast<unsigned int>(planes), blockSizeFor(hw), 0, stream>>>(x, y, hw, lambda);
    return cudaGetLastError();
}

template cudaError_t launchSimam<float>(float const*, float*, int64_t, int64_t, float, cudaStream_t);
template cudaError_t launchSimam<__half>(__half const*, __half*, int64_t, int64_t, float, cudaStream_t);

} // namespace fer_edge
