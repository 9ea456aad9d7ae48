// Fused CUDA sampler step: guidance, v -> (x0, eps) and the DDIM / Euler update in one
// elementwise pass (5 streams in, 2 out, instead of the ~15 kernel launches of the torch chain).
//
// Grid-stride loop over float4 groups when every pointer is 16-byte aligned, then a scalar loop
// for the remaining elements (all of them when some pointer is not aligned). One kernel is
// instantiated per input combination (guided or not, noise or not), so no thread branches on it.
#include <cuda_runtime.h>

#include <algorithm>

#include "../csrc/sampler_step_coeffs.h"
#include "launch_util.h"
#include "sampler_step.h"

namespace scrt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 12;  // enough to fill any current GPU; grid-stride beyond

// One element, in the order of csrc/sampler_step.h. The _rn intrinsics are never contracted into
// FMAs (nvcc's default --fmad=true would contract a * b + c), so every operation rounds once, as
// in the CPU kernel and in torch's separate elementwise kernels.
template <bool Guided, bool Noisy>
__device__ __forceinline__ void step1(float x, float vc, float vu, float nz,
                                      const SamplerStepCoeffs& c, float& x_prev, float& x0) {
  float v = vc;
  if (Guided) v = __fadd_rn(vu, __fmul_rn(c.cfg_scale, __fsub_rn(vc, vu)));
  const float eps = __fadd_rn(__fmul_rn(c.sqrt_ac, v), __fmul_rn(c.sqrt_1m_ac, x));
  x0 = __fsub_rn(__fmul_rn(c.sqrt_ac, x), __fmul_rn(c.sqrt_1m_ac, v));
  x_prev = __fadd_rn(__fmul_rn(c.c_x0, x0), __fmul_rn(c.c_eps, eps));
  if (Noisy) x_prev = __fadd_rn(x_prev, __fmul_rn(c.sigma, nz));
}

// Group i of p; zeros for a stream this instantiation does not read (`used` is a constant there).
__device__ __forceinline__ float4 load4(const float* p, int64_t i, bool used) {
  return used ? reinterpret_cast<const float4*>(p)[i] : make_float4(0.f, 0.f, 0.f, 0.f);
}

// n4: number of float4 groups handled vectorised (0 when a pointer is misaligned).
template <bool Guided, bool Noisy>
__global__ void __launch_bounds__(kThreads)
    step_kernel(const float* __restrict__ x, const float* __restrict__ vc,
                const float* __restrict__ vu, const float* __restrict__ nz, int64_t n, int64_t n4,
                SamplerStepCoeffs c, float* __restrict__ x_prev, float* __restrict__ x0) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = first; i < n4; i += stride) {
    const float4 a = load4(x, i, true), b = load4(vc, i, true);
    const float4 u = load4(vu, i, Guided), z = load4(nz, i, Noisy);
    float4 p, q;
    step1<Guided, Noisy>(a.x, b.x, u.x, z.x, c, p.x, q.x);
    step1<Guided, Noisy>(a.y, b.y, u.y, z.y, c, p.y, q.y);
    step1<Guided, Noisy>(a.z, b.z, u.z, z.z, c, p.z, q.z);
    step1<Guided, Noisy>(a.w, b.w, u.w, z.w, c, p.w, q.w);
    reinterpret_cast<float4*>(x_prev)[i] = p;
    reinterpret_cast<float4*>(x0)[i] = q;
  }
  for (int64_t i = 4 * n4 + first; i < n; i += stride) {
    step1<Guided, Noisy>(x[i], vc[i], Guided ? vu[i] : 0.f, Noisy ? nz[i] : 0.f, c, x_prev[i],
                         x0[i]);
  }
}

using StepKernel = void (*)(const float*, const float*, const float*, const float*, int64_t,
                            int64_t, SamplerStepCoeffs, float*, float*);

StepKernel pick_kernel(bool guided, bool noisy) {
  if (guided) return noisy ? step_kernel<true, true> : step_kernel<true, false>;
  return noisy ? step_kernel<false, true> : step_kernel<false, false>;
}

bool aligned16(std::uintptr_t p) { return p % 16 == 0; }

}  // namespace

void sampler_step(std::uintptr_t x_t, std::uintptr_t v_cond, std::uintptr_t v_uncond,
                  std::uintptr_t noise, int64_t n, double cfg_scale, double sqrt_ac_t,
                  double sqrt_1m_ac_t, double a_prev, double sigma, bool euler,
                  std::uintptr_t out_x_prev, std::uintptr_t out_x0, std::uintptr_t stream,
                  int device) {
  require(n >= 0, "sampler_step: negative size");
  const SamplerStepCoeffs c =
      sampler_step_coeffs(cfg_scale, sqrt_ac_t, sqrt_1m_ac_t, a_prev, sigma, euler);
  require(!c.noisy || noise != 0,
          "sampler_step: noise is required when sigma != 0 in ddim mode (eta > 0)");
  if (n == 0) return;
  require(x_t != 0 && v_cond != 0 && out_x_prev != 0 && out_x0 != 0,
          "sampler_step: null pointer");
  const bool guided = v_uncond != 0;
  if (!c.noisy) noise = 0;  // never read
  // Unused pointers are 0, hence aligned.
  const bool vec = aligned16(x_t) && aligned16(v_cond) && aligned16(v_uncond) &&
                   aligned16(noise) && aligned16(out_x_prev) && aligned16(out_x0);
  const int64_t n4 = vec ? n / 4 : 0;
  const int64_t work = std::max(n4, n - 4 * n4);  // iterations of the longer loop
  const auto grid =
      static_cast<unsigned>(std::min<int64_t>((work + kThreads - 1) / kThreads, kMaxBlocks));
  DeviceGuard guard(device);
  pick_kernel(guided, c.noisy)<<<grid, kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const float*>(x_t), reinterpret_cast<const float*>(v_cond),
      reinterpret_cast<const float*>(v_uncond), reinterpret_cast<const float*>(noise), n, n4, c,
      reinterpret_cast<float*>(out_x_prev), reinterpret_cast<float*>(out_x0));
  check(cudaGetLastError(), "sampler_step launch");
}

}  // namespace scrt::cuda
