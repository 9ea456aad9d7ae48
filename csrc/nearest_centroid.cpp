// Exact fp32 nearest-centroid lookup: a fused "distance + running argmin" that never builds the
// [n, k] distance matrix. See nearest_centroid.h for the contract.
//
// Numerics. Every dot product is accumulated in kLanes interleaved partial sums (lane l takes the
// elements j = l mod kLanes), each a chain of fused multiply-adds (one rounding per element), and
// the lanes are added in one fixed tree at the end. FMA is correctly rounded, so the AVX2+FMA
// micro-kernel and the portable std::fma fallback produce the same bits, as do tiles of every
// shape, tails and thread counts. That is what makes duplicated centroids tie exactly and the
// result independent of the thread count and the CPU. (The build keeps -ffp-contract=off so the
// compiler never fuses or reassociates anything on its own.)
#include "nearest_centroid.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

// GCC only: the AVX2 copy of the scan is compiled under `#pragma GCC target`.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SCRT_NO_AVX2)
#define SCRT_HAVE_AVX2_PATH 1
#include <immintrin.h>
#endif

namespace scrt {
namespace {

constexpr int kLanes = 8;     // partial sums per dot product: one AVX register
#ifndef SCRT_TILE_ROWS
#define SCRT_TILE_ROWS 3
#define SCRT_TILE_COLS 4
#endif
// Register tile: rows x centroids accumulators + rows query registers + 1 centroid register must
// fit the 16 AVX2 registers; each centroid load is used kTileRows times, each query load
// kTileCols times.  3 x 4 keeps 12 independent FMA chains in flight (enough to hide the FMA
// latency); 5x2, 4x3, 2x4, 2x6, 6x2, 1x8 and a 4x2 tile reduced as one vector all measured
// within noise of it on a 2-core EPYC, and so did a GEMM-style kernel on a packed codebook
// ([panel][j][16], 6x16 outer-product tiles, L1 depth blocking) -- which also needed a K x D copy.
constexpr int kTileRows = SCRT_TILE_ROWS;
constexpr int kTileCols = SCRT_TILE_COLS;
constexpr int64_t kRowBlock = 48;  // rows per task, whole tiles (48 x 768 floats = 144 KiB)
constexpr int64_t kCentroidBlockBytes = 192 << 10;  // re-read by every row tile: keep in L2
constexpr int64_t kMinChunk = 256;  // fewest centroids per task when k is split
// Fewest tasks per thread (dynamic scheduling) before the codebook is split. 8 balanced a
// partial last row block better in theory but measured slower at N=64 and K=4096 (more partial
// minima to merge, smaller centroid chunks), so splitting stays a last resort.
constexpr int64_t kTasksPerThread = 2;

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

inline float reduce_lanes(const float* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

namespace generic {
#include "nearest_centroid_scan.inc"
}  // namespace generic

#ifdef SCRT_HAVE_AVX2_PATH
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SCRT_SCAN_AVX2
namespace avx2 {
#include "nearest_centroid_scan.inc"
}  // namespace avx2
#undef SCRT_SCAN_AVX2
#pragma GCC pop_options

bool cpu_has_avx2_fma() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
#endif

// The widest scan this CPU runs (the same bits either way).
void scan_block(const float* x, const float* xn, const float* cb, const float* cn, int64_t r0,
                int64_t r1, int64_t k0, int64_t k1, int64_t d, Best* best) {
#ifdef SCRT_HAVE_AVX2_PATH
  if (cpu_has_avx2_fma()) return avx2::scan_block(x, xn, cb, cn, r0, r1, k0, k1, d, best);
#endif
  generic::scan_block(x, xn, cb, cn, r0, r1, k0, k1, d, best);
}

float sqnorm(const float* v, int64_t d) {
#ifdef SCRT_HAVE_AVX2_PATH
  if (cpu_has_avx2_fma()) return avx2::sqnorm(v, d);
#endif
  return generic::sqnorm(v, d);
}

void sqnorms(const float* v, int64_t rows, int64_t d, float* out, int threads, bool parallel) {
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (int64_t i = 0; i < rows; ++i) out[i] = sqnorm(v + i * d, d);
}

int resolve_threads(int num_threads) {
#ifdef _OPENMP
  return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
  (void)num_threads;
  return 1;
#endif
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 1 << 16;

}  // namespace

void codebook_sqnorm_f32(const float* codebook, int64_t k, int64_t d, float* out, int num_threads) {
  sqnorms(codebook, k, d, out, resolve_threads(num_threads), k * d >= kParallelWork);
}

void nearest_centroid_f32(const float* x, const float* codebook, const float* codebook_sqnorm,
                          int64_t n, int64_t k, int64_t d, int64_t* out_index, float* out_sqdist,
                          int num_threads) {
  if (n <= 0) return;
  const int threads = resolve_threads(num_threads);
  const bool parallel = n * k * std::max<int64_t>(d, 1) >= kParallelWork && threads > 1;

  std::vector<float> cn_owned;
  const float* cn = codebook_sqnorm;
  if (cn == nullptr) {
    cn_owned.resize(k);
    sqnorms(codebook, k, d, cn_owned.data(), threads, parallel);
    cn = cn_owned.data();
  }
  std::vector<float> xn(n);
  sqnorms(x, n, d, xn.data(), threads, parallel);

  // Tasks are (row block, centroid chunk). Split the codebook only as far as needed to give every
  // thread kTasksPerThread tasks (a handful of queries against a large codebook gets split most).
  const int64_t row_blocks = ceil_div(n, kRowBlock);
  int64_t chunks = 1;
  if (parallel && row_blocks < kTasksPerThread * threads)
    chunks = std::max<int64_t>(1, std::min(ceil_div(kTasksPerThread * threads, row_blocks), k / kMinChunk));
  const int64_t chunk = ceil_div(ceil_div(k, chunks), kTileCols) * kTileCols;
  chunks = ceil_div(k, chunk);

  // partial[c * n + i]: best of row i within chunk c.
  std::vector<Best> partial(static_cast<size_t>(chunks * n), Best{0.0f, -1});
  const int64_t tasks = row_blocks * chunks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t rb = t / chunks, c = t % chunks;
    const int64_t r0 = rb * kRowBlock, r1 = std::min(r0 + kRowBlock, n);
    const int64_t k0 = c * chunk, k1 = std::min(k0 + chunk, k);
    scan_block(x, xn.data(), codebook, cn, r0, r1, k0, k1, d, partial.data() + c * n + r0);
  }

#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (int64_t i = 0; i < n; ++i) {
    Best b = partial[i];
    for (int64_t c = 1; c < chunks; ++c) {
      const Best& p = partial[c * n + i];
      if (better(p.dist, p.index, b)) b = p;
    }
    out_index[i] = b.index;
    if (out_sqdist != nullptr) out_sqdist[i] = b.dist;
  }
}

}  // namespace scrt
