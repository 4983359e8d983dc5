/*
 * Thread-level emulation of the SimAM and CC Attention kernels on the host (no GPU), against a
 * float64 reference, for every plane size 1..3136 (56x56).
 *
 * It replays what one block does for one plane: the launch size blockSizeFor(hw)
 * (common/launchGeometry.h), each thread's strided accumulation (welfordUpdate /
 * onlineSoftmaxUpdate / float sums from the ...Math.h headers the kernels include), the
 * blockReduce tree of common/blockReduce.cuh (__shfl_down_sync within each warp: a lane whose
 * source lane is past 31 reads its own value; lane 0 of each warp writes a shared partial; warp 0
 * reduces the partials, lanes past the warp count holding the identity), then the elementwise
 * pass. The tree is re-implemented here (the .cuh is device code); the arithmetic is shared.
 *
 * Output: one JSON object with the worst relative error per kernel and input distribution; exit 1
 * if any exceeds its bound. It proves the reduction order and merges are right in FP32; it does
 * not run a kernel.
 */
#include "ccAttentionPlugin/ccAttentionMath.h"
#include "common/launchGeometry.h"
#include "simamPlugin/simamMath.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace fer_edge;

namespace
{

template <typename T, typename Merge>
T blockReduceEmulated(std::vector<T> const& perThread, T identity, Merge merge)
{
    int const blockDim = static_cast<int>(perThread.size());
    int const nbWarps = blockDim / kWarpSize;
    auto warpReduce = [&](std::vector<T> lanes) {
        for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
        {
            std::vector<T> const before = lanes; // every lane reads its source before any lane writes
            for (int lane = 0; lane < kWarpSize; ++lane)
            {
                int const src = lane + offset;
                lanes[lane] = merge(before[lane], src < kWarpSize ? before[src] : before[lane]);
            }
        }
        return lanes[0];
    };
    std::vector<T> partial(static_cast<size_t>(nbWarps));
    for (int w = 0; w < nbWarps; ++w)
    {
        partial[w] = warpReduce(std::vector<T>(perThread.begin() + w * kWarpSize, perThread.begin() + (w + 1) * kWarpSize));
    }
    std::vector<T> lanes(kWarpSize, identity);
    for (int lane = 0; lane < nbWarps; ++lane)
    {
        lanes[lane] = partial[lane];
    }
    return warpReduce(lanes);
}

std::vector<float> simamEmulated(std::vector<float> const& x, float lambda)
{
    int64_t const hw = static_cast<int64_t>(x.size());
    int const blockDim = blockSizeFor(hw);
    std::vector<Welford> perThread(static_cast<size_t>(blockDim), welfordInit());
    for (int t = 0; t < blockDim; ++t)
    {
        for (int64_t i = t; i < hw; i += blockDim)
        {
            perThread[t] = welfordUpdate(perThread[t], x[i]);
        }
    }
    Welford const s = blockReduceEmulated(perThread, welfordInit(), [](Welford a, Welford b) { return welfordMerge(a, b); });
    float const inv = simamInvDenominator(s, lambda);
    std::vector<float> y(x.size());
    for (int64_t i = 0; i < hw; ++i)
    {
        y[i] = simamApply(x[i], s.mean, inv);
    }
    return y;
}

std::vector<double> simamFloat64(std::vector<float> const& x, double lambda)
{
    double const n = static_cast<double>(x.size());
    double mean = 0;
    for (float v : x)
    {
        mean += v;
    }
    mean /= n;
    double ss = 0;
    for (float v : x)
    {
        ss += (v - mean) * (v - mean);
    }
    double const denom = 4.0 * (ss / std::max(n - 1.0, 1.0) + lambda);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i)
    {
        double const d = x[i] - mean;
        y[i] = x[i] / (1.0 + std::exp(-(d * d / denom + 0.5)));
    }
    return y;
}

std::vector<float> ccEmulated(std::vector<float> const& x, std::vector<float> const& q, std::vector<float> const& k,
    std::vector<float> const& v)
{
    int64_t const hw = static_cast<int64_t>(x.size());
    int const blockDim = blockSizeFor(hw);
    std::vector<float> sums(static_cast<size_t>(blockDim), 0.F);
    for (int t = 0; t < blockDim; ++t)
    {
        for (int64_t i = t; i < hw; i += blockDim)
        {
            sums[t] += x[i];
        }
    }
    float const meanX = blockReduceEmulated(sums, 0.F, [](float a, float b) { return a + b; }) / static_cast<float>(hw);
    std::vector<OnlineSoftmax> perThread(static_cast<size_t>(blockDim), onlineSoftmaxInit());
    for (int t = 0; t < blockDim; ++t)
    {
        for (int64_t i = t; i < hw; i += blockDim)
        {
            perThread[t] = onlineSoftmaxUpdate(perThread[t], ccLogit(k[i], q[i], meanX));
        }
    }
    OnlineSoftmax const s = blockReduceEmulated(
        perThread, onlineSoftmaxInit(), [](OnlineSoftmax a, OnlineSoftmax b) { return onlineSoftmaxMerge(a, b); });
    std::vector<float> y(x.size());
    for (int64_t i = 0; i < hw; ++i)
    {
        y[i] = ccApply(x[i], v[i], ccLogit(k[i], q[i], meanX), s);
    }
    return y;
}

std::vector<double> ccFloat64(std::vector<float> const& x, std::vector<float> const& q, std::vector<float> const& k,
    std::vector<float> const& v)
{
    size_t const n = x.size();
    double mean = 0;
    for (float value : x)
    {
        mean += value;
    }
    mean /= static_cast<double>(n);
    std::vector<double> logits(n);
    double top = -INFINITY;
    for (size_t i = 0; i < n; ++i)
    {
        logits[i] = static_cast<double>(k[i]) * mean + q[i];
        top = std::max(top, logits[i]);
    }
    double sum = 0;
    for (double l : logits)
    {
        sum += std::exp(l - top);
    }
    std::vector<double> y(n);
    for (size_t i = 0; i < n; ++i)
    {
        y[i] = x[i] + std::exp(logits[i] - top) / sum * v[i];
    }
    return y;
}

//! max |a - b| / max(max |b|, 1e-30): error relative to the output's scale.
template <typename A>
double relError(std::vector<A> const& a, std::vector<double> const& b)
{
    double worst = 0;
    double scale = 1e-30;
    for (size_t i = 0; i < b.size(); ++i)
    {
        scale = std::max(scale, std::fabs(b[i]));
    }
    for (size_t i = 0; i < b.size(); ++i)
    {
        worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]) / scale);
    }
    return worst;
}

struct Distribution
{
    char const* name;
    float offset;
    float scale;
};

} // namespace

int main()
{
    constexpr int64_t kMaxPlane = 3136;
    constexpr double kBound = 2e-5; // FP32 against float64, relative to the output's scale
    Distribution const distributions[] = {{"unit", 0.F, 1.F}, {"offset_100", 100.F, 1.F}, {"wide_30", 0.F, 30.F}};
    std::mt19937 rng(1234);
    std::string json = "{\"sizes\": [1, " + std::to_string(kMaxPlane) + "], \"bound\": " + std::to_string(kBound)
        + ", \"results\": [";
    bool ok = true;
    bool first = true;
    for (Distribution const& dist : distributions)
    {
        std::normal_distribution<float> normal(dist.offset, dist.scale);
        double worstSimam = 0;
        double worstCc = 0;
        int64_t worstSimamSize = 0;
        int64_t worstCcSize = 0;
        for (int64_t hw = 1; hw <= kMaxPlane; ++hw)
        {
            std::vector<float> x(static_cast<size_t>(hw)), q(x.size()), k(x.size()), v(x.size());
            for (size_t i = 0; i < x.size(); ++i)
            {
                x[i] = normal(rng);
                q[i] = normal(rng) / std::max(dist.scale, 1.F);
                k[i] = normal(rng) / std::max(std::fabs(dist.offset) + dist.scale, 1.F);
                v[i] = normal(rng);
            }
            double const es = relError(simamEmulated(x, 1e-4F), simamFloat64(x, 1e-4));
            double const ec = relError(ccEmulated(x, q, k, v), ccFloat64(x, q, k, v));
            if (!(es <= worstSimam))
            {
                worstSimam = es;
                worstSimamSize = hw;
            }
            if (!(ec <= worstCc))
            {
                worstCc = ec;
                worstCcSize = hw;
            }
        }
        bool const pass = worstSimam <= kBound && worstCc <= kBound;
        ok = ok && pass;
        char line[512];
        std::snprintf(line, sizeof(line),
            "%s{\"inputs\": \"%s\", \"simam_max_rel_err\": %.3e, \"simam_worst_size\": %lld, "
            "\"cc_attention_max_rel_err\": %.3e, \"cc_attention_worst_size\": %lld, \"pass\": %s}",
            first ? "" : ", ", dist.name, worstSimam, static_cast<long long>(worstSimamSize), worstCc,
            static_cast<long long>(worstCcSize), pass ? "true" : "false");
        json += line;
        first = false;
    }
    json += std::string("], \"pass\": ") + (ok ? "true" : "false") + "}";
    std::puts(json.c_str());
    return ok ? 0 : 1;
}
