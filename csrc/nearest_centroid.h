// Exact fp32 nearest-centroid lookup on the CPU (no Python, no torch).
//
// Shared by the pybind11 bindings (csrc/bindings.cpp) and, later, by any other C++ caller.
#pragma once

#include <cstdint>

namespace scrt {

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
// Ties resolve to the lowest index; a NaN distance wins (as torch.min propagates NaN) and the first
// NaN index is returned. The result does not depend on num_threads: every distance is computed in
// one fixed summation order and partial minima are merged lexicographically on (distance, index).
void nearest_centroid_f32(const float* x, const float* codebook, const float* codebook_sqnorm,
                          int64_t n, int64_t k, int64_t d, int64_t* out_index, float* out_sqdist,
                          int num_threads);

}  // namespace scrt
