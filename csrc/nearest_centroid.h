// Exact fp32 nearest-centroid lookup on the CPU (no Python, no torch).
//
// Shared by the pybind11 bindings (csrc/bindings.cpp) and, later, by any other C++ caller.
#pragma once

#include <cstdint>

namespace scrt {

// The code path of one lookup. Every path returns the same bits (see nearest_centroid.cpp).
//   kAuto      what the environment variable SCRT_NC_PATH names (auto|portable|avx2|avx512),
//              else the fastest path this CPU runs for the problem size.
//   kPortable  std::fma loop, any CPU.
//   kAvx2      AVX2 + FMA register tiles.
//   kAvx512    bf16 screen with a rigorous error bound (vdpbf16ps), then the exact fp32 distance
//              of the surviving candidates only (nearest_centroid_avx512.cpp).
enum class NearestCentroidPath { kAuto = 0, kPortable = 1, kAvx2 = 2, kAvx512 = 3 };

// Counts of one call on the kAvx512 path (all zero on the others).
struct NearestCentroidStats {
  int64_t rows_screened = 0;   // (row, task) pairs that went through the screen
  int64_t candidates = 0;      // exact distances computed to confirm screened rows
  int64_t rows_fallback = 0;   // (row, task) pairs scanned exactly instead (overflow, non-finite)
};

// ||c_k||^2 for every codebook row, summed in the same fixed order the lookup uses, so that
// duplicated rows get bit-identical norms (needed for exact ties to resolve to the lowest index).
//   codebook: [k, d] float32, row-major.   out: [k] float32.
void codebook_sqnorm_f32(const float* codebook, int64_t k, int64_t d, float* out, int num_threads);

// For every query row i: out_index[i] = argmin_k dist(i, k), out_sqdist[i] = min_k dist(i, k), with
//   dist(i, k) = (||x_i||^2 + ||c_k||^2) - 2 <x_i, c_k>      (float32, the formula of ops/ref.py)
// evaluated without materialising the [n, k] distance matrix.
//   x:               [n, d] float32, row-major.
//   codebook:        [k, d] float32, row-major, k >= 1.
//   codebook_sqnorm: [k] float32 or nullptr (then computed here with codebook_sqnorm_f32).
//   out_index:       [n] int64.   out_sqdist: [n] float32 or nullptr.
//   num_threads:     OpenMP threads; <= 0 means the OpenMP default.
//   path:            see NearestCentroidPath; a path this CPU or build cannot run throws
//                    std::invalid_argument, as does an unknown SCRT_NC_PATH.
//   stats:           optional counters of the kAvx512 path.
// Ties resolve to the lowest index; a NaN distance wins (as torch.min propagates NaN) and the first
// NaN index is returned. The result does not depend on num_threads or on the path: every distance
// is computed in one fixed summation order and partial minima are merged lexicographically on
// (distance, index).
void nearest_centroid_f32(const float* x, const float* codebook, const float* codebook_sqnorm,
                          int64_t n, int64_t k, int64_t d, int64_t* out_index, float* out_sqdist,
                          int num_threads,
                          NearestCentroidPath path = NearestCentroidPath::kAuto,
                          NearestCentroidStats* stats = nullptr);

// The path a call with these arguments takes (never kAuto); throws like nearest_centroid_f32.
NearestCentroidPath nearest_centroid_resolve_path(NearestCentroidPath requested, int64_t n,
                                                  int64_t k, int64_t d);

// "portable", "avx2" or "avx512" (kAuto: "auto").
const char* nearest_centroid_path_name(NearestCentroidPath path);

// Parses such a name (case-sensitive, as written above); throws std::invalid_argument otherwise.
NearestCentroidPath nearest_centroid_parse_path(const char* name);

}  // namespace scrt
