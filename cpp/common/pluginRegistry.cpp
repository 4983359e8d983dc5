/*
 * Library entry points. NVIDIA documents two ways to register plugin creators, as alternatives;
 * this library uses exactly one per TensorRT generation:
 *
 *  TensorRT >= 10 (IPluginV3): dynamic loading only. IPluginRegistry::loadLibrary (Python
 *    `registry.load_library`, trtexec --dynamicPlugins) dlopens the library, calls setLoggerFinder
 *    and then getCreators, and registers what it returns. Nothing runs at dlopen time and the
 *    library references no TensorRT symbol, so it loads in any process (TensorRT from pip loads
 *    libnvinfer.so.10 RTLD_LOCAL, so a getPluginRegistry reference could never resolve).
 *  TensorRT 8.5 / 8.6 (IPluginV2DynamicExt): static registration at dlopen (ctypes.CDLL, trtexec
 *    --plugins / --staticPlugins), what REGISTER_TENSORRT_PLUGIN does. getPluginRegistry and
 *    getLogger are looked up at run time in the libnvinfer the process already loaded (by soname
 *    with RTLD_NOLOAD, which finds a library loaded RTLD_LOCAL, then in the global scope), so the
 *    library has no undefined TensorRT symbol here either.
 */
#include "ccAttentionPlugin/ccAttentionPlugin.h"
#include "common/checkMacros.h"
#include "common/pluginBase.h"
#include "simamPlugin/simamPlugin.h"

#include <atomic>
#include <cstdio>
#include <string>

#if !FER_EDGE_PLUGIN_V3
#include <dlfcn.h>
#endif

#ifndef FER_EDGE_PLUGIN_VERSION
#error "FER_EDGE_PLUGIN_VERSION must be defined by the build (CMakeLists.txt)"
#endif

namespace fer_edge
{
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

#if FER_EDGE_PLUGIN_V3

std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

nvinfer1::ILogger* findLogger() noexcept
{
    nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
    return finder != nullptr ? finder->findLogger() : nullptr;
}

#else

//! A libnvinfer entry point of the running process, or nullptr when no libnvinfer is loaded.
void* findTensorRTSymbol(char const* name) noexcept
{
#define FER_EDGE_SONAME_(major) "libnvinfer.so." #major
#define FER_EDGE_SONAME(major) FER_EDGE_SONAME_(major)
    char const* const sonames[] = {FER_EDGE_SONAME(NV_TENSORRT_MAJOR), "libnvinfer.so"};
#undef FER_EDGE_SONAME
#undef FER_EDGE_SONAME_
    for (char const* soname : sonames)
    {
        void* handle = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
        if (handle != nullptr)
        {
            void* symbol = dlsym(handle, name);
            dlclose(handle); // drops only the reference RTLD_NOLOAD added
            if (symbol != nullptr)
            {
                return symbol;
            }
        }
    }
    return dlsym(RTLD_DEFAULT, name);
}

template <typename Fn>
Fn tensorRTEntryPoint(char const* name) noexcept
{
    return reinterpret_cast<Fn>(findTensorRTSymbol(name));
}

nvinfer1::ILogger* findLogger() noexcept
{
    using GetLogger = nvinfer1::ILogger* (*) ();
    static GetLogger const getLogger = tensorRTEntryPoint<GetLogger>("getLogger");
    return getLogger != nullptr ? getLogger() : nullptr;
}

//! Registers both creators with the process's TensorRT registry when the library is loaded.
struct RegisterOnLoad
{
    RegisterOnLoad() noexcept
    {
        using GetRegistry = nvinfer1::IPluginRegistry* (*) ();
        GetRegistry const getRegistry = tensorRTEntryPoint<GetRegistry>("getPluginRegistry");
        nvinfer1::IPluginRegistry* registry = getRegistry != nullptr ? getRegistry() : nullptr;
        if (registry == nullptr)
        {
            std::fputs("[E] fer_edge plugins: no TensorRT (libnvinfer) loaded in this process; creators not "
                       "registered (load TensorRT first)\n",
                stderr);
            return;
        }
        for (int32_t i = 0; i < kNbCreators; ++i)
        {
            registry->registerCreator(*allCreators()[i], "");
        }
    }
};
RegisterOnLoad const gRegisterOnLoad;

#endif
} // namespace

void logError(char const* where, char const* message) noexcept
{
    try
    {
        std::string const text = std::string("fer_edge plugin ") + where + ": " + message;
        nvinfer1::ILogger* logger = findLogger();
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

} // namespace fer_edge

extern "C"
{
    //! Version of this plugin library, recorded in engine sidecars.
    __attribute__((visibility("default"))) char const* ferEdgePluginVersion()
    {
        return FER_EDGE_PLUGIN_VERSION;
    }

    //! NV_TENSORRT_MAJOR of the headers this library was compiled against (8, 10 or 11).
    __attribute__((visibility("default"))) int ferEdgeTensorRTMajor()
    {
        return NV_TENSORRT_MAJOR;
    }

#if FER_EDGE_PLUGIN_V3
    __attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
    {
        fer_edge::gLoggerFinder.store(finder);
    }

    __attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
    {
        nbCreators = fer_edge::kNbCreators;
        return fer_edge::allCreators();
    }
#endif
}
