/*
 * FER_HD marks math shared by the CPU reference (g++) and the CUDA kernels (nvcc), so the CPU
 * tests exercise the same arithmetic the GPU runs.
 */
#pragma once

#if defined(__CUDACC__)
#define FER_HD __host__ __device__ __forceinline__
#else
#define FER_HD inline
#endif
