/*
 * SimAM_TRT (version "1", namespace ""): parameter-free attention, one float32 field `lambda`.
 * See README.md in this folder.
 */
#pragma once

#include "common/pluginBase.h"

namespace fer_edge
{

struct SimamOp
{
    static constexpr char const* kName = "SimAM_TRT";
    static constexpr char const* kVersion = "1";
    static constexpr int32_t kNbInputs = 1;
    static constexpr float kDefaultLambda = 1e-4F;

    float lambda{kDefaultLambda};

    static std::vector<PluginField> fieldNames();
    static SimamOp fromFields(PluginFieldCollection const* fc);
    std::vector<PluginField> toFields() const;
    cudaError_t launch(
        DataType type, void const* const* inputs, void* output, int64_t planes, int64_t hw, cudaStream_t stream) const;
};

using SimamPlugin = PlanePlugin<SimamOp>;
using SimamPluginCreator = PlanePluginCreator<SimamOp>;

} // namespace fer_edge
