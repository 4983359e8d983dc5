/*
 * SimAM CUDA launcher. Knows no TensorRT types: raw device pointers in, cudaError_t out.
 */
#pragma once

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace fer_edge
{

//! y = SimAM(x) over `planes` contiguous planes of `hw` values each (NCHW: planes = N*C, hw = H*W).
//! T is float or __half; statistics are FP32 either way.
template <typename T>
cudaError_t launchSimam(T const* x, T* y, int64_t planes, int64_t hw, float lambda, cudaStream_t stream);

} // namespace fer_edge
