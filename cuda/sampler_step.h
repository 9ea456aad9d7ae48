// Host-side launcher of the fused CUDA sampler step (the math: csrc/sampler_step.h).
//
// Plain types only (no CUDA headers), so cuda/bindings.cpp compiles with the host compiler.
// Conventions as in nearest_centroid.h: device addresses and the caller's cudaStream_t as
// integers, `device` made current for the launch and restored; asynchronous; errors at launch
// throw std::runtime_error, bad arguments std::invalid_argument.
#pragma once

#include <cstdint>

namespace scrt::cuda {

// x_prev, x0 = one guided DDIM / Euler step over n float32 elements, bit-identical to the CPU
// kernel (scrt::sampler_step_f32) and to ops.ref.sampler_step_ref in float32.
//   x_t, v_cond: [n]; v_uncond: [n] or 0 (no guidance); noise: [n], required when sigma != 0 and
//   not euler, otherwise ignored (may be 0); out_x_prev, out_x0: [n], not overlapping the inputs.
// The scalars are rounded to float32 as in scrt::sampler_step_coeffs.
void sampler_step(std::uintptr_t x_t, std::uintptr_t v_cond, std::uintptr_t v_uncond,
                  std::uintptr_t noise, int64_t n, double cfg_scale, double sqrt_ac_t,
                  double sqrt_1m_ac_t, double a_prev, double sigma, bool euler,
                  std::uintptr_t out_x_prev, std::uintptr_t out_x0, std::uintptr_t stream,
                  int device);

}  // namespace scrt::cuda
