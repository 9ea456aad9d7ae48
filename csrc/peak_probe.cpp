// Peak probes: tight loops of independent multiply-add chains, long enough (>= 12 chains of a
// 4-6 cycle latency) to keep both FMA pipes busy, with nothing loaded from memory. They measure
// what the core actually sustains at its current clock, which a datasheet number would not.
#include "peak_probe.h"

#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SCRT_PROBE_X86 1
#include <immintrin.h>
#endif

namespace scrt {
namespace {

constexpr int kChains = 12;
constexpr long kInner = 1 << 12;  // iterations between clock reads

// Each loop returns a value derived from its accumulators so the work cannot be dropped, and
// returns the FLOP it did through `flop`.

double portable_fp32(long iters, double& flop) {
  float acc[kChains] = {};
  volatile float vx = 1.0f, vy = 1e-9f;
  const float x = vx, y = vy;
  for (long n = 0; n < iters; ++n)
    for (int i = 0; i < kChains; ++i) acc[i] = std::fma(x, y, acc[i]);
  flop += 2.0 * kChains * iters;
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

#ifdef SCRT_PROBE_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
// The AVX2 loop is its own copy: a template defined under the AVX-512 target below could not be
// instantiated for an AVX2-only CPU without carrying AVX-512 instructions.
double avx2_fp32(long iters, double& flop) {
  __m256 acc[kChains];
  for (auto& a : acc) a = _mm256_setzero_ps();
  __m256 x = _mm256_set1_ps(1.0f);
  const __m256 y = _mm256_set1_ps(1e-9f);
  for (long n = 0; n < iters; ++n) {
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(x, y, acc[i]);
    __asm__ volatile("" : "+x"(x));  // x stays a live register: no hoisting of the products
  }
  flop += 16.0 * kChains * iters;
  alignas(32) float out[8];
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  _mm256_store_ps(out, s);
  return out[0];
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bf16")
// Both AVX-512 loops: fp32 FMAs (32 FLOP per instruction) or bf16 pair dot products (64).
template <bool Bf16>
double avx512_loop(long iters, double& flop) {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_setzero_ps();
  // fp32: x = 1, y = 1e-9; bf16: every pair (1, 1) times (2^-31, 2^-31)
  __m512i x = Bf16 ? _mm512_set1_epi32(0x3f803f80) : _mm512_castps_si512(_mm512_set1_ps(1.0f));
  const __m512i y = Bf16 ? _mm512_set1_epi32(0x30003000) : _mm512_castps_si512(_mm512_set1_ps(1e-9f));
  for (long n = 0; n < iters; ++n) {
    for (int i = 0; i < kChains; ++i)
      acc[i] = Bf16 ? _mm512_dpbf16_ps(acc[i], (__m512bh)x, (__m512bh)y)
                    : _mm512_fmadd_ps(_mm512_castsi512_ps(x), _mm512_castsi512_ps(y), acc[i]);
    __asm__ volatile("" : "+v"(x));
  }
  flop += (Bf16 ? 64.0 : 32.0) * kChains * iters;
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}
#pragma GCC pop_options

bool has_avx512_bf16() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}
bool has_avx512() { return __builtin_cpu_supports("avx512f"); }
bool has_avx2_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif

using Loop = double (*)(long, double&);

Loop pick(const std::string& kind) {
  if (kind == "fp32") {
#ifdef SCRT_PROBE_X86
    if (has_avx512()) return avx512_loop<false>;
    if (has_avx2_fma()) return avx2_fp32;
#endif
    return portable_fp32;
  }
  if (kind == "bf16") {
#ifdef SCRT_PROBE_X86
    if (has_avx512_bf16()) return avx512_loop<true>;
#endif
    return nullptr;
  }
  throw std::invalid_argument("peak kind must be 'fp32' or 'bf16', got '" + kind + "'");
}

}  // namespace

double peak_gflops(const char* kind, int threads, double seconds) {
  const Loop loop = pick(kind);
  if (loop == nullptr) return 0.0;
#ifdef _OPENMP
  const int nt = threads > 0 ? threads : omp_get_max_threads();
#else
  const int nt = 1;
  (void)threads;
#endif
  using clock = std::chrono::steady_clock;
  double total_flop = 0, sink = 0;
  const auto t0 = clock::now();
#pragma omp parallel num_threads(nt) reduction(+ : total_flop, sink)
  {
    double flop = 0;
    const auto start = clock::now();
    while (std::chrono::duration<double>(clock::now() - start).count() < seconds)
      sink += loop(kInner, flop);
    total_flop += flop;
  }
  const double wall = std::chrono::duration<double>(clock::now() - t0).count();
  if (sink == 12345.0) total_flop += 1;  // keeps `sink` observable
  return total_flop / wall / 1e9;
}

}  // namespace scrt
