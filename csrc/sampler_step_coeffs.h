// Per-step scalars of the fused sampler step, shared by the CPU (csrc/) and CUDA (cuda/) kernels.
//
// Header-only and plain C++ (no CUDA, no Python), so both modules derive bit-identical float32
// coefficients from the same doubles.
#pragma once

#include <cmath>

namespace scrt {

struct SamplerStepCoeffs {
  float cfg_scale;   // guidance scale
  float sqrt_ac;     // sqrt(alpha-bar_t)
  float sqrt_1m_ac;  // sqrt(1 - alpha-bar_t)
  float c_x0;        // sqrt(a_prev)
  float c_eps;       // sqrt(1 - a_prev - sigma^2); sigma is 0 in euler mode
  float sigma;       // factor of the noise
  bool noisy;        // add sigma * noise: ddim mode with sigma != 0
};

// The step's float32 coefficients. Every argument is rounded to float32 first, as ddim_step_v
// rounds its 0-d float32 tensors, and (1 - a_prev) - sigma * sigma keeps its order. The square
// roots are IEEE (correctly rounded), as in ops/ref.py and on the GPU; torch's CPU sqrt can be
// 1 ulp off, which is all that separates x_prev from ddim_step_v's. `noisy` looks at the double
// sigma, as ddim_step_v's `sigma != 0.0` does. Euler mode is ddim with sigma = 0.
inline SamplerStepCoeffs sampler_step_coeffs(double cfg_scale, double sqrt_ac_t,
                                             double sqrt_1m_ac_t, double a_prev, double sigma,
                                             bool euler) {
  const float ap = static_cast<float>(a_prev);
  const float sg = euler ? 0.0f : static_cast<float>(sigma);
  return SamplerStepCoeffs{static_cast<float>(cfg_scale),
                           static_cast<float>(sqrt_ac_t),
                           static_cast<float>(sqrt_1m_ac_t),
                           std::sqrt(ap),
                           std::sqrt((1.0f - ap) - sg * sg),
                           sg,
                           !euler && sigma != 0.0};
}

}  // namespace scrt
