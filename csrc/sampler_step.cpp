// Fused sampler step: one elementwise pass. See sampler_step.h for the contract.
//
// The four input combinations (guided or not, noise or not) each get their own loop, so the
// inner loop has no branches and vectorises; the optional streams are then not even read.
#include "sampler_step.h"

#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace scrt {
namespace {

// Below this many elements (tens of microseconds on one core) a parallel region costs more than
// it saves.
constexpr int64_t kParallelElems = 1 << 15;

template <bool Guided, bool Noisy>
void step_loop(const float* x_t, const float* v_cond, const float* v_uncond, const float* noise,
               int64_t n, SamplerStepCoeffs c, float* x_prev, float* x0, int threads) {
  // Elements are independent: any split over threads gives the same bits.
#pragma omp parallel for simd schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < n; ++i) {
    float v = v_cond[i];
    if constexpr (Guided) v = v_uncond[i] + c.cfg_scale * (v_cond[i] - v_uncond[i]);
    const float eps = c.sqrt_ac * v + c.sqrt_1m_ac * x_t[i];
    const float x0_i = c.sqrt_ac * x_t[i] - c.sqrt_1m_ac * v;
    float xp = c.c_x0 * x0_i + c.c_eps * eps;
    if constexpr (Noisy) xp = xp + c.sigma * noise[i];
    x0[i] = x0_i;
    x_prev[i] = xp;
  }
}

int threads_for(int64_t n, int num_threads) {
#ifdef _OPENMP
  if (n >= kParallelElems) return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
  (void)n;
  (void)num_threads;
#endif
  return 1;
}

}  // namespace

void sampler_step_f32(const float* x_t, const float* v_cond, const float* v_uncond,
                      const float* noise, int64_t n, const SamplerStepCoeffs& c, float* x_prev,
                      float* x0, int num_threads) {
  if (n < 0) throw std::invalid_argument("sampler_step: negative size");
  if (c.noisy && noise == nullptr)
    throw std::invalid_argument("sampler_step: noise is required when sigma != 0 in ddim mode");
  if (n == 0) return;
  const int threads = threads_for(n, num_threads);
  const bool guided = v_uncond != nullptr;
  if (guided && c.noisy)
    step_loop<true, true>(x_t, v_cond, v_uncond, noise, n, c, x_prev, x0, threads);
  else if (guided)
    step_loop<true, false>(x_t, v_cond, v_uncond, noise, n, c, x_prev, x0, threads);
  else if (c.noisy)
    step_loop<false, true>(x_t, v_cond, v_uncond, noise, n, c, x_prev, x0, threads);
  else
    step_loop<false, false>(x_t, v_cond, v_uncond, noise, n, c, x_prev, x0, threads);
}

}  // namespace scrt
