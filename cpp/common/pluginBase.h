/*
 * The one place TensorRT version differences live (like mmdeploy's trt_plugin_base.hpp).
 *
 * Every fer_edge plugin maps a whole NCHW tensor (and same-shaped companions) to one output of the
 * same shape and type, one (n, c) plane at a time. An op is described by a small traits struct
 * (name, version, inputs, named fields, launch); PlanePlugin<Op> / PlanePluginCreator<Op> wrap it:
 *   TensorRT >= 10: IPluginV3 (OneCore / OneBuild / OneRuntime) + IPluginCreatorV3One.
 *   TensorRT 8.5/8.6 (NV_TENSORRT_MAJOR < 10): IPluginV2DynamicExt + IPluginCreator.
 * Op contract:
 *   static constexpr char const* kName, kVersion; static constexpr int32_t kNbInputs;
 *   static std::vector<PluginField> fieldNames();          // what the creator accepts
 *   static Op fromFields(PluginFieldCollection const* fc);  // checks types and ranges, throws
 *   std::vector<PluginField> toFields() const;              // the same named fields, for serialization
 *   cudaError_t launch(DataType, void const* const* inputs, void* output, int64_t planes, int64_t hw,
 *       cudaStream_t) const;
 */
#pragma once

#include "common/checkMacros.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

// The V2 path compiles only against 8.x headers (cpp/ci_checks.sh builds it against 8.5.3 and 8.6.1).
#if NV_TENSORRT_MAJOR >= 10
#define FER_EDGE_PLUGIN_V3 1
#else
#define FER_EDGE_PLUGIN_V3 0
#endif

namespace fer_edge
{

using nvinfer1::DataType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;

//! The float32 field `name` from a creator's collection, `fallback` if absent; wrong type throws.
inline float readFloatField(PluginFieldCollection const* fc, char const* name, float fallback)
{
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        PluginField const& field = fc->fields[i];
        if (field.name != nullptr && std::strcmp(field.name, name) == 0)
        {
            FER_VALIDATE(field.type == PluginFieldType::kFLOAT32 && field.length == 1 && field.data != nullptr,
                "plugin field must be one float32");
            return *static_cast<float const*>(field.data);
        }
    }
    return fallback;
}

//! Linear NCHW, FP32 or FP16, every tensor the type of input 0: the formats both paths accept.
inline bool supportsPlaneFormat(nvinfer1::PluginTensorDesc const& desc, DataType firstType)
{
    bool const typeOk = desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
    return desc.format == nvinfer1::TensorFormat::kLINEAR && typeOk && desc.type == firstType;
}

//! Checks every input has input 0's 4-D shape; returns (planes = N*C, hw = H*W).
inline void planeGeometry(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs, int64_t& planes, int64_t& hw)
{
    nvinfer1::Dims const& d = inputs[0].dims;
    FER_VALIDATE(d.nbDims == 4, "fer_edge plugins take NCHW (4-D) tensors");
    for (int32_t i = 1; i < nbInputs; ++i)
    {
        nvinfer1::Dims const& other = inputs[i].dims;
        FER_VALIDATE(other.nbDims == 4 && std::memcmp(other.d, d.d, 4 * sizeof(d.d[0])) == 0,
            "all plugin inputs must have the same shape");
    }
    planes = static_cast<int64_t>(d.d[0]) * d.d[1];
    hw = static_cast<int64_t>(d.d[2]) * d.d[3];
}

//! True when every one of the `nbInputs` shape expressions is 4-D (build-time shape check).
inline bool allFourD(nvinfer1::DimsExprs const* inputs, int32_t nbInputs)
{
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        if (inputs[i].nbDims != 4)
        {
            return false;
        }
    }
    return true;
}

template <typename Op>
int32_t enqueuePlanes(Op const& op, nvinfer1::PluginTensorDesc const* inputDesc, int32_t nbInputs,
    void const* const* inputs, void* const* outputs, cudaStream_t stream)
{
    int64_t planes = 0;
    int64_t hw = 0;
    planeGeometry(inputDesc, nbInputs, planes, hw);
    FER_CHECK_CUDA(op.launch(inputDesc[0].type, inputs, outputs[0], planes, hw, stream));
    return 0;
}

#if FER_EDGE_PLUGIN_V3

template <typename Op>
class PlanePlugin : public nvinfer1::IPluginV3,
                    public nvinfer1::IPluginV3OneCore,
                    public nvinfer1::IPluginV3OneBuild,
                    public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit PlanePlugin(Op op)
        : mOp(op)
    {
    }

    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    nvinfer1::IPluginV3* clone() noexcept override
    {
        return guarded<nvinfer1::IPluginV3*>(Op::kName, nullptr, [this] { return new PlanePlugin(mOp); });
    }

    char const* getPluginName() const noexcept override
    {
        return Op::kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return Op::kVersion;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return "";
    }

    int32_t getNbOutputs() const noexcept override
    {
        return 1;
    }

    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
        int32_t nbInputs) const noexcept override
    {
        if (nbOutputs != 1 || nbInputs != Op::kNbInputs)
        {
            return -1;
        }
        outputTypes[0] = inputTypes[0];
        return 0;
    }

    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const*,
        int32_t, nvinfer1::DimsExprs* outputs, int32_t nbOutputs, nvinfer1::IExprBuilder&) noexcept override
    {
        if (nbInputs != Op::kNbInputs || nbOutputs != 1 || inputs == nullptr || !allFourD(inputs, nbInputs))
        {
            logError(Op::kName, "expects its inputs as NCHW (4-D) tensors and has one output");
            return -1;
        }
        outputs[0] = inputs[0];
        return 0;
    }

    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override
    {
        if (nbInputs != Op::kNbInputs || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs)
        {
            return false;
        }
        return supportsPlaneFormat(inOut[pos].desc, inOut[0].desc.type);
    }

    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const*, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept override
    {
        return nbInputs == Op::kNbInputs && nbOutputs == 1 ? 0 : -1;
    }

    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const*,
        int32_t) noexcept override
    {
        return guarded<int32_t>(Op::kName, -1, [&] {
            int64_t planes = 0;
            int64_t hw = 0;
            planeGeometry(in, nbInputs, planes, hw);
            return 0;
        });
    }

    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const*,
        void const* const* inputs, void* const* outputs, void*, cudaStream_t stream) noexcept override
    {
        return guarded<int32_t>(Op::kName, -1,
            [&] { return enqueuePlanes(mOp, inputDesc, Op::kNbInputs, inputs, outputs, stream); });
    }

    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext*) noexcept override
    {
        return clone();
    }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        return guarded<PluginFieldCollection const*>(Op::kName, nullptr, [this] {
            mFields = mOp.toFields();
            mCollection.nbFields = static_cast<int32_t>(mFields.size());
            mCollection.fields = mFields.data();
            return &mCollection;
        });
    }

private:
    Op mOp;
    std::vector<PluginField> mFields;
    PluginFieldCollection mCollection{};
};

template <typename Op>
class PlanePluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    PlanePluginCreator()
        : mFieldNames(Op::fieldNames())
    {
        mCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
        mCollection.fields = mFieldNames.data();
    }

    nvinfer1::IPluginV3* createPlugin(
        char const*, PluginFieldCollection const* fc, nvinfer1::TensorRTPhase) noexcept override
    {
        return guarded<nvinfer1::IPluginV3*>(
            Op::kName, nullptr, [fc] { return new PlanePlugin<Op>(Op::fromFields(fc)); });
    }

    PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mCollection;
    }
    char const* getPluginName() const noexcept override
    {
        return Op::kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return Op::kVersion;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return "";
    }

private:
    std::vector<PluginField> mFieldNames;
    PluginFieldCollection mCollection{};
};

using CreatorInterface = nvinfer1::IPluginCreatorInterface;

#else // TensorRT 8.5 / 8.6

// 8.x marks IPluginV2 deprecated (as a base to derive from), yet IPluginCreator::createPlugin and
// deserializePlugin must return IPluginV2*: silence that one warning for this section only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

//! Versioned, name-tagged serialization of an op's fields (the same fields V3 writes back).
//! Layout: uint32 format version, uint32 field count, then per field: uint32 name length, name,
//! int32 type, int32 length, uint32 byte count, bytes.
constexpr uint32_t kSerialFormat = 1;

inline size_t fieldBytes(PluginField const& f)
{
    size_t unit = 1; // kINT8, kCHAR, kUNKNOWN (length counts bytes)
    switch (f.type)
    {
    case PluginFieldType::kFLOAT16:
    case PluginFieldType::kINT16: unit = 2; break;
    case PluginFieldType::kFLOAT32:
    case PluginFieldType::kINT32: unit = 4; break;
    case PluginFieldType::kFLOAT64: unit = 8; break;
    case PluginFieldType::kDIMS: unit = sizeof(nvinfer1::Dims); break;
    default: break; // 8.x has no kINT64 / kBF16 / kFP8 (TensorRT 10 added them): V2 never writes them
    }
    return unit * static_cast<size_t>(f.length);
}

template <typename T>
void put(std::vector<char>& out, T value)
{
    char const* bytes = reinterpret_cast<char const*>(&value);
    out.insert(out.end(), bytes, bytes + sizeof(T));
}

inline std::vector<char> serializeFields(std::vector<PluginField> const& fields)
{
    std::vector<char> out;
    put<uint32_t>(out, kSerialFormat);
    put<uint32_t>(out, static_cast<uint32_t>(fields.size()));
    for (PluginField const& f : fields)
    {
        uint32_t const nameLen = static_cast<uint32_t>(std::strlen(f.name));
        put<uint32_t>(out, nameLen);
        out.insert(out.end(), f.name, f.name + nameLen);
        put<int32_t>(out, static_cast<int32_t>(f.type));
        put<int32_t>(out, f.length);
        uint32_t const nbBytes = static_cast<uint32_t>(fieldBytes(f));
        put<uint32_t>(out, nbBytes);
        char const* data = static_cast<char const*>(f.data);
        out.insert(out.end(), data, data + nbBytes);
    }
    return out;
}

//! Parses serializeFields' output; names and data stay owned by `storage`.
class FieldReader
{
public:
    FieldReader(void const* data, size_t length)
        : mBytes(static_cast<char const*>(data), static_cast<char const*>(data) + length)
    {
        FER_VALIDATE(take<uint32_t>() == kSerialFormat, "serialized plugin has an unknown format version");
        uint32_t const count = take<uint32_t>();
        for (uint32_t i = 0; i < count; ++i)
        {
            uint32_t const nameLen = take<uint32_t>();
            mNames.emplace_back(span(nameLen), nameLen);
            PluginFieldType const type = static_cast<PluginFieldType>(take<int32_t>());
            int32_t const len = take<int32_t>();
            uint32_t const nbBytes = take<uint32_t>();
            mFields.emplace_back(nullptr, span(nbBytes), type, len);
        }
        for (size_t i = 0; i < mFields.size(); ++i)
        {
            mFields[i].name = mNames[i].c_str();
        }
        mCollection.nbFields = static_cast<int32_t>(mFields.size());
        mCollection.fields = mFields.data();
    }

    PluginFieldCollection const* collection() const
    {
        return &mCollection;
    }

private:
    char const* span(size_t n)
    {
        FER_VALIDATE(mOffset + n <= mBytes.size(), "serialized plugin is truncated");
        char const* p = mBytes.data() + mOffset;
        mOffset += n;
        return p;
    }
    template <typename T>
    T take()
    {
        T value;
        std::memcpy(&value, span(sizeof(T)), sizeof(T));
        return value;
    }

    std::vector<char> mBytes;
    size_t mOffset{0};
    std::vector<std::string> mNames;
    std::vector<PluginField> mFields;
    PluginFieldCollection mCollection{};
};

template <typename Op>
class PlanePlugin : public nvinfer1::IPluginV2DynamicExt
{
public:
    explicit PlanePlugin(Op op)
        : mOp(op)
        , mSerial(serializeFields(op.toFields()))
    {
    }

    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override
    {
        return guarded<nvinfer1::IPluginV2DynamicExt*>(Op::kName, nullptr, [this] {
            auto* copy = new PlanePlugin(mOp);
            copy->setPluginNamespace(mNamespace.c_str());
            return copy;
        });
    }

    nvinfer1::DimsExprs getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::IExprBuilder&) noexcept override
    {
        if (outputIndex != 0 || nbInputs != Op::kNbInputs || inputs == nullptr || !allFourD(inputs, nbInputs))
        {
            logError(Op::kName, "expects its inputs as NCHW (4-D) tensors and has one output");
            nvinfer1::DimsExprs invalid{};
            invalid.nbDims = -1;
            return invalid;
        }
        return inputs[0];
    }

    bool supportsFormatCombination(
        int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override
    {
        return nbInputs == Op::kNbInputs && nbOutputs == 1 && pos >= 0 && pos < nbInputs + nbOutputs
            && supportsPlaneFormat(inOut[pos], inOut[0].type);
    }

    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const*, int32_t, nvinfer1::DynamicPluginTensorDesc const*,
        int32_t) noexcept override
    {
    }

    size_t getWorkspaceSize(nvinfer1::PluginTensorDesc const*, int32_t, nvinfer1::PluginTensorDesc const*,
        int32_t) const noexcept override
    {
        return 0;
    }

    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const*,
        void const* const* inputs, void* const* outputs, void*, cudaStream_t stream) noexcept override
    {
        return guarded<int32_t>(Op::kName, -1,
            [&] { return enqueuePlanes(mOp, inputDesc, Op::kNbInputs, inputs, outputs, stream); });
    }

    DataType getOutputDataType(int32_t, DataType const* inputTypes, int32_t) const noexcept override
    {
        return inputTypes[0];
    }

    char const* getPluginType() const noexcept override
    {
        return Op::kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return Op::kVersion;
    }
    int32_t getNbOutputs() const noexcept override
    {
        return 1;
    }
    int32_t initialize() noexcept override
    {
        return 0;
    }
    void terminate() noexcept override {}
    size_t getSerializationSize() const noexcept override
    {
        return mSerial.size();
    }
    void serialize(void* buffer) const noexcept override
    {
        std::memcpy(buffer, mSerial.data(), mSerial.size());
    }
    void destroy() noexcept override
    {
        delete this;
    }
    void setPluginNamespace(char const* pluginNamespace) noexcept override
    {
        mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return mNamespace.c_str();
    }

private:
    Op mOp;
    std::vector<char> mSerial;
    std::string mNamespace;
};

template <typename Op>
class PlanePluginCreator : public nvinfer1::IPluginCreator
{
public:
    PlanePluginCreator()
        : mFieldNames(Op::fieldNames())
    {
        mCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
        mCollection.fields = mFieldNames.data();
    }

    char const* getPluginName() const noexcept override
    {
        return Op::kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return Op::kVersion;
    }
    PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mCollection;
    }
    nvinfer1::IPluginV2* createPlugin(char const*, PluginFieldCollection const* fc) noexcept override
    {
        return guarded<nvinfer1::IPluginV2*>(Op::kName, nullptr, [this, fc] {
            auto* plugin = new PlanePlugin<Op>(Op::fromFields(fc));
            plugin->setPluginNamespace(mNamespace.c_str());
            return plugin;
        });
    }
    nvinfer1::IPluginV2* deserializePlugin(char const*, void const* data, size_t length) noexcept override
    {
        return guarded<nvinfer1::IPluginV2*>(Op::kName, nullptr, [this, data, length] {
            FieldReader reader(data, length);
            auto* plugin = new PlanePlugin<Op>(Op::fromFields(reader.collection()));
            plugin->setPluginNamespace(mNamespace.c_str());
            return plugin;
        });
    }
    void setPluginNamespace(char const* pluginNamespace) noexcept override
    {
        mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return mNamespace.c_str();
    }

private:
    std::vector<PluginField> mFieldNames;
    PluginFieldCollection mCollection{};
    std::string mNamespace;
};

using CreatorInterface = nvinfer1::IPluginCreator;

#pragma GCC diagnostic pop

#endif

} // namespace fer_edge
