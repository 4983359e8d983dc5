/*
 * fer_edge._C: the CPU reference of the plugin kernels on NumPy arrays, and what the build made.
 * The per-plane math is the header the CUDA kernels compile, so these results are what the GPU
 * computes up to reduction order. Re-exported (with FP16 handling) by fer_edge/plugins.py.
 */
#include "ccAttentionPlugin/ccAttentionMath.h"
#include "simamPlugin/simamMath.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace
{

//! Checks NCHW and returns (planes = N*C, hw = H*W).
std::pair<int64_t, int64_t> planeGeometry(FloatArray const& x, char const* name)
{
    if (x.ndim() != 4)
    {
        throw py::value_error(std::string(name) + " must be a 4-D NCHW array, got " + std::to_string(x.ndim())
            + " dimension(s)");
    }
    return {static_cast<int64_t>(x.shape(0) * x.shape(1)), static_cast<int64_t>(x.shape(2) * x.shape(3))};
}

FloatArray simam(FloatArray const& x, float lambda)
{
    auto const [planes, hw] = planeGeometry(x, "x");
    if (!std::isfinite(lambda) || lambda <= 0.F)
    {
        throw py::value_error("lambda_ must be finite and > 0, got " + std::to_string(lambda));
    }
    FloatArray y(std::vector<py::ssize_t>(x.shape(), x.shape() + 4));
    float const* in = x.data();
    float* out = y.mutable_data();
    {
        py::gil_scoped_release release;
        for (int64_t p = 0; p < planes; ++p)
        {
            fer_edge::simamPlaneCpu(in + p * hw, out + p * hw, hw, lambda);
        }
    }
    return y;
}

FloatArray ccAttention(FloatArray const& x, FloatArray const& q, FloatArray const& k, FloatArray const& v)
{
    auto const [planes, hw] = planeGeometry(x, "x");
    for (auto const& [other, name] : {std::pair{&q, "q"}, std::pair{&k, "k"}, std::pair{&v, "v"}})
    {
        planeGeometry(*other, name);
        if (!std::equal(x.shape(), x.shape() + 4, other->shape()))
        {
            throw py::value_error(std::string(name) + " must have the shape of x");
        }
    }
    FloatArray y(std::vector<py::ssize_t>(x.shape(), x.shape() + 4));
    float* out = y.mutable_data();
    {
        py::gil_scoped_release release;
        for (int64_t p = 0; p < planes; ++p)
        {
            int64_t const o = p * hw;
            fer_edge::ccAttentionPlaneCpu(x.data() + o, q.data() + o, k.data() + o, v.data() + o, out + o, hw);
        }
    }
    return y;
}

} // namespace

PYBIND11_MODULE(_C, m)
{
    m.doc() = "fer_edge native extension: CPU reference of the TensorRT plugin kernels (use fer_edge.plugins).";
    m.def("simam", &simam, py::arg("x"), py::arg("lambda_"),
        "SimAM on a float32 NCHW array, the SimAM_TRT plugin's arithmetic (Welford statistics in FP32).");
    m.def("cc_attention", &ccAttention, py::arg("x"), py::arg("q"), py::arg("k"), py::arg("v"),
        "x + softmax_HW(k * mean_HW(x) + q) * v on float32 NCHW arrays, the CCAttention_TRT plugin's arithmetic.");
    m.attr("PLUGIN_LIBRARY_VERSION") = FER_EDGE_PLUGIN_VERSION;
    m.attr("TENSORRT_HEADERS_VERSION") = FER_EDGE_TRT_HEADERS_VERSION;
}
