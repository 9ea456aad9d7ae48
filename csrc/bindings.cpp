// pybind11 bindings of the CPU kernels: module semanticodec_rt._C.
//
// Torch-free on purpose: numpy arrays in and out (a CPU tensor's .numpy() is a zero-copy view), so
// the module builds in seconds and does not depend on libtorch's C++ ABI. semanticodec_rt.ops
// validates tensors and converts them; the checks here guard direct callers and say what was wrong.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fargan.h"
#include "nearest_centroid.h"
#include "peak_probe.h"
#include "sampler_step.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace {

std::string shape_str(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

// std::invalid_argument surfaces in Python as ValueError.
void require_f32(const py::array& a, const char* name, py::ssize_t ndim) {
  if (!a.dtype().equal(py::dtype::of<float>()))
    throw std::invalid_argument(std::string(name) + " must be native float32, got dtype " +
                                std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw std::invalid_argument(std::string(name) + " must have " + std::to_string(ndim) +
                                " dimension(s), got shape " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + " must be C-contiguous");
}

py::object nearest_centroid(const py::array& x, const py::array& codebook,
                            const std::optional<py::array>& codebook_sqnorm, int num_threads,
                            const std::string& path, bool return_stats) {
  require_f32(x, "x", 2);
  require_f32(codebook, "codebook", 2);
  const int64_t n = x.shape(0), d = x.shape(1), k = codebook.shape(0);
  if (k == 0) throw std::invalid_argument("codebook is empty (K = 0)");
  if (codebook.shape(1) != d)
    throw std::invalid_argument("dimension mismatch: x is " + shape_str(x) + ", codebook is " +
                                shape_str(codebook));
  const float* cn = nullptr;
  if (codebook_sqnorm) {
    require_f32(*codebook_sqnorm, "codebook_sqnorm", 1);
    if (codebook_sqnorm->shape(0) != k)
      throw std::invalid_argument("codebook_sqnorm must have shape [" + std::to_string(k) +
                                  "], got " + shape_str(*codebook_sqnorm));
    cn = static_cast<const float*>(codebook_sqnorm->data());
  }
  // Resolved before the GIL is released, so that a bad name or an unsupported path raises here.
  const scrt::NearestCentroidPath chosen = scrt::nearest_centroid_resolve_path(
      scrt::nearest_centroid_parse_path(path.c_str()), n, k, d);
  py::array_t<int64_t> index(n);
  py::array_t<float> sqdist(n);
  const float* xp = static_cast<const float*>(x.data());
  const float* cp = static_cast<const float*>(codebook.data());
  int64_t* ip = index.mutable_data();
  float* dp = sqdist.mutable_data();
  scrt::NearestCentroidStats stats;
  {
    py::gil_scoped_release nogil;
    scrt::nearest_centroid_f32(xp, cp, cn, n, k, d, ip, dp, num_threads, chosen, &stats);
  }
  if (!return_stats) return py::make_tuple(index, sqdist);
  py::dict info;
  info["path"] = scrt::nearest_centroid_path_name(chosen);
  info["rows_screened"] = stats.rows_screened;
  info["candidates"] = stats.candidates;
  info["rows_fallback"] = stats.rows_fallback;
  return py::make_tuple(index, sqdist, info);
}

std::string nearest_centroid_path(const std::string& path, int64_t n, int64_t k, int64_t d) {
  return scrt::nearest_centroid_path_name(
      scrt::nearest_centroid_resolve_path(scrt::nearest_centroid_parse_path(path.c_str()), n, k, d));
}

py::array_t<float> codebook_sqnorm(const py::array& codebook, int num_threads) {
  require_f32(codebook, "codebook", 2);
  const int64_t k = codebook.shape(0), d = codebook.shape(1);
  py::array_t<float> out(k);
  const float* cp = static_cast<const float*>(codebook.data());
  float* op = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    scrt::codebook_sqnorm_f32(cp, k, d, op, num_threads);
  }
  return out;
}

int openmp_max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 0;
#endif
}

}  // namespace

namespace {

// The fused sampler step over arrays of any shape (all shaped like x_t).
py::tuple sampler_step(const py::array& x_t, const py::array& v_cond,
                       const std::optional<py::array>& v_uncond,
                       const std::optional<py::array>& noise, double cfg_scale, double sqrt_ac_t,
                       double sqrt_1m_ac_t, double a_prev, double sigma, bool euler,
                       int num_threads) {
  const py::ssize_t ndim = x_t.ndim();
  auto like_x = [&](const py::array& a, const char* name) {
    require_f32(a, name, ndim);
    for (py::ssize_t i = 0; i < ndim; ++i)
      if (a.shape(i) != x_t.shape(i))
        throw std::invalid_argument(std::string(name) + " has shape " + shape_str(a) +
                                    ", x_t has " + shape_str(x_t));
    return static_cast<const float*>(a.data());
  };
  const float* xt = like_x(x_t, "x_t");
  const float* vc = like_x(v_cond, "v_cond");
  const float* vu = v_uncond ? like_x(*v_uncond, "v_uncond") : nullptr;
  const scrt::SamplerStepCoeffs c =
      scrt::sampler_step_coeffs(cfg_scale, sqrt_ac_t, sqrt_1m_ac_t, a_prev, sigma, euler);
  // Noise is read only when the step adds it; an unused one is not checked either.
  const float* nz = (c.noisy && noise) ? like_x(*noise, "noise") : nullptr;
  if (c.noisy && nz == nullptr)
    throw std::invalid_argument("noise is required when sigma != 0 in ddim mode (eta > 0)");
  const std::vector<py::ssize_t> shape(x_t.shape(), x_t.shape() + ndim);
  py::array_t<float> x_prev(shape), x0(shape);
  float* out_prev = x_prev.mutable_data();
  float* out_x0 = x0.mutable_data();
  const int64_t n = x_t.size();
  {
    py::gil_scoped_release nogil;
    scrt::sampler_step_f32(xt, vc, vu, nz, n, c, out_prev, out_x0, num_threads);
  }
  return py::make_tuple(x_prev, x0);
}

// layers: a list of (weight [n_out, n_in] float32, bias [n_out] float32 or None), in the order of
// FARGAN_LAYERS; stored transposed (column-major) for the streaming products.
scrt::Fargan make_fargan(const py::list& layers) {
  std::vector<scrt::FarganLayer> out;
  for (const py::handle& item : layers) {
    auto pair = item.cast<py::tuple>();
    auto w = pair[0].cast<py::array>();
    require_f32(w, "weight", 2);
    scrt::FarganLayer l;
    l.n_out = static_cast<int>(w.shape(0));
    l.n_in = static_cast<int>(w.shape(1));
    const float* wp = static_cast<const float*>(w.data());
    l.w_cols.resize(static_cast<size_t>(l.n_in) * l.n_out);
    for (int o = 0; o < l.n_out; ++o)
      for (int i = 0; i < l.n_in; ++i) l.w_cols[static_cast<size_t>(i) * l.n_out + o] = wp[static_cast<size_t>(o) * l.n_in + i];
    l.bias.assign(l.n_out, 0.f);
    if (!pair[1].is_none()) {
      auto b = pair[1].cast<py::array>();
      require_f32(b, "bias", 1);
      if (b.shape(0) != l.n_out) throw std::invalid_argument("bias size does not match the weight");
      std::memcpy(l.bias.data(), b.data(), sizeof(float) * l.n_out);
    }
    out.push_back(std::move(l));
  }
  return scrt::Fargan(std::move(out));
}

// features [T, >= 20] float32 C-contiguous -> pcm [T * 160] float32, carrying the state.
py::array_t<float> fargan_synthesize(scrt::Fargan& f, const py::array& features) {
  require_f32(features, "features", 2);
  if (features.shape(1) < 20) throw std::invalid_argument("features need at least 20 columns, got " + shape_str(features));
  const int64_t t = features.shape(0), stride = features.shape(1);
  py::array_t<float> pcm(t * 160);
  const float* fp = static_cast<const float*>(features.data());
  float* out = pcm.mutable_data();
  {
    py::gil_scoped_release nogil;
    f.synthesize(fp, t, stride, out);
  }
  return pcm;
}

void fargan_prime(scrt::Fargan& f, const py::array& features5, const std::optional<py::array>& pcm320) {
  require_f32(features5, "features", 2);
  if (features5.shape(0) != 5 || features5.shape(1) != 20)
    throw std::invalid_argument("prime takes features [5, 20], got " + shape_str(features5));
  const float* pcm = nullptr;
  if (pcm320) {
    require_f32(*pcm320, "pcm", 1);
    if (pcm320->shape(0) != 320) throw std::invalid_argument("prime takes pcm [320], got " + shape_str(*pcm320));
    pcm = static_cast<const float*>(pcm320->data());
  }
  f.prime(static_cast<const float*>(features5.data()), pcm);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "CPU kernels of semanticodec_rt (torch-free; use semanticodec_rt.ops instead).";
  m.def("nearest_centroid", &nearest_centroid, py::arg("x"), py::arg("codebook"),
        py::arg("codebook_sqnorm") = py::none(), py::arg("num_threads") = 0,
        py::arg("path") = "auto", py::arg("return_stats") = false,
        R"doc(Exact fp32 nearest-centroid lookup.

x: [N, D] float32 C-contiguous; codebook: [K, D] float32 C-contiguous, K >= 1;
codebook_sqnorm: optional [K] float32 ||c||^2 (computed here when None);
num_threads: OpenMP threads, <= 0 for the OpenMP default;
path: "auto" (SCRT_NC_PATH if set, else the fastest for this CPU and size), "portable", "avx2"
or "avx512" (bf16 screen + exact fp32 confirmation); a path this CPU cannot run is a ValueError.
Returns (index [N] int64, sqdist [N] float32) with
sqdist = (||x||^2 + ||c||^2) - 2 x.c of the winner (can be slightly negative by rounding), and with
return_stats a third item {"path", "rows_screened", "candidates", "rows_fallback"}.
Ties go to the lowest index; the result depends neither on num_threads nor on the path.)doc");
  m.def("nearest_centroid_path", &nearest_centroid_path, py::arg("path") = "auto",
        py::arg("n") = 512, py::arg("k") = 16384, py::arg("d") = 768,
        "The path ('portable', 'avx2' or 'avx512') nearest_centroid takes for a request and size "
        "(auto reads SCRT_NC_PATH); ValueError for a path this CPU cannot run.");
  m.def("peak_gflops", &scrt::peak_gflops, py::arg("kind"), py::arg("num_threads") = 0,
        py::arg("seconds") = 0.3, py::call_guard<py::gil_scoped_release>(),
        "Measured GFLOP/s of register-only multiply-add loops: kind 'fp32' (widest FMA) or 'bf16' "
        "(vdpbf16ps; 0.0 without AVX-512 BF16), on num_threads OpenMP threads.");
  m.def("codebook_sqnorm", &codebook_sqnorm, py::arg("codebook"), py::arg("num_threads") = 0,
        "[K, D] float32 -> [K] float32 ||c||^2, summed in the order nearest_centroid uses.");
  m.def("openmp_max_threads", &openmp_max_threads,
        "OpenMP's default thread count (0 when built without OpenMP).");
  m.def("sampler_step", &sampler_step, py::arg("x_t"), py::arg("v_cond"),
        py::arg("v_uncond"), py::arg("noise"), py::arg("cfg_scale"), py::arg("sqrt_ac_t"),
        py::arg("sqrt_1m_ac_t"), py::arg("a_prev"), py::arg("sigma"), py::arg("euler"),
        py::arg("num_threads") = 0,
        R"doc(Fused sampler step: guidance, v -> (x0, eps) and the DDIM / Euler update in one pass.

x_t, v_cond, v_uncond (None: no guidance), noise: float32 C-contiguous arrays of one shape;
noise is required when sigma != 0 and euler is False, ignored otherwise.
The scalars are rounded to float32; euler=True is the deterministic step (sigma taken as 0).
Returns new arrays (x_prev, x0), bit-identical to ops.ref.sampler_step_ref in float32 and
independent of num_threads (OpenMP threads, <= 0 for the default).)doc");
  py::class_<scrt::Fargan>(m, "Fargan", "FARGAN streaming synthesis (one stream; state kept between calls).")
      .def(py::init(&make_fargan), py::arg("layers"),
           "layers: [(weight [out, in] float32, bias [out] float32 | None)] in FARGAN_LAYERS order.")
      .def("reset", &scrt::Fargan::reset)
      .def("prime", &fargan_prime, py::arg("features"), py::arg("pcm") = py::none(),
           "Start a stream: features [5, 20] of the first frames, pcm [320] before it (None: silence).")
      .def("synthesize", &fargan_synthesize, py::arg("features"),
           "features [T, >= 20] float32 -> pcm [T * 160] float32 (16 kHz), continuing the stream.");
}
