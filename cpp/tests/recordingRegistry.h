/*
 * TensorRT 8.x IPluginRegistry stand-in for tests (cpp/tests only): records registerCreator calls
 * and finds creators by name, version and namespace, as libnvinfer's registry would.
 */
#pragma once

#include <NvInferRuntime.h>

#include <cstring>
#include <string>
#include <vector>

namespace fer_edge_test
{

class RecordingRegistry : public nvinfer1::IPluginRegistry
{
public:
    std::vector<nvinfer1::IPluginCreator*> creators;
    std::vector<std::string> namespaces;

    bool registerCreator(nvinfer1::IPluginCreator& creator, nvinfer1::AsciiChar const* const ns) noexcept override
    {
        creators.push_back(&creator);
        namespaces.emplace_back(ns == nullptr ? "" : ns);
        return true;
    }
    nvinfer1::IPluginCreator* const* getPluginCreatorList(int32_t* const numCreators) const noexcept override
    {
        *numCreators = static_cast<int32_t>(creators.size());
        return creators.data();
    }
    nvinfer1::IPluginCreator* getPluginCreator(nvinfer1::AsciiChar const* const name,
        nvinfer1::AsciiChar const* const version, nvinfer1::AsciiChar const* const ns) noexcept override
    {
        for (size_t i = 0; i < creators.size(); ++i)
        {
            if (std::strcmp(creators[i]->getPluginName(), name) == 0
                && std::strcmp(creators[i]->getPluginVersion(), version) == 0 && namespaces[i] == (ns ? ns : ""))
            {
                return creators[i];
            }
        }
        return nullptr;
    }
    void setErrorRecorder(nvinfer1::IErrorRecorder* const) noexcept override {}
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return nullptr;
    }
    bool deregisterCreator(nvinfer1::IPluginCreator const&) noexcept override
    {
        return false;
    }
#if NV_TENSORRT_MINOR >= 6
    bool isParentSearchEnabled() const override
    {
        return false;
    }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(nvinfer1::AsciiChar const*) noexcept override
    {
        return nullptr;
    }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
#endif
};

} // namespace fer_edge_test
