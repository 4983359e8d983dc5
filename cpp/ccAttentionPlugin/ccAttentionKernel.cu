/*
 * CC Attention kernel: one block per (n, c) plane; a sum pass for mean(X), an online-softmax
 * pass for the normaliser, a fused output pass. The arithmetic is ccAttentionMath.h, the same the
 * CPU reference runs.
 */
#include "ccAttentionPlugin/ccAttentionKernel.h"
#include "ccAttentionPlugin/ccAttentionMath.h"
#include "common/blockReduce.cuh"

namespace fer_edge
{
namespace
{

struct SumMerge
{
    __device__ float operator()(float a, float b) const
    {
        return a + b;
    }
};

struct SoftmaxMerge
{
    __device__ OnlineSoftmax operator()(OnlineSoftmax a, OnlineSoftmax b) const
    {
        return onlineSoftmaxMerge(a, b);
    }
};

template <typename T>
__global__ void ccAttentionKernel(T const* __restrict__ x, T const* __restrict__ q, T const* __restrict__ k,
    T const* __restrict__ v, T* __restrict__ y, int64_t hw)
{
    int64_t const base = static_cast<int64_t>(blockIdx.x) * hw;
    float sum = 0.F;
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x)
    {
        sum += toFloat(x[base + i]);
    }
    float const meanX = blockReduce(sum, 0.F, SumMerge{}) / static_cast<float>(hw);
    OnlineSoftmax s = onlineSoftmaxInit();
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x)
    {
        s = onlineSoftmaxUpdate(s, ccLogit(toFloat(k[base + i]), toFloat(q[base + i]), meanX));
    }
    s = blockReduce(s, onlineSoftmaxInit(), SoftmaxMerge{});
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x)
    {
        float const logit = ccLogit(toFloat(k[base + i]), toFloat(q[base + i]), meanX);
        y[base + i] = fromFloat<T>(ccApply(toFloat(x[base + i]), toFloat(v[base + i]), logit, s));
    }
}

} // namespace

template <typename T>
cudaError_t launchCcAttention(
    T const* x, T const* q, T const* k, T const* v, T* y, int64_t planes, int64_t hw, cudaStream_t stream)
{
    if (planes == 0 || hw == 0)
    {
        return cudaSuccess;
    }
    if (planes > 0x7fffffffLL || hw < 0)
    {
        return cudaErrorInvalidValue;
    }
    ccAttentionKernel<T><<<static_cast<unsigned int>(planes), blockSizeFor(hw), 0, stream>>>(x, q, k, v, y, hw);
    return cudaGetLastError();
}

template cudaError_t launchCcAttention<float>(
    float const*, float const*, float const*, float const*, float*, int64_t, int64_t, cudaStream_t);
template cudaError_t launchCcAttention<__half>(
    __half const*, __half const*, __half const*, __half const*, __half*, int64_t, int64_t, cudaStream_t);

} // namespace fer_edge
