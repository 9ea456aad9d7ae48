// CUDA nearest-centroid lookup: tiled fp32 dot products with a running argmin, never storing the
// [n, k] distance matrix.
//
// A block owns 128 query rows and a chunk of the codebook; it walks the chunk in 128-centroid
// tiles, staging 8-wide slices of D for both sides in shared memory, and each of its 256
// threads accumulates an 8 x 8 register tile of dot products (rows ty*4 + {0..3} and
// 64 + ty*4 + {0..3}, centroids likewise from tx), then folds those distances into its running
// minimum of each of its 8 rows.  The 16 threads sharing a row merge in shared memory, and when
// the codebook was split over several blocks (few rows, large codebook: keep every SM busy) a
// second kernel merges the per-chunk minima.
//
// Numerics: every dot product (and every norm) is one fmaf chain over j = 0 .. d-1 in order,
// whatever the tiling, so a (row, centroid) pair always yields the same bits: duplicated
// centroids tie exactly, x == c gives distance 0, and the lowest index wins ties via the same
// lexicographic rule as the CPU kernel (whose lane order differs: CPU and GPU agree with the
// float64 truth, not with each other bit for bit).
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "launch_util.h"
#include "nearest_centroid.h"

namespace scrt::cuda {
namespace {

constexpr int kThreads = 256;  // 16 x 16
constexpr int kTile = 128;     // rows and centroids per block tile
constexpr int kSlice = 8;      // D elements staged per step
constexpr int kPerThread = 8;  // register tile: 8 rows x 8 centroids
constexpr int kTargetBlocks = 1024;  // split the codebook until about this many blocks run
constexpr int64_t kMinChunkTiles = 4;  // fewest centroid tiles per block when splitting

// Should (dist, index) replace (best, best_index)? Lexicographic with NaN smallest; index < 0
// means "none". Same rule as csrc/nearest_centroid.cpp.
__device__ __forceinline__ bool better(float dist, int64_t index, float best, int64_t best_index) {
  if (index < 0) return false;
  if (best_index < 0) return true;
  if (isnan(best)) return isnan(dist) && index < best_index;
  if (isnan(dist)) return true;
  return dist < best || (dist == best && index < best_index);
}

__device__ __forceinline__ float chain_sqnorm(const float* __restrict__ v, int64_t d) {
  float s = 0.0f;
  for (int64_t j = 0; j < d; ++j) s = fmaf(v[j], v[j], s);
  return s;
}

__global__ void __launch_bounds__(kThreads)
    sqnorm_kernel(const float* __restrict__ cb, int64_t k, int64_t d, float* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < k; c += stride)
    out[c] = chain_sqnorm(cb + c * d, d);
}

// Thread-local slot -> offset inside a 128 tile: 0..3 -> t*4 + i, 4..7 -> 64 + t*4 + i.
__device__ __forceinline__ int slot(int t, int i) { return (i < 4 ? 0 : 64) + t * 4 + (i & 3); }

// Block (blockIdx.x: row tile, blockIdx.y: codebook chunk of `chunk` centroids).
// partial_*[chunk_id * n + row] receive the chunk's minimum of each row.
__global__ void __launch_bounds__(kThreads)
    tiled_kernel(const float* __restrict__ x, const float* __restrict__ cb, const float* __restrict__ cn,
                 int64_t n, int64_t k, int64_t d, int64_t chunk, float* __restrict__ partial_dist,
                 int64_t* __restrict__ partial_index) {
  __shared__ __align__(16) float xs[kSlice][kTile];
  __shared__ __align__(16) float cs[kSlice][kTile];
  __shared__ float xn_s[kTile];
  __shared__ float red_dist[kTile][17];
  __shared__ int64_t red_index[kTile][17];

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t k0 = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t k1 = min(k0 + chunk, k);

  if (tid < kTile) xn_s[tid] = (r0 + tid < n) ? chain_sqnorm(x + (r0 + tid) * d, d) : 0.0f;
  float best[kPerThread];
  int64_t best_index[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    best[i] = 0.0f;
    best_index[i] = -1;
  }
  __syncthreads();

  for (int64_t c0 = k0; c0 < k1; c0 += kTile) {
    float acc[kPerThread][kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) acc[i][j] = 0.0f;

    for (int64_t j0 = 0; j0 < d; j0 += kSlice) {
      const int width = static_cast<int>(d - j0 < kSlice ? d - j0 : kSlice);  // same for every thread
      // Stage x[r0 .. r0+128, j0 .. j0+8) and cb[c0 .. c0+128, ...) transposed (zeros outside).
#pragma unroll
      for (int e = 0; e < kTile * kSlice / kThreads; ++e) {
        const int idx = tid + e * kThreads, row = idx / kSlice, jj = idx % kSlice;
        const int64_t r = r0 + row, c = c0 + row;
        xs[jj][row] = (r < n && jj < width) ? x[r * d + j0 + jj] : 0.0f;
        cs[jj][row] = (c < k1 && jj < width) ? cb[c * d + j0 + jj] : 0.0f;
      }
      __syncthreads();
      for (int jj = 0; jj < width; ++jj) {  // only real elements: the chain is the same for all
        float xv[kPerThread], cv[kPerThread];
        const float4 xa = *reinterpret_cast<const float4*>(&xs[jj][ty * 4]);
        const float4 xb = *reinterpret_cast<const float4*>(&xs[jj][64 + ty * 4]);
        const float4 ca = *reinterpret_cast<const float4*>(&cs[jj][tx * 4]);
        const float4 cb4 = *reinterpret_cast<const float4*>(&cs[jj][64 + tx * 4]);
        xv[0] = xa.x; xv[1] = xa.y; xv[2] = xa.z; xv[3] = xa.w;
        xv[4] = xb.x; xv[5] = xb.y; xv[6] = xb.z; xv[7] = xb.w;
        cv[0] = ca.x; cv[1] = ca.y; cv[2] = ca.z; cv[3] = ca.w;
        cv[4] = cb4.x; cv[5] = cb4.y; cv[6] = cb4.z; cv[7] = cb4.w;
#pragma unroll
        for (int i = 0; i < kPerThread; ++i)
#pragma unroll
          for (int j = 0; j < kPerThread; ++j) acc[i][j] = fmaf(xv[i], cv[j], acc[i][j]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int64_t c = c0 + slot(tx, j);
      if (c >= k1) continue;
      const float cnc = cn[c];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        // (||x||^2 + ||c||^2) - 2 x.c, rounded step by step as in ops/ref.py (2 x.c is exact).
        const float dist = __fsub_rn(__fadd_rn(xn_s[slot(ty, i)], cnc), __fmul_rn(2.0f, acc[i][j]));
        if (better(dist, c, best[i], best_index[i])) {
          best[i] = dist;
          best_index[i] = c;
        }
      }
    }
  }
  // The 16 threads of a row (one per tx) merge through shared memory.
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    red_dist[slot(ty, i)][tx] = best[i];
    red_index[slot(ty, i)][tx] = best_index[i];
  }
  __syncthreads();
  if (tid < kTile && r0 + tid < n) {
    float b = red_dist[tid][0];
    int64_t bi = red_index[tid][0];
    for (int t = 1; t < 16; ++t)
      if (better(red_dist[tid][t], red_index[tid][t], b, bi)) {
        b = red_dist[tid][t];
        bi = red_index[tid][t];
      }
    partial_dist[blockIdx.y * n + r0 + tid] = b;
    partial_index[blockIdx.y * n + r0 + tid] = bi;
  }
}

__global__ void merge_kernel(const float* __restrict__ partial_dist, const int64_t* __restrict__ partial_index,
                             int64_t n, int64_t chunks, int64_t* __restrict__ out_index,
                             float* __restrict__ out_sqdist) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < n; r += stride) {
    float b = partial_dist[r];
    int64_t bi = partial_index[r];
    for (int64_t c = 1; c < chunks; ++c)
      if (better(partial_dist[c * n + r], partial_index[c * n + r], b, bi)) {
        b = partial_dist[c * n + r];
        bi = partial_index[c * n + r];
      }
    out_index[r] = bi;
    if (out_sqdist != nullptr) out_sqdist[r] = b;
  }
}

}  // namespace

void codebook_sqnorm(std::uintptr_t codebook, int64_t k, int64_t d, std::uintptr_t out,
                     std::uintptr_t stream, int device) {
  require(k >= 0 && d >= 0, "codebook_sqnorm: negative size");
  if (k == 0) return;
  require(codebook != 0 && out != 0, "codebook_sqnorm: null pointer");
  DeviceGuard guard(device);
  const auto grid = static_cast<unsigned>(std::min<int64_t>((k + kThreads - 1) / kThreads, 1 << 20));
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
  require(n <= (int64_t{1} << 31) * kTile, "nearest_centroid: too many rows for one launch");
  DeviceGuard guard(device);
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  const int64_t row_tiles = (n + kTile - 1) / kTile;
  const int64_t col_tiles = (k + kTile - 1) / kTile;
  // Split the codebook over blocks only as far as needed to fill the GPU.
  int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(kTargetBlocks / row_tiles, col_tiles / kMinChunkTiles));
  chunks = std::min<int64_t>(chunks, 65535);
  const int64_t chunk = ((col_tiles + chunks - 1) / chunks) * kTile;
  chunks = (k + chunk - 1) / chunk;
  // Per-chunk minima: stream-ordered scratch, freed after the merge (graph-capturable).
  void* scratch = nullptr;
  const size_t entries = static_cast<size_t>(chunks * n);
  const size_t dist_bytes = (entries * sizeof(float) + 15) / 16 * 16;  // keeps the indices aligned
  check(cudaMallocAsync(&scratch, dist_bytes + entries * sizeof(int64_t), st), "nearest_centroid scratch");
  auto* pdist = static_cast<float*>(scratch);
  auto* pindex = reinterpret_cast<int64_t*>(static_cast<char*>(scratch) + dist_bytes);
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(chunks));
  tiled_kernel<<<grid, kThreads, 0, st>>>(
      reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(codebook),
      reinterpret_cast<const float*>(sqnorm), n, k, d, chunk, pdist, pindex);
  check(cudaGetLastError(), "nearest_centroid launch");
  const auto mgrid = static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20));
  merge_kernel<<<mgrid, kThreads, 0, st>>>(pdist, pindex, n, chunks, reinterpret_cast<int64_t*>(out_index),
                                           reinterpret_cast<float*>(out_sqdist));
  check(cudaGetLastError(), "nearest_centroid merge launch");
  check(cudaFreeAsync(scratch, st), "nearest_centroid scratch free");
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
