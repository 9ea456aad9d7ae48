// pybind11 bindings of the CUDA kernels: module semanticodec_rt._cuda.
//
// Compiled by the host compiler; no CUDA or torch headers. Arguments are device addresses and a
// stream handle as integers; semanticodec_rt.ops checks tensors (device, dtype, shape, contiguity)
// before calling. The GIL is released around every CUDA runtime call.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "nearest_centroid.h"
#include "sampler_step.h"

namespace py = pybind11;
namespace sc = scrt::cuda;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "CUDA kernels of semanticodec_rt (torch-free; use semanticodec_rt.ops instead).";

  m.def("codebook_sqnorm", &sc::codebook_sqnorm, py::arg("codebook"), py::arg("k"), py::arg("d"),
        py::arg("out"), py::arg("stream"), py::arg("device"),
        py::call_guard<py::gil_scoped_release>(),
        "Launch out[k] = ||codebook[k]||^2 (float32 device pointers, [k, d] row-major).");

  m.def("nearest_centroid", &sc::nearest_centroid, py::arg("x"), py::arg("codebook"),
        py::arg("sqnorm"), py::arg("n"), py::arg("k"), py::arg("d"), py::arg("out_index"),
        py::arg("out_sqdist"), py::arg("stream"), py::arg("device"),
        py::call_guard<py::gil_scoped_release>(),
        R"doc(Launch the nearest-centroid lookup on `stream` (asynchronous).

x: [n, d] float32, codebook: [k, d] float32, sqnorm: [k] float32 (from codebook_sqnorm),
out_index: [n] int64, out_sqdist: [n] float32 or 0; all device pointers as integers.
stream: cudaStream_t as an integer; device: CUDA device index.)doc");

  m.def(
      "device_status",
      [] {
        const sc::DeviceStatus s = sc::device_status();
        return py::make_tuple(s.count, s.error, s.message);
      },
      "(count, cuda_error_code, message) of cudaGetDeviceCount; count is 0 on error.");
  m.def(
      "device_count", [] { return sc::device_status().count; },
      py::call_guard<py::gil_scoped_release>(),
      "Number of CUDA devices; 0 when there is none or no usable driver (see device_status).");
  m.def("runtime_version", &sc::runtime_version, py::call_guard<py::gil_scoped_release>(),
        "CUDA runtime version this module was linked with (e.g. 13000).");
  m.def("driver_version", &sc::driver_version, py::call_guard<py::gil_scoped_release>(),
        "CUDA driver version, 0 when no driver is installed.");

  m.def("sampler_step", &sc::sampler_step, py::arg("x_t"), py::arg("v_cond"), py::arg("v_uncond"),
        py::arg("noise"), py::arg("n"), py::arg("cfg_scale"), py::arg("sqrt_ac_t"),
        py::arg("sqrt_1m_ac_t"), py::arg("a_prev"), py::arg("sigma"), py::arg("euler"),
        py::arg("out_x_prev"), py::arg("out_x0"), py::arg("stream"), py::arg("device"),
        py::call_guard<py::gil_scoped_release>(),
        R"doc(Launch the fused sampler step on `stream` (asynchronous).

x_t, v_cond, v_uncond (0: no guidance), noise (0 allowed when sigma == 0 or euler),
out_x_prev, out_x0: [n] float32 device pointers as integers; scalars as in _C.sampler_step.
stream: cudaStream_t as an integer; device: CUDA device index.)doc");
}
