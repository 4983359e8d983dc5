/*
 * CCAttention_TRT dispatch; the plugin/creator plumbing is common/pluginBase.h.
 */
#include "ccAttentionPlugin/ccAttentionPlugin.h"
#include "ccAttentionPlugin/ccAttentionKernel.h"

namespace fer_edge
{

std::vector<PluginField> CcAttentionOp::fieldNames()
{
    return {};
}

CcAttentionOp CcAttentionOp::fromFields(PluginFieldCollection const*)
{
    return CcAttentionOp{};
}

std::vector<PluginField> CcAttentionOp::toFields() const
{
    return {};
}

namespace
{
template <typename T>
cudaError_t launchTyped(void const* const* inputs, void* output, int64_t planes, int64_t hw, cudaStream_t stream)
{
    return launchCcAttention(static_cast<T const*>(inputs[0]), static_cast<T const*>(inputs[1]),
        static_cast<T const*>(inputs[2]), static_cast<T const*>(inputs[3]), static_cast<T*>(output), planes, hw, stream);
}
} // namespace

cudaError_t CcAttentionOp::launch(
    DataType type, void const* const* inputs, void* output, int64_t planes, int64_t hw, cudaStream_t stream) const
{
    switch (type)
    {
    case DataType::kFLOAT: return launchTyped<float>(inputs, output, planes, hw, stream);
    case DataType::kHALF: return launchTyped<__half>(inputs, output, planes, hw, stream);
    default: return cudaErrorInvalidValue;
    }
}

} // namespace fer_edge
