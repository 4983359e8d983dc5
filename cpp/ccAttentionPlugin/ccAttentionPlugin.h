/*
 * CCAttention_TRT (version "1", namespace "", no fields): the fused non-GEMM core of CC Attention,
 * inputs X, Q, K, V. See README.md in this folder.
 */
#pragma once

#include "common/pluginBase.h"

namespace fer_edge
{

struct CcAttentionOp
{
    static constexpr char const* kName = "CCAttention_TRT";
    static constexpr char const* kVersion = "1";
    static constexpr int32_t kNbInputs = 4;

    static std::vector<PluginField> fieldNames();
    static CcAttentionOp fromFields(PluginFieldCollection const* fc);
    std::vector<PluginField> toFields() const;
    cudaError_t launch(
        DataType type, void const* const* inputs, void* output, int64_t planes, int64_t hw, cudaStream_t stream) const;
};

using CcAttentionPlugin = PlanePlugin<CcAttentionOp>;
using CcAttentionPluginCreator = PlanePluginCreator<CcAttentionOp>;

} // namespace fer_edge
