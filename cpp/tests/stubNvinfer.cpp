/*
 * A stand-in libnvinfer for tests/test_native_build.py (cpp/tests only; nothing here is TensorRT).
 * Built as libnvinfer.so.10 it exports the C entry points TensorRT 10 has; built with
 * FER_EDGE_STUB_V2 against 8.x headers as libnvinfer.so.8, its getPluginRegistry hands out a
 * registry that records what registers, so a test can load it RTLD_LOCAL (as pip's tensorrt_libs
 * does) and then check that the plugin library still loads and registers its creators.
 */
#ifdef FER_EDGE_STUB_V2
#include "tests/recordingRegistry.h"

namespace
{
fer_edge_test::RecordingRegistry& registry()
{
    static fer_edge_test::RecordingRegistry instance;
    return instance;
}
} // namespace

extern "C"
{
    nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
    {
        return &registry();
    }
    nvinfer1::ILogger* getLogger() noexcept
    {
        return nullptr;
    }
    int stubRegisteredCount()
    {
        return static_cast<int>(registry().creators.size());
    }
    char const* stubRegisteredName(int i)
    {
        return registry().creators.at(static_cast<size_t>(i))->getPluginName();
    }
    int getInferLibVersion()
    {
        return 8601;
    }
}
#else
extern "C"
{
    void* getPluginRegistry()
    {
        return nullptr;
    }
    void* getLogger()
    {
        return nullptr;
    }
    int getInferLibVersion()
    {
        return 100300;
    }
}
#endif
