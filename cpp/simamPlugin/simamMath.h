/*
 * SimAM math, shared by the CPU reference and the CUDA kernel.
 *
 * Per (n, c) plane of H*W values: mu = mean, d = x - mu, n = max(H*W - 1, 1),
 * e = d^2 / (4 * (sum(d^2) / n + lambda)) + 0.5, out = x * sigmoid(e).
 * Statistics use Welford's update (and Chan's merge for parallel partials) in FP32: one read
 * pass, no catastrophic cancellation for large-magnitude inputs, finite for FP16 tensors.
 */
#pragma once

#include "common/hostDevice.h"

#include <cmath>
#include <cstdint>

namespace fer_edge
{

//! Running mean / sum of squared deviations over `count` values.
struct Welford
{
    float count;
    float mean;
    float m2;
};

FER_HD Welford welfordInit()
{
    return Welford{0.F, 0.F, 0.F};
}

FER_HD Welford welfordUpdate(Welford s, float x)
{
    s.count += 1.F;
    float const delta = x - s.mean;
    s.mean += delta / s.count;
    s.m2 += delta * (x - s.mean);
    return s;
}

//! Chan et al.'s pairwise merge: combines two partial statistics (either may be empty).
FER_HD Welford welfordMerge(Welford a, Welford b)
{
    float const count = a.count + b.count;
    if (count == 0.F)
    {
        return a;
    }
    float const delta = b.mean - a.mean;
    float const wb = b.count / count;
    return Welford{count, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.count * wb};
}

//! 1 / (4 * (variance + lambda)) with SimAM's n = max(H*W - 1, 1) denominator.
FER_HD float simamInvDenominator(Welford s, float lambda)
{
    float const n = s.count > 1.F ? s.count - 1.F : 1.F;
    return 1.F / (4.F * (s.m2 / n + lambda));
}

FER_HD float simamApply(float x, float mean, float invDenominator)
{
    float const d = x - mean;
    float const e = d * d * invDenominator + 0.5F;
    return x / (1.F + expf(-e));
}

//! CPU reference for one plane, the same two passes the kernel makes.
inline void simamPlaneCpu(float const* x, float* y, int64_t hw, float lambda)
{
    Welford s = welfordInit();
    for (int64_t i = 0; i < hw; ++i)
    {
        s = welfordUpdate(s, x[i]);
    }
    float const inv = simamInvDenominator(s, lambda);
    for (int64_t i = 0; i < hw; ++i)
    {
        y[i] = simamApply(x[i], s.mean, inv);
    }
}

} // namespace fer_edge
