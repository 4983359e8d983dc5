/*
 * Block-wide reduction of small POD statistics (Welford, OnlineSoftmax, float) for the
 * one-block-per-plane kernels: warp shuffles, then one shared-memory round across warps.
 */
#pragma once

#include "ccAttentionPlugin/ccAttentionMath.h"
#include "common/launchGeometry.h"
#include "simamPlugin/simamMath.h"

#include <cuda_fp16.h>

namespace fer_edge
{

__device__ __forceinline__ float shflDown(float v, int offset)
{
    return __shfl_down_sync(0xffffffffU, v, offset);
}

__device__ __forceinline__ Welford shflDown(Welford s, int offset)
{
    return Welford{shflDown(s.count, offset), shflDown(s.mean, offset), shflDown(s.m2, offset)};
}

__device__ __forceinline__ OnlineSoftmax shflDown(OnlineSoftmax s, int offset)
{
    return OnlineSoftmax{shflDown(s.max, offset), shflDown(s.sum, offset)};
}

//! Reduces `value` over the block (blockDim.x a multiple of 32, <= kMaxBlock); every thread gets
//! the result. `merge(a, b)` must be associative; `identity` is its neutral element.
template <typename T, typename Merge>
__device__ T blockReduce(T value, T identity, Merge merge)
{
    __shared__ T partial[kMaxBlock / kWarpSize];
    __shared__ T result;
    int const lane = threadIdx.x % kWarpSize;
    int const warp = threadIdx.x / kWarpSize;
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    {
        value = merge(value, shflDown(value, offset));
    }
    if (lane == 0)
    {
        partial[warp] = value;
    }
    __syncthreads();
    if (warp == 0)
    {
        int const nbWarps = static_cast<int>(blockDim.x) / kWarpSize;
        value = lane < nbWarps ? partial[lane] : identity;
        for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
        {
            value = merge(value, shflDown(value, offset));
        }
        if (lane == 0)
        {
            result = value;
        }
    }
    __syncthreads();
    return result;
}

//! FP32 arithmetic for every storage type.
__device__ __forceinline__ float toFloat(float v)
{
    return v;
}
__device__ __forceinline__ float toFloat(__half v)
{
    return __half2float(v);
}
template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v)
{
    return v;
}
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}

} // namespace fer_edge
