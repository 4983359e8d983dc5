/*
 * SimAM_TRT fields and dispatch; the plugin/creator plumbing is common/pluginBase.h.
 */
#include "simamPlugin/simamPlugin.h"
#include "simamPlugin/simamKernel.h"

#include <cmath>

namespace fer_edge
{

std::vector<PluginField> SimamOp::fieldNames()
{
    return {PluginField("lambda", nullptr, PluginFieldType::kFLOAT32, 1)};
}

SimamOp SimamOp::fromFields(PluginFieldCollection const* fc)
{
    SimamOp op;
    op.lambda = readFloatField(fc, "lambda", kDefaultLambda);
    FER_VALIDATE(std::isfinite(op.lambda) && op.lambda > 0.F, "SimAM_TRT field 'lambda' must be finite and > 0");
    return op;
}

std::vector<PluginField> SimamOp::toFields() const
{
    return {PluginField("lambda", &lambda, PluginFieldType::kFLOAT32, 1)};
}

cudaError_t SimamOp::launch(
    DataType type, void const* const* inputs, void* output, int64_t planes, int64_t hw, cudaStream_t stream) const
{
    switch (type)
    {
    case DataType::kFLOAT:
        return launchSimam(static_cast<float const*>(inputs[0]), static_cast<float*>(output), planes, hw, lambda, stream);
    case DataType::kHALF:
        return launchSimam(static_cast<__half const*>(inputs[0]), static_cast<__half*>(output), planes, hw, lambda, stream);
    default: return cudaErrorInvalidValue;
    }
}

} // namespace fer_edge
