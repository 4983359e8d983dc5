/*
 * CC Attention (fused core) CUDA launcher. Knows no TensorRT types: raw device pointers in,
 * cudaError_t out.
 */
#pragma once

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace fer_edge
{

//! y = x + softmax_HW(k * mean_HW(x) + q) * v over `planes` contiguous planes of `hw` values
//! (NCHW: planes = N*C, hw = H*W). T is float or __half; accumulation is FP32 either way.
template <typename T>
cudaError_t launchCcAttention(
    T const* x, T const* q, T const* k, T const* v, T* y, int64_t planes, int64_t hw, cudaStream_t stream);

} // namespace fer_edge
