/*
 * CC Attention (fused, non-GEMM part) math, shared by the CPU reference and the CUDA kernel.
 *
 * Per (n, c) plane of H*W values: m = mean(X), a = softmax_HW(K * m + Q), out = X + a * V.
 * The softmax uses the online (running max, rescaled sum) form so the kernel needs one pass for
 * the normaliser; everything accumulates in FP32, so FP16 planes cannot overflow exp() or the sum.
 */
#pragma once

#include "common/hostDevice.h"

#include <cmath>
#include <cstdint>

namespace fer_edge
{

//! Running softmax normaliser: sum(exp(v - max)) over the values seen so far.
struct OnlineSoftmax
{
    float max;
    float sum;
};

FER_HD OnlineSoftmax onlineSoftmaxInit()
{
    return OnlineSoftmax{-INFINITY, 0.F};
}

FER_HD OnlineSoftmax onlineSoftmaxMerge(OnlineSoftmax a, OnlineSoftmax b)
{
    if (b.sum == 0.F)
    {
        return a;
    }
    if (a.sum == 0.F)
    {
        return b;
    }
    float const m = fmaxf(a.max, b.max);
    return OnlineSoftmax{m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

FER_HD OnlineSoftmax onlineSoftmaxUpdate(OnlineSoftmax s, float v)
{
    return onlineSoftmaxMerge(s, OnlineSoftmax{v, 1.F});
}

FER_HD float ccLogit(float k, float q, float meanX)
{
    return k * meanX + q;
}

FER_HD float ccApply(float x, float v, float logit, OnlineSoftmax s)
{
    return x + expf(logit - s.max) / s.sum * v;
}

//! CPU reference for one plane, the same three passes the kernel makes.
inline void ccAttentionPlaneCpu(
    float const* x, float const* q, float const* k, float const* v, float* y, int64_t hw)
{
    float sum = 0.F;
    for (int64_t i = 0; i < hw; ++i)
    {
        sum += x[i];
    }
    float const meanX = sum / static_cast<float>(hw);
    OnlineSoftmax s = onlineSoftmaxInit();
    for (int64_t i = 0; i < hw; ++i)
    {
        s = onlineSoftmaxUpdate(s, ccLogit(k[i], q[i], meanX));
    }
    for (int64_t i = 0; i < hw; ++i)
    {
        y[i] = ccApply(x[i], v[i], ccLogit(k[i], q[i], meanX), s);
    }
}

} // namespace fer_edge
