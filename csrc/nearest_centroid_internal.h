// What the nearest-centroid translation units share: the running-best record and its ordering, the
// exact fp32 distance of the scan (so that a caller outside nearest_centroid.cpp can confirm a
// candidate with the very same bits), and the entry points of the AVX-512 screen.
// Not a public API: csrc/nearest_centroid.h is.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "nearest_centroid.h"

namespace scrt {
namespace nc {

struct Best {
  float dist;
  int64_t index;  // -1: nothing seen yet
};

// Should (dist, index) replace `best`? Lexicographic on (dist, index) with NaN smallest, so the
// outcome does not depend on the order candidates arrive in (torch.min also propagates NaN).
inline bool better(float dist, int64_t index, const Best& best) {
  if (best.index < 0) return true;
  if (std::isnan(best.dist)) return std::isnan(dist) && index < best.index;
  if (std::isnan(dist)) return true;
  return dist < best.dist || (dist == best.dist && index < best.index);
}

// (xn + cn) - 2 <x, c> over d elements, bit-identical to the distance the exact scan computes for
// this pair (AVX2 + FMA when the CPU has it, else the portable loop: the same bits either way).
float exact_dist(const float* x, float xn, const float* c, float cn, int64_t d);

// The exact scan: rows [r0, r1) of x against centroids [k0, k1), updating best[0 .. r1 - r0).
//   xn: [n] ||x||^2 of all rows, cn: [k] ||c||^2 of all centroids (indexed absolutely).
void exact_scan(const float* x, const float* xn, const float* cb, const float* cn, int64_t r0,
                int64_t r1, int64_t k0, int64_t k1, int64_t d, Best* best);

// ---------------------------------------------------------------- AVX-512 BF16 screen
// (csrc/nearest_centroid_avx512.cpp; the functions exist on every build, and report "unsupported"
// where the compiler or the CPU cannot run the screen.)

// Does this binary carry the screen and does this CPU run it (AVX-512 F/BW/VL + BF16, AVX2, FMA)?
bool screen_supported();

// Per-call data of the screen, shared read-only by all tasks.
struct ScreenCall {
  const float* x;   // [n, d]
  const float* xn;  // [n] ||x||^2 as the exact scan computes it
  const float* cb;  // [k, d]
  const float* cn;  // [k] ||c||^2 the caller uses (given or computed): the exact path's numbers
  int64_t n, k, d;
  std::vector<float> center;  // [d] m: the screen works on x - m and c - m (any m is valid)
  double center_norm;         // upper bound on ||m||
};

// Fills call.center / call.center_norm (the mean of at most 256 evenly spaced codebook rows).
void screen_prepare(ScreenCall& call);

// Rows the screen handles per task (bounded: its per-row candidate lists live in the task).
int64_t screen_row_block();

// One task: rows [r0, r1) against centroids [k0, k1), best[i] for row r0 + i. The result equals
// exact_scan's over the same range bit for bit. counters (may be null) receives the task's counts.
void screen_task(const ScreenCall& call, int64_t r0, int64_t r1, int64_t k0, int64_t k1, Best* best,
                 NearestCentroidStats* counters);

}  // namespace nc
}  // namespace scrt
