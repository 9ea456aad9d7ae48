// Fused sampler step on the CPU (no Python, no torch): classifier-free guidance, v -> (x0, eps)
// and the DDIM / Euler update in one pass over the elements.
//
// The torch twin is semanticodec_rt/ops/ref.py:sampler_step_ref.
#pragma once

#include <cstdint>

#include "sampler_step_coeffs.h"

namespace scrt {

// For every element i, in float32 and in this order (each operation rounds once; the build uses
// -ffp-contract=off, so no FMA fuses a product into a sum):
//   v         = v_uncond ? v_uncond[i] + cfg_scale * (v_cond[i] - v_uncond[i]) : v_cond[i]
//   eps       = sqrt_ac * v + sqrt_1m_ac * x_t[i]
//   x0[i]     = sqrt_ac * x_t[i] - sqrt_1m_ac * v
//   x_prev[i] = c_x0 * x0[i] + c_eps * eps          (+ sigma * noise[i] when c.noisy)
// with the coefficients `c` of sampler_step_coeffs.
//   x_t, v_cond:     [n] float32.
//   v_uncond:        [n] float32, or nullptr for no guidance.
//   noise:           [n] float32; required when c.noisy, ignored otherwise (may be nullptr).
//   x_prev, x0:      [n] float32 outputs; must not overlap the inputs.
//   num_threads:     OpenMP threads (used above a size threshold); <= 0 means the OpenMP default.
// The result does not depend on num_threads. Throws std::invalid_argument when n < 0 or when
// c.noisy and noise is nullptr.
void sampler_step_f32(const float* x_t, const float* v_cond, const float* v_uncond,
                      const float* noise, int64_t n, const SamplerStepCoeffs& c, float* x_prev,
                      float* x0, int num_threads);

}  // namespace scrt
