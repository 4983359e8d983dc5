/*
 * Host harness for the plugin classes (no GPU, no libnvinfer): drives every creator and plugin the
 * way TensorRT would, through the interfaces of the headers it is compiled against, with the CUDA
 * launchers replaced by stubKernels.cpp (CPU reference on host pointers). cpp/ci_checks.sh builds
 * it against the 10.3 and 11.1 headers (IPluginV3) and the 8.5.3 and 8.6.1 headers (IPluginV2).
 *
 * Checks: creator names, versions and fields; field type/range validation; serialize ->
 * deserialize round trip of `lambda` (V3: getFieldsToSerialize -> createPlugin(kRUNTIME); V2:
 * serialize -> deserializePlugin, byte-identical); supportsFormatCombination (FP32/FP16 linear yes,
 * INT8 no, mixed types no, non-linear no); shape validation (wrong rank or input count refused);
 * enqueue dispatch for FP32 and FP16 against the CPU reference; V2: registration on load.
 *
 * Prints one JSON object (creators and their fields, check count) on stdout; exits 1 on any failed
 * check. What it does not prove: anything TensorRT itself does with these objects, or the kernels.
 */
#include "ccAttentionPlugin/ccAttentionMath.h"
#include "ccAttentionPlugin/ccAttentionPlugin.h"
#include "common/pluginBase.h"
#include "simamPlugin/simamMath.h"
#include "simamPlugin/simamPlugin.h"
#if !FER_EDGE_PLUGIN_V3
#include "tests/recordingRegistry.h"
#endif

#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace fer_edge
{
extern int gStubLaunches;
}

using namespace nvinfer1;
using fer_edge::gStubLaunches;

namespace
{
int gChecks = 0;
int gFailures = 0;

void check(bool ok, std::string const& what)
{
    ++gChecks;
    if (!ok)
    {
        ++gFailures;
        std::fprintf(stderr, "FAILED: %s\n", what.c_str());
    }
}

char const* typeName(PluginFieldType t)
{
    switch (t)
    {
    case PluginFieldType::kFLOAT16: return "FLOAT16";
    case PluginFieldType::kFLOAT32: return "FLOAT32";
    case PluginFieldType::kFLOAT64: return "FLOAT64";
    case PluginFieldType::kINT8: return "INT8";
    case PluginFieldType::kINT16: return "INT16";
    case PluginFieldType::kINT32: return "INT32";
    case PluginFieldType::kCHAR: return "CHAR";
    default: return "OTHER";
    }
}

std::string describeCreator(char const* name, char const* version, char const* ns, PluginFieldCollection const* fc)
{
    std::string out = std::string("{\"name\": \"") + name + "\", \"version\": \"" + version + "\", \"namespace\": \""
        + ns + "\", \"fields\": [";
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        out += std::string(i ? ", " : "") + "{\"name\": \"" + f.name + "\", \"type\": \"" + typeName(f.type)
            + "\", \"length\": " + std::to_string(f.length) + "}";
    }
    return out + "]}";
}

//! Owns a PluginFieldCollection of at most one `lambda` field, with any type/value.
struct Fields
{
    float value{0.F};
    int32_t intValue{0};
    std::vector<PluginField> fields;
    PluginFieldCollection collection{};

    static Fields none()
    {
        Fields f;
        f.collection.nbFields = 0;
        f.collection.fields = nullptr;
        return f;
    }
    void lambdaFloat(float v)
    {
        value = v;
        fields = {PluginField("lambda", &value, PluginFieldType::kFLOAT32, 1)};
        bind();
    }
    void lambdaInt(int32_t v)
    {
        intValue = v;
        fields = {PluginField("lambda", &intValue, PluginFieldType::kINT32, 1)};
        bind();
    }
    void bind()
    {
        collection.nbFields = static_cast<int32_t>(fields.size());
        collection.fields = fields.data();
    }
};

[[maybe_unused]] float readLambda(PluginFieldCollection const* fc)
{
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        if (std::strcmp(fc->fields[i].name, "lambda") == 0 && fc->fields[i].type == PluginFieldType::kFLOAT32)
        {
            return *static_cast<float const*>(fc->fields[i].data);
        }
    }
    return std::numeric_limits<float>::quiet_NaN();
}

PluginTensorDesc tensorDesc(DataType type, Dims dims, TensorFormat format = TensorFormat::kLINEAR)
{
    PluginTensorDesc d{};
    d.dims = dims;
    d.type = type;
    d.format = format;
    d.scale = 1.F;
    return d;
}

Dims nchw(int64_t n, int64_t c, int64_t h, int64_t w)
{
    Dims d{};
    d.nbDims = 4;
    d.d[0] = static_cast<std::remove_reference_t<decltype(d.d[0])>>(n);
    d.d[1] = static_cast<std::remove_reference_t<decltype(d.d[0])>>(c);
    d.d[2] = static_cast<std::remove_reference_t<decltype(d.d[0])>>(h);
    d.d[3] = static_cast<std::remove_reference_t<decltype(d.d[0])>>(w);
    return d;
}

//! Host tensors for one enqueue: `nbInputs` inputs of one shape, deterministic values, one output.
struct HostIo
{
    std::vector<std::vector<float>> inF;
    std::vector<std::vector<__half>> inH;
    std::vector<float> outF;
    std::vector<__half> outH;
    std::vector<void const*> inPtrs;
    std::vector<void*> outPtrs;

    HostIo(int32_t nbInputs, size_t count, bool half)
    {
        for (int32_t k = 0; k < nbInputs; ++k)
        {
            std::vector<float> v(count);
            for (size_t i = 0; i < count; ++i)
            {
                v[i] = std::sin(0.37F * static_cast<float>(i) + 1.3F * static_cast<float>(k)) * (2.F + static_cast<float>(k));
            }
            if (half)
            {
                std::vector<__half> h(count);
                for (size_t i = 0; i < count; ++i)
                {
                    h[i] = __float2half_rn(v[i]);
                    v[i] = __half2float(h[i]); // the reference sees exactly what the plugin reads
                }
                inH.push_back(h);
            }
            inF.push_back(v);
        }
        outF.assign(count, 0.F);
        outH.assign(count, __float2half_rn(0.F));
        for (int32_t k = 0; k < nbInputs; ++k)
        {
            inPtrs.push_back(half ? static_cast<void const*>(inH[static_cast<size_t>(k)].data())
                                  : static_cast<void const*>(inF[static_cast<size_t>(k)].data()));
        }
        outPtrs.push_back(half ? static_cast<void*>(outH.data()) : static_cast<void*>(outF.data()));
    }

    float out(size_t i, bool half) const
    {
        return half ? __half2float(outH[i]) : outF[i];
    }
};

//! The CPU reference of op `name` on `io`'s inputs, plane by plane.
std::vector<float> reference(std::string const& name, HostIo const& io, int64_t planes, int64_t hw, float lambda)
{
    std::vector<float> out(static_cast<size_t>(planes * hw));
    for (int64_t p = 0; p < planes; ++p)
    {
        size_t const o = static_cast<size_t>(p * hw);
        if (name == "SimAM_TRT")
        {
            fer_edge::simamPlaneCpu(io.inF[0].data() + o, out.data() + o, hw, lambda);
        }
        else
        {
            fer_edge::ccAttentionPlaneCpu(io.inF[0].data() + o, io.inF[1].data() + o, io.inF[2].data() + o,
                io.inF[3].data() + o, out.data() + o, hw);
        }
    }
    return out;
}

struct FakeExprBuilder : IExprBuilder
{
    FakeExprBuilder()
    {
        mImpl = nullptr; // the plugins' shape methods only copy input expressions; nothing may call the builder
    }
    ~FakeExprBuilder() noexcept override = default;
};

template <typename EnqueueFn>
void checkEnqueue(std::string const& name, int32_t nbInputs, float lambda, EnqueueFn enqueue)
{
    int64_t const n = 2, c = 3, h = 5, w = 7;
    for (bool half : {false, true})
    {
        HostIo io(nbInputs, static_cast<size_t>(n * c * h * w), half);
        std::vector<PluginTensorDesc> in(static_cast<size_t>(nbInputs),
            tensorDesc(half ? DataType::kHALF : DataType::kFLOAT, nchw(n, c, h, w)));
        PluginTensorDesc out = in[0];
        int const before = gStubLaunches;
        int32_t const status = enqueue(in.data(), &out, io.inPtrs.data(), io.outPtrs.data());
        check(status == 0 && gStubLaunches == before + 1, name + ": enqueue " + (half ? "FP16" : "FP32") + " runs");
        std::vector<float> ref = reference(name, io, n * c, h * w, lambda);
        double worst = 0;
        for (size_t i = 0; i < ref.size(); ++i)
        {
            worst = std::fmax(worst, std::fabs(static_cast<double>(io.out(i, half)) - ref[i]));
        }
        check(worst <= (half ? 1e-2 : 1e-6), name + ": enqueue output matches the CPU reference");
        if (nbInputs > 1)
        {
            in[1].dims = nchw(n, c, h, w + 1);
            check(enqueue(in.data(), &out, io.inPtrs.data(), io.outPtrs.data()) != 0,
                name + ": enqueue refuses inputs of different shapes");
        }
        in.assign(static_cast<size_t>(nbInputs), tensorDesc(DataType::kINT8, nchw(n, c, h, w)));
        check(enqueue(in.data(), &out, io.inPtrs.data(), io.outPtrs.data()) != 0, name + ": enqueue refuses INT8");
    }
}

//! supportsFormatCombination cases shared by both paths; `supports(pos, descs)` wraps the plugin.
template <typename SupportsFn>
void checkFormats(std::string const& name, int32_t nbInputs, SupportsFn supports)
{
    int32_t const total = nbInputs + 1;
    auto all = [&](DataType t, TensorFormat f) {
        return std::vector<PluginTensorDesc>(static_cast<size_t>(total), tensorDesc(t, nchw(1, 2, 3, 4), f));
    };
    for (DataType t : {DataType::kFLOAT, DataType::kHALF})
    {
        std::vector<PluginTensorDesc> d = all(t, TensorFormat::kLINEAR);
        for (int32_t pos = 0; pos < total; ++pos)
        {
            check(supports(pos, d), name + ": linear FP32/FP16 supported at every position");
        }
    }
    std::vector<PluginTensorDesc> int8 = all(DataType::kINT8, TensorFormat::kLINEAR);
    check(!supports(0, int8), name + ": INT8 not supported");
    std::vector<PluginTensorDesc> mixed = all(DataType::kFLOAT, TensorFormat::kLINEAR);
    mixed[static_cast<size_t>(total - 1)].type = DataType::kHALF;
    check(!supports(total - 1, mixed), name + ": output type must match input 0");
    std::vector<PluginTensorDesc> chw32 = all(DataType::kHALF, TensorFormat::kCHW32);
    check(!supports(0, chw32), name + ": non-linear formats not supported");
    check(!supports(total, all(DataType::kFLOAT, TensorFormat::kLINEAR)), name + ": out-of-range position refused");
}

#if FER_EDGE_PLUGIN_V3

DimsExprs exprs(int32_t nbDims)
{
    DimsExprs e{};
    e.nbDims = nbDims;
    return e;
}

std::vector<DynamicPluginTensorDesc> dynamic(std::vector<PluginTensorDesc> const& descs)
{
    std::vector<DynamicPluginTensorDesc> out(descs.size());
    for (size_t i = 0; i < descs.size(); ++i)
    {
        out[i].desc = descs[i];
        out[i].min = out[i].max = out[i].opt = descs[i].dims;
    }
    return out;
}

void testCreator(IPluginCreatorInterface* iface, std::string& json)
{
    InterfaceInfo const info = iface->getInterfaceInfo();
    check(std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0, "getCreators hands out IPluginCreatorV3One creators");
    auto* creator = static_cast<IPluginCreatorV3One*>(iface);
    std::string const name = creator->getPluginName();
    json += describeCreator(creator->getPluginName(), creator->getPluginVersion(), creator->getPluginNamespace(),
        creator->getFieldNames());
    bool const simam = name == "SimAM_TRT";
    int32_t const nbInputs = simam ? 1 : 4;
    float const lambda = simam ? 0.25F : 0.F;

    Fields fields = Fields::none();
    if (simam)
    {
        fields.lambdaFloat(lambda);
    }
    IPluginV3* plugin = creator->createPlugin(name.c_str(), &fields.collection, TensorRTPhase::kBUILD);
    check(plugin != nullptr, name + ": createPlugin with the export's fields");
    if (plugin == nullptr)
    {
        return;
    }
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    check(core != nullptr && build != nullptr && runtime != nullptr, name + ": core/build/runtime capabilities");
    check(name == core->getPluginName() && std::string(core->getPluginVersion()) == creator->getPluginVersion(),
        name + ": plugin and creator agree on name and version");

    // serialize -> deserialize: the fields TensorRT stores in the engine recreate the same plugin
    PluginFieldCollection const* stored = runtime->getFieldsToSerialize();
    check(stored != nullptr && stored->nbFields == creator->getFieldNames()->nbFields,
        name + ": serializes exactly the creator's fields");
    IPluginV3* restored = creator->createPlugin(name.c_str(), stored, TensorRTPhase::kRUNTIME);
    check(restored != nullptr, name + ": createPlugin(kRUNTIME) from the serialized fields");
    if (simam && restored != nullptr)
    {
        auto* r = static_cast<IPluginV3OneRuntime*>(restored->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        float const back = readLambda(r->getFieldsToSerialize());
        check(std::memcmp(&back, &lambda, sizeof(float)) == 0, name + ": lambda survives the round trip bit-exactly");
    }
    delete restored;

    if (simam)
    {
        for (float bad : {-1.F, 0.F, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()})
        {
            Fields f;
            f.lambdaFloat(bad);
            IPluginV3* p = creator->createPlugin(name.c_str(), &f.collection, TensorRTPhase::kBUILD);
            check(p == nullptr, name + ": lambda out of range refused (" + std::to_string(bad) + ")");
            delete p;
        }
        Fields wrongType;
        wrongType.lambdaInt(1);
        IPluginV3* p = creator->createPlugin(name.c_str(), &wrongType.collection, TensorRTPhase::kBUILD);
        check(p == nullptr, name + ": an INT32 lambda is refused (the ONNX attribute must be a float)");
        delete p;
        Fields absent = Fields::none();
        p = creator->createPlugin(name.c_str(), &absent.collection, TensorRTPhase::kBUILD);
        float const fallback = p == nullptr ? 0.F
            : readLambda(static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME))
                             ->getFieldsToSerialize());
        check(p != nullptr && fallback == fer_edge::SimamOp::kDefaultLambda, name + ": absent lambda takes the default");
        delete p;
    }

    // types and shapes
    std::vector<DataType> inTypes(static_cast<size_t>(nbInputs), DataType::kHALF);
    DataType outType = DataType::kFLOAT;
    check(build->getOutputDataTypes(&outType, 1, inTypes.data(), nbInputs) == 0 && outType == DataType::kHALF,
        name + ": output type is input 0's");
    check(build->getOutputDataTypes(&outType, 1, inTypes.data(), nbInputs + 1) != 0, name + ": wrong input count refused");
    FakeExprBuilder exprBuilder;
    std::vector<DimsExprs> inShapes(static_cast<size_t>(nbInputs + 1), exprs(4));
    DimsExprs outShape = exprs(0);
    check(build->getOutputShapes(inShapes.data(), nbInputs, nullptr, 0, &outShape, 1, exprBuilder) == 0
            && outShape.nbDims == 4,
        name + ": 4-D inputs give a 4-D output");
    check(build->getOutputShapes(inShapes.data(), nbInputs + 1, nullptr, 0, &outShape, 1, exprBuilder) != 0,
        name + ": wrong input count refused at build time");
    inShapes[static_cast<size_t>(nbInputs - 1)] = exprs(3);
    check(build->getOutputShapes(inShapes.data(), nbInputs, nullptr, 0, &outShape, 1, exprBuilder) != 0,
        name + ": a non-4-D input refused at build time");

    checkFormats(name, nbInputs, [&](int32_t pos, std::vector<PluginTensorDesc> const& d) {
        std::vector<DynamicPluginTensorDesc> dd = dynamic(d);
        return build->supportsFormatCombination(pos, dd.data(), nbInputs, 1);
    });

    std::vector<PluginTensorDesc> same(static_cast<size_t>(nbInputs), tensorDesc(DataType::kFLOAT, nchw(1, 2, 3, 4)));
    PluginTensorDesc outDesc = same[0];
    check(runtime->onShapeChange(same.data(), nbInputs, &outDesc, 1) == 0, name + ": onShapeChange accepts equal shapes");
    if (nbInputs > 1)
    {
        same[1].dims = nchw(1, 2, 3, 5);
        check(runtime->onShapeChange(same.data(), nbInputs, &outDesc, 1) != 0, name + ": onShapeChange refuses unequal shapes");
    }
    checkEnqueue(name, nbInputs, simam ? lambda : 0.F,
        [&](PluginTensorDesc const* in, PluginTensorDesc const* out, void const* const* i, void* const* o) {
            return runtime->enqueue(in, out, i, o, nullptr, nullptr);
        });

    IPluginV3* copy = plugin->clone();
    IPluginV3* attached = runtime->attachToContext(nullptr);
    check(copy != nullptr && attached != nullptr, name + ": clone and attachToContext");
    delete copy;
    delete attached;
    delete plugin;
}

#else // V2

//! getPluginRegistry below is found by the library's runtime lookup (the harness is linked with
//! -rdynamic), as in a TensorRT 8.x process.
using fer_edge_test::RecordingRegistry;

RecordingRegistry& registry()
{
    static RecordingRegistry instance;
    return instance;
}

std::vector<char> serialized(IPluginV2DynamicExt* plugin)
{
    std::vector<char> bytes(plugin->getSerializationSize());
    plugin->serialize(bytes.data());
    return bytes;
}

void testCreator(IPluginCreator* creator, std::string& json)
{
    std::string const name = creator->getPluginName();
    json += describeCreator(creator->getPluginName(), creator->getPluginVersion(), creator->getPluginNamespace(),
        creator->getFieldNames());
    bool const simam = name == "SimAM_TRT";
    int32_t const nbInputs = simam ? 1 : 4;
    float const lambda = simam ? 0.25F : 0.F;
    Fields fields = Fields::none();
    if (simam)
    {
        fields.lambdaFloat(lambda);
    }
    auto* plugin = static_cast<IPluginV2DynamicExt*>(creator->createPlugin(name.c_str(), &fields.collection));
    check(plugin != nullptr, name + ": createPlugin with the export's fields");
    if (plugin == nullptr)
    {
        return;
    }
    check(name == plugin->getPluginType() && plugin->getNbOutputs() == 1, name + ": plugin type and one output");

    std::vector<char> const bytes = serialized(plugin);
    auto* restored = static_cast<IPluginV2DynamicExt*>(creator->deserializePlugin(name.c_str(), bytes.data(), bytes.size()));
    check(restored != nullptr && serialized(restored) == bytes, name + ": serialize -> deserialize is byte-identical");
    if (restored != nullptr)
    {
        restored->destroy();
    }
    if (simam)
    {
        Fields other;
        other.lambdaFloat(0.5F);
        auto* p = static_cast<IPluginV2DynamicExt*>(creator->createPlugin(name.c_str(), &other.collection));
        check(p != nullptr && serialized(p) != bytes, name + ": lambda is part of the serialized plugin");
        if (p != nullptr)
        {
            p->destroy();
        }
        Fields wrongType;
        wrongType.lambdaInt(1);
        check(creator->createPlugin(name.c_str(), &wrongType.collection) == nullptr, name + ": an INT32 lambda is refused");
        Fields negative;
        negative.lambdaFloat(-1.F);
        check(creator->createPlugin(name.c_str(), &negative.collection) == nullptr, name + ": lambda <= 0 refused");
    }
    check(creator->deserializePlugin(name.c_str(), bytes.data(), bytes.size() - 1) == nullptr,
        name + ": truncated serialized data refused");
    std::vector<char> badVersion = bytes;
    badVersion[0] = static_cast<char>(badVersion[0] + 1);
    check(creator->deserializePlugin(name.c_str(), badVersion.data(), badVersion.size()) == nullptr,
        name + ": unknown serialization format version refused");

    DimsExprs four{};
    four.nbDims = 4;
    std::vector<DimsExprs> in(static_cast<size_t>(nbInputs + 1), four);
    FakeExprBuilder builder;
    check(plugin->getOutputDimensions(0, in.data(), nbInputs, builder).nbDims == 4, name + ": 4-D output");
    check(plugin->getOutputDimensions(0, in.data(), nbInputs + 1, builder).nbDims == -1,
        name + ": getOutputDimensions validates nbInputs");
    check(plugin->getOutputDimensions(1, in.data(), nbInputs, builder).nbDims == -1,
        name + ": getOutputDimensions validates the output index");
    in[0].nbDims = 3;
    check(plugin->getOutputDimensions(0, in.data(), nbInputs, builder).nbDims == -1, name + ": a non-4-D input refused");

    checkFormats(name, nbInputs, [&](int32_t pos, std::vector<PluginTensorDesc> const& d) {
        return plugin->supportsFormatCombination(pos, d.data(), nbInputs, 1);
    });
    checkEnqueue(name, nbInputs, simam ? lambda : 0.F,
        [&](PluginTensorDesc const* i, PluginTensorDesc const* o, void const* const* ip, void* const* op) {
            return plugin->enqueue(i, o, ip, op, nullptr, nullptr);
        });
    IPluginV2DynamicExt* copy = plugin->clone();
    check(copy != nullptr, name + ": clone");
    if (copy != nullptr)
    {
        copy->destroy();
    }
    plugin->destroy();
}

#endif
} // namespace

#if FER_EDGE_PLUGIN_V3
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
#else
extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept
{
    return &registry();
}
#endif

int main()
{
    std::string json = "{\"tensorrt\": \"" + std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR)
        + "\", \"interface\": \"" + (FER_EDGE_PLUGIN_V3 ? "IPluginV3" : "IPluginV2DynamicExt") + "\", \"creators\": [";
#if FER_EDGE_PLUGIN_V3
    int32_t count = -1;
    IPluginCreatorInterface* const* creators = getCreators(count);
    check(count == 2 && creators != nullptr, "getCreators returns both creators");
    for (int32_t i = 0; creators != nullptr && i < count; ++i)
    {
        json += i ? ", " : "";
        testCreator(creators[i], json);
    }
#else
    RecordingRegistry& reg = registry();
    check(reg.creators.size() == 2, "both creators registered with getPluginRegistry() when the library loaded");
    for (std::string const& ns : reg.namespaces)
    {
        check(ns.empty(), "creators registered in the default namespace");
    }
    for (size_t i = 0; i < reg.creators.size(); ++i)
    {
        json += i ? ", " : "";
        testCreator(reg.creators[i], json);
    }
#endif
    json += "], \"checks\": " + std::to_string(gChecks) + ", \"failures\": " + std::to_string(gFailures) + "}";
    std::puts(json.c_str());
    return gFailures == 0 ? 0 : 1;
}
