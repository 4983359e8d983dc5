/*
 * Error handling for plugin code: TensorRT calls plugins through noexcept methods, so every
 * failure is logged through TensorRT's logger and turned into a status; nothing aborts the host.
 */
#pragma once

#include <cuda_runtime_api.h>

#include <exception>
#include <sstream>
#include <stdexcept>

namespace fer_edge
{

//! Logs through the logger TensorRT handed over (setLoggerFinder) or TensorRT's global logger.
void logError(char const* where, char const* message) noexcept;

//! Runs `body`, returning `fallback` (and logging) if it throws: the body of every noexcept method.
template <typename R, typename F>
R guarded(char const* where, R fallback, F&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& e)
    {
        logError(where, e.what());
    }
    catch (...)
    {
        logError(where, "unknown exception");
    }
    return fallback;
}

[[noreturn]] inline void throwInvalid(char const* file, int line, char const* condition, char const* message)
{
    std::ostringstream text;
    text << file << ":" << line << ": " << message << " (failed: " << condition << ")";
    throw std::invalid_argument(text.str());
}

} // namespace fer_edge

//! Validates plugin arguments (field types, ranges, shapes); throws std::invalid_argument.
#define FER_VALIDATE(condition, message)                                                                               \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(condition))                                                                                              \
        {                                                                                                              \
            ::fer_edge::throwInvalid(__FILE__, __LINE__, #condition, message);                                         \
        }                                                                                                              \
    } while (0)

//! Logs a failed CUDA call with its location and returns the CUDA status from the calling function.
#define FER_CHECK_CUDA(call)                                                                                           \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t const ferStatus_ = (call);                                                                         \
        if (ferStatus_ != cudaSuccess)                                                                                 \
        {                                                                                                              \
            ::fer_edge::logError(__FILE__ ":" FER_STRINGIFY(__LINE__), cudaGetErrorString(ferStatus_));               \
            return static_cast<int32_t>(ferStatus_);                                                                   \
        }                                                                                                              \
    } while (0)

#define FER_STRINGIFY_(x) #x
#define FER_STRINGIFY(x) FER_STRINGIFY_(x)
