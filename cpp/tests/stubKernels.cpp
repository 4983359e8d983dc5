/*
 * Host stand-ins for the CUDA launchers (cpp/tests only): the same signatures as
 * simamKernel.h / ccAttentionKernel.h, computing the CPU reference (the same ...Math.h the kernels
 * run) on HOST pointers. The plugin harness links these instead of the .cu files, so enqueue's
 * dispatch (dtype switch, plane geometry, error paths) runs without a GPU. No kernel runs here.
 */
#include "ccAttentionPlugin/ccAttentionKernel.h"
#include "ccAttentionPlugin/ccAttentionMath.h"
#include "simamPlugin/simamKernel.h"
#include "simamPlugin/simamMath.h"

#include <vector>

namespace fer_edge
{
namespace
{
float widen(float v)
{
    return v;
}
float widen(__half v)
{
    return __half2float(v);
}
template <typename T>
T narrow(float v);
template <>
float narrow<float>(float v)
{
    return v;
}
template <>
__half narrow<__half>(float v)
{
    return __float2half_rn(v);
}

template <typename T>
std::vector<float> plane(T const* p, int64_t hw)
{
    std::vector<float> out(static_cast<size_t>(hw));
    for (int64_t i = 0; i < hw; ++i)
    {
        out[static_cast<size_t>(i)] = widen(p[i]);
    }
    return out;
}
} // namespace

int gStubLaunches = 0; // read by the harness: how many launches enqueue reached

template <typename T>
cudaError_t launchSimam(T const* x, T* y, int64_t planes, int64_t hw, float lambda, cudaStream_t)
{
    ++gStubLaunches;
    if (planes < 0 || hw < 0)
    {
        return cudaErrorInvalidValue;
    }
    std::vector<float> out(static_cast<size_t>(hw));
    for (int64_t p = 0; p < planes; ++p)
    {
        std::vector<float> in = plane(x + p * hw, hw);
        simamPlaneCpu(in.data(), out.data(), hw, lambda);
        for (int64_t i = 0; i < hw; ++i)
        {
            y[p * hw + i] = narrow<T>(out[static_cast<size_t>(i)]);
        }
    }
    return cudaSuccess;
}

template <typename T>
cudaError_t launchCcAttention(
    T const* x, T const* q, T const* k, T const* v, T* y, int64_t planes, int64_t hw, cudaStream_t)
{
    ++gStubLaunches;
    if (planes < 0 || hw < 0)
    {
        return cudaErrorInvalidValue;
    }
    std::vector<float> out(static_cast<size_t>(hw));
    for (int64_t p = 0; p < planes; ++p)
    {
        int64_t const o = p * hw;
        std::vector<float> xs = plane(x + o, hw), qs = plane(q + o, hw), ks = plane(k + o, hw), vs = plane(v + o, hw);
        ccAttentionPlaneCpu(xs.data(), qs.data(), ks.data(), vs.data(), out.data(), hw);
        for (int64_t i = 0; i < hw; ++i)
        {
            y[o + i] = narrow<T>(out[static_cast<size_t>(i)]);
        }
    }
    return cudaSuccess;
}

template cudaError_t launchSimam<float>(float const*, float*, int64_t, int64_t, float, cudaStream_t);
template cudaError_t launchSimam<__half>(__half const*, __half*, int64_t, int64_t, float, cudaStream_t);
template cudaError_t launchCcAttention<float>(
    float const*, float const*, float const*, float const*, float*, int64_t, int64_t, cudaStream_t);
template cudaError_t launchCcAttention<__half>(
    __half const*, __half const*, __half const*, __half const*, __half*, int64_t, int64_t, cudaStream_t);

} // namespace fer_edge
