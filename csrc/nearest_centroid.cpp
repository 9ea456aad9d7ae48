// Exact fp32 nearest-centroid lookup: a fused "distance + running argmin" that never builds the
// [n, k] distance matrix. See nearest_centroid.h for the contract.
//
// Numerics. Every dot product is accumulated in kLanes interleaved partial sums (lane l takes the
// elements j = l mod kLanes) that are added in one fixed tree at the end. Tiles of different
// shapes, tails, threads and ISA clones all run exactly that sequence of IEEE operations (the
// build uses -ffp-contract=off and no fast-math, so the compiler may vectorise across lanes but
// never reassociate), so a given (row, centroid) pair always yields the same bits. That is what
// makes duplicated centroids tie exactly, and the result independent of the thread count.
#include "nearest_centroid.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

// On x86-64 GCC/Clang, compile the hot loops twice (baseline SSE2 and AVX2) and pick one at load
// time: the artefact stays portable (no -march=native) yet uses 8-wide registers where present.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(SCRT_NO_TARGET_CLONES)
#define SCRT_HOT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SCRT_HOT_CLONES
#endif
// The clones only get wide code if the helpers are inlined into them, not called as baseline code.
#if defined(__GNUC__) || defined(__clang__)
#define SCRT_INLINE inline __attribute__((always_inline))
#else
#define SCRT_INLINE inline
#endif

namespace scrt {
namespace {

constexpr int kLanes = 8;     // partial sums per dot product: one AVX register, two SSE ones
constexpr int kTileRows = 2;  // query rows per register tile: each centroid load is used twice
constexpr int kTileCols = 4;  // centroids per register tile: each query load is used 4 times
constexpr int64_t kRowBlock = 64;                 // rows per task (64 x 768 floats = 192 KiB)
constexpr int64_t kCentroidBlockBytes = 256 << 10;  // re-read by every row tile: keep in L2
constexpr int64_t kMinChunk = 256;                // fewest centroids per task when k is split

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

// out[r][c] = <xr[r], cr[c]> over d elements, in the fixed lane order described above.
template <int R, int C>
SCRT_INLINE void tile_dots(const float* const* xr, const float* const* cr, int64_t d,
                           float out[R][C]) {
  float acc[R][C][kLanes] = {};
  const int64_t d_main = d - d % kLanes;  // the d % kLanes tail elements go to lanes 0, 1, ...
  for (int64_t j = 0; j < d_main; j += kLanes) {
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) acc[r][c][l] += xr[r][j + l] * cr[c][j + l];
  }
  for (int64_t j = d_main; j < d; ++j) {
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c][j - d_main] += xr[r][j] * cr[c][j];
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r][c] = reduce_lanes(acc[r][c]);
}

inline float sqnorm(const float* v, int64_t d) {
  float out[1][1];
  tile_dots<1, 1>(&v, &v, d, out);
  return out[0][0];
}

// Rows [r, r + R) against centroids [k0, k1), updating best[0..R).
template <int R>
SCRT_INLINE void scan_rows(const float* x, const float* xn, const float* cb, const float* cn,
                           int64_t r, int64_t k0, int64_t k1, int64_t d, Best* best) {
  const float* xr[R];
  for (int i = 0; i < R; ++i) xr[i] = x + (r + i) * d;
  auto consider = [&](int i, int64_t kk, float dot) {
    // Same formula and order as ops/ref.py; 2 * dot is exact, so this is two roundings.
    const float dist = (xn[r + i] + cn[kk]) - 2.0f * dot;
    if (better(dist, kk, best[i])) best[i] = Best{dist, kk};
  };
  int64_t kk = k0;
  for (; kk + kTileCols <= k1; kk += kTileCols) {
    const float* cr[kTileCols];
    for (int c = 0; c < kTileCols; ++c) cr[c] = cb + (kk + c) * d;
    float dots[R][kTileCols];
    tile_dots<R, kTileCols>(xr, cr, d, dots);
    for (int c = 0; c < kTileCols; ++c)
      for (int i = 0; i < R; ++i) consider(i, kk + c, dots[i][c]);
  }
  for (; kk < k1; ++kk) {
    const float* cr = cb + kk * d;
    float dots[R][1];
    tile_dots<R, 1>(xr, &cr, d, dots);
    for (int i = 0; i < R; ++i) consider(i, kk, dots[i][0]);
  }
}

// One task: rows [r0, r1) x centroids [k0, k1); best[i] belongs to row r0 + i.
SCRT_HOT_CLONES
void scan_block(const float* x, const float* xn, const float* cb, const float* cn, int64_t r0,
                int64_t r1, int64_t k0, int64_t k1, int64_t d, Best* best) {
  const int64_t per_block = kCentroidBlockBytes / (std::max<int64_t>(d, 1) * 4);
  const int64_t block = std::max<int64_t>(kTileCols, per_block - per_block % kTileCols);
  for (int64_t kb = k0; kb < k1; kb += block) {
    const int64_t kb_end = std::min(kb + block, k1);
    int64_t r = r0;
    for (; r + kTileRows <= r1; r += kTileRows)
      scan_rows<kTileRows>(x, xn, cb, cn, r, kb, kb_end, d, best + (r - r0));
    for (; r < r1; ++r) scan_rows<1>(x, xn, cb, cn, r, kb, kb_end, d, best + (r - r0));
  }
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

  // Tasks are (row block, centroid chunk). Split the codebook only when there are too few row
  // blocks to occupy every thread (a handful of queries against a large codebook).
  const int64_t row_blocks = ceil_div(n, kRowBlock);
  int64_t chunks = 1;
  if (parallel && row_blocks < 2 * threads)
    chunks = std::max<int64_t>(1, std::min(ceil_div(2 * threads, row_blocks), k / kMinChunk));
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
