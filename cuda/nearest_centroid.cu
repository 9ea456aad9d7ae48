// CUDA nearest-centroid lookup: a simple, exact reference implementation (speed comes later).
//
// One block per query row (grid-stride over rows); each warp takes centroids warp, warp + 8, ...
// and keeps a running (distance, index) minimum; the block then merges its warps. The [n, k]
// distance matrix is never stored. Every dot product is summed by one warp in a fixed order (see
// warp_dot), so a given (row, centroid) pair always yields the same bits: duplicated centroids tie
// exactly and the lowest index wins, as in the CPU kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "launch_util.h"
#include "nearest_centroid.h"

namespace scrt::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarp;
constexpr int64_t kMaxGrid = 1 << 20;  // grid-stride loops cover larger problems

// <a, b> by one warp: lane l accumulates elements l, l + 32, ... (coalesced loads), then a fixed
// xor butterfly. Addition is commutative, so all lanes end with identical bits.
__device__ __forceinline__ float warp_dot(const float* __restrict__ a, const float* __restrict__ b,
                                          int64_t d, int lane) {
  float s = 0.0f;
  for (int64_t j = lane; j < d; j += kWarp) s = fmaf(a[j], b[j], s);
#pragma unroll
  for (int off = kWarp / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
  return s;
}

// Should (dist, index) replace (best, best_index)? Lexicographic with NaN smallest; index < 0
// means "none". Same rule as csrc/nearest_centroid.cpp.
__device__ __forceinline__ bool better(float dist, int64_t index, float best, int64_t best_index) {
  if (index < 0) return false;
  if (best_index < 0) return true;
  if (isnan(best)) return isnan(dist) && index < best_index;
  if (isnan(dist)) return true;
  return dist < best || (dist == best && index < best_index);
}

__global__ void __launch_bounds__(kThreads)
    sqnorm_kernel(const float* __restrict__ cb, int64_t k, int64_t d, float* __restrict__ out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarps;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp;
  for (int64_t c = first; c < k; c += stride) {
    const float* row = cb + c * d;
    const float s = warp_dot(row, row, d, lane);
    if (lane == 0) out[c] = s;
  }
}

__global__ void __launch_bounds__(kThreads)
    nearest_kernel(const float* __restrict__ x, const float* __restrict__ cb,
                   const float* __restrict__ cn, int64_t n, int64_t k, int64_t d,
                   int64_t* __restrict__ out_index, float* __restrict__ out_sqdist) {
  __shared__ float s_dist[kWarps];
  __shared__ int64_t s_index[kWarps];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const float* xr = x + row * d;
    const float xn = warp_dot(xr, xr, d, lane);  // each warp computes it: same bits, no sync needed
    float best = 0.0f;
    int64_t best_index = -1;
    for (int64_t c = warp; c < k; c += kWarps) {
      const float dist = (xn + cn[c]) - 2.0f * warp_dot(xr, cb + c * d, d, lane);
      if (better(dist, c, best, best_index)) {
        best = dist;
        best_index = c;
      }
    }
    if (lane == 0) {
      s_dist[warp] = best;
      s_index[warp] = best_index;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kWarps; ++w) {
        if (better(s_dist[w], s_index[w], best, best_index)) {
          best = s_dist[w];
          best_index = s_index[w];
        }
      }
      out_index[row] = best_index;
      if (out_sqdist != nullptr) out_sqdist[row] = best;
    }
    __syncthreads();  // s_dist / s_index are rewritten for the next row
  }
}

}  // namespace

void codebook_sqnorm(std::uintptr_t codebook, int64_t k, int64_t d, std::uintptr_t out,
                     std::uintptr_t stream, int device) {
  require(k >= 0 && d >= 0, "codebook_sqnorm: negative size");
  if (k == 0) return;
  require(codebook != 0 && out != 0, "codebook_sqnorm: null pointer");
  DeviceGuard guard(device);
  const auto grid = static_cast<unsigned>(std::min<int64_t>((k + kWarps - 1) / kWarps, kMaxGrid));
  sqnorm_kernel<<<grid, kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const float*>(codebook), k, d, reinterpret_cast<float*>(out));
  check(cudaGetLastError(), "codebook_sqnorm launch");
}

void nearest_centroid(std::uintptr_t x, std::uintptr_t codebook, std::uintptr_t sqnorm, int64_t n,
                      int64_t k, int64_t d, std::uintptr_t out_index, std::uintptr_t out_sqdist,
                      std::uintptr_t stream, int device) {
  require(n >= 0 && d >= 0, "nearest_centroid: negative size");
  require(k >= 1, "nearest_centroid: codebook is empty (K = 0)");
  if (n == 0) return;
  require(x != 0 && codebook != 0 && sqnorm != 0 && out_index != 0,
          "nearest_centroid: null pointer");
  DeviceGuard guard(device);
  const auto grid = static_cast<unsigned>(std::min<int64_t>(n, kMaxGrid));
  nearest_kernel<<<grid, kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(codebook),
      reinterpret_cast<const float*>(sqnorm), n, k, d, reinterpret_cast<int64_t*>(out_index),
      reinterpret_cast<float*>(out_sqdist));
  check(cudaGetLastError(), "nearest_centroid launch");
}

DeviceStatus device_status() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it, so that it does not surface at an unrelated later check
    return DeviceStatus{0, static_cast<int>(err), cudaGetErrorString(err)};
  }
  return DeviceStatus{count, 0, cudaGetErrorString(err)};
}

int runtime_version() {
  int v = 0;
  check(cudaRuntimeGetVersion(&v), "cudaRuntimeGetVersion");
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) return 0;
  return v;
}

}  // namespace scrt::cuda
