/*
 * Library entry points. The creators register on load (what REGISTER_TENSORRT_PLUGIN does, so a
 * plain dlopen / ctypes.CDLL is enough, as on TensorRT 8.x) and are also exported for dynamic
 * loading (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, plugins_to_serialize), which calls
 * setLoggerFinder and then getCreators (getPluginCreators on 8.x) and registers what it returns.
 * REGISTER_TENSORRT_PLUGIN's registrar owns private creator objects that could then be registered
 * twice; this registrar uses the creators getCreators hands out and withdraws them first.
 */
#include "ccAttentionPlugin/ccAttentionPlugin.h"
#include "common/checkMacros.h"
#include "common/pluginBase.h"
#include "simamPlugin/simamPlugin.h"

#include <atomic>
#include <cstdio>
#include <string>

#ifndef FER_EDGE_PLUGIN_VERSION
#error "FER_EDGE_PLUGIN_VERSION must be defined by the build (CMakeLists.txt)"
#endif

namespace fer_edge
{
namespace
{
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};
} // namespace

void logError(char const* where, char const* message) noexcept
{
    nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
    nvinfer1::ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
    try
    {
        std::string const text = std::string("fer_edge plugin ") + where + ": " + message;
        if (logger != nullptr)
        {
            logger->log(nvinfer1::ILogger::Severity::kERROR, text.c_str());
        }
        else
        {
            std::fprintf(stderr, "[E] %s\n", text.c_str());
        }
    }
    catch (...)
    {
        std::fputs("[E] fer_edge plugin: error while logging an error\n", stderr);
    }
}

namespace
{
constexpr int32_t kNbCreators = 2;

CreatorInterface* const* allCreators() noexcept
{
    static SimamPluginCreator simam;
    static CcAttentionPluginCreator ccAttention;
    static CreatorInterface* const creators[kNbCreators] = {&simam, &ccAttention};
    return creators;
}

struct RegisterOnLoad
{
    RegisterOnLoad() noexcept
    {
        nvinfer1::IPluginRegistry* registry = getPluginRegistry();
        for (int32_t i = 0; registry != nullptr && i < kNbCreators; ++i)
        {
            registry->registerCreator(*allCreators()[i], "");
        }
    }
};
RegisterOnLoad const gRegisterOnLoad;

//! The creators for a dynamic loader, withdrawn from the registry first so it can register them.
CreatorInterface* const* creatorsForLoader(int32_t& nbCreators) noexcept
{
    nvinfer1::IPluginRegistry* registry = getPluginRegistry();
    for (int32_t i = 0; registry != nullptr && i < kNbCreators; ++i)
    {
        registry->deregisterCreator(*allCreators()[i]);
    }
    nbCreators = kNbCreators;
    return allCreators();
}
} // namespace

} // namespace fer_edge

extern "C"
{
    //! Version of this plugin library, recorded in engine sidecars.
    __attribute__((visibility("default"))) char const* ferEdgePluginVersion()
    {
        return FER_EDGE_PLUGIN_VERSION;
    }

    __attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
    {
        fer_edge::gLoggerFinder.store(finder);
    }

#if FER_EDGE_PLUGIN_V3
    __attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
#else
    __attribute__((visibility("default"))) nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators)
#endif
    {
        return fer_edge::creatorsForLoader(nbCreators);
    }
}
