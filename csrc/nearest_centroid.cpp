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
//
// Paths (chosen per call, see nearest_centroid_resolve_path): portable, AVX2 + FMA, and on CPUs with AVX-512 BF16
// a reduced-precision screen that only decides which centroids need the exact distance above
// (nearest_centroid_avx512.cpp). All three return the same bits.
#include "nearest_centroid.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "nearest_centroid_internal.h"

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

using nc::Best;
using nc::better;

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
#else
bool cpu_has_avx2_fma() { return false; }
#endif

// The exact scan on the AVX2 tile (use_avx2) or the portable loop: the same bits either way.
void scan_block(bool use_avx2, const float* x, const float* xn, const float* cb, const float* cn,
                int64_t r0, int64_t r1, int64_t k0, int64_t k1, int64_t d, Best* best) {
#ifdef SCRT_HAVE_AVX2_PATH
  if (use_avx2) return avx2::scan_block(x, xn, cb, cn, r0, r1, k0, k1, d, best);
#endif
  (void)use_avx2;
  generic::scan_block(x, xn, cb, cn, r0, r1, k0, k1, d, best);
}

float sqnorm(bool use_avx2, const float* v, int64_t d) {
#ifdef SCRT_HAVE_AVX2_PATH
  if (use_avx2) return avx2::sqnorm(v, d);
#endif
  (void)use_avx2;
  return generic::sqnorm(v, d);
}

void sqnorms(bool use_avx2, const float* v, int64_t rows, int64_t d, float* out, int threads,
             bool parallel) {
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (int64_t i = 0; i < rows; ++i) out[i] = sqnorm(use_avx2, v + i * d, d);
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

// Auto picks the screen from these sizes up. Below them the screen's fixed costs (packing each
// codebook block, converting each row tile) are not repaid by its 2x arithmetic rate: with one
// query, packing alone costs about what the exact scan does. On the 2-core EPYC, one thread,
// K = 4096, D = 192 (the shipped semantic codebook): at N = 8 the screen took 1.2x the AVX2 time,
// at N = 16 0.85x (measured on a loaded machine). Below D = 16 or K = 128 a call takes
// microseconds either way.
constexpr int64_t kScreenMinRows = 16;
constexpr int64_t kScreenMinCentroids = 128;
constexpr int64_t kScreenMinDim = 16;

// The rows x centroids task grid: row blocks of `row_block` rows, the codebook split into
// `chunks` chunks of `chunk` centroids (a multiple of `align`) only as far as needed to give every
// thread kTasksPerThread tasks (a handful of queries against a large codebook gets split most).
struct TaskGrid {
  int64_t row_block, row_blocks, chunk, chunks;
  int64_t tasks() const { return row_blocks * chunks; }
};

TaskGrid plan_tasks(int64_t n, int64_t k, int threads, bool parallel, int64_t row_block,
                    int64_t align) {
  TaskGrid g{row_block, ceil_div(n, row_block), k, 1};
  if (parallel && g.row_blocks < kTasksPerThread * threads)
    g.chunks = std::max<int64_t>(
        1, std::min(ceil_div(kTasksPerThread * threads, g.row_blocks), k / kMinChunk));
  g.chunk = ceil_div(ceil_div(k, g.chunks), align) * align;
  g.chunks = ceil_div(k, g.chunk);
  return g;
}

NearestCentroidPath path_from_env() {
  const char* env = std::getenv("SCRT_NC_PATH");
  if (env == nullptr || *env == '\0') return NearestCentroidPath::kAuto;
  try {
    return nearest_centroid_parse_path(env);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("SCRT_NC_PATH: ") + e.what());
  }
}

}  // namespace

namespace nc {

float exact_dist(const float* x, float xn, const float* c, float cn, int64_t d) {
#ifdef SCRT_HAVE_AVX2_PATH
  if (cpu_has_avx2_fma()) return avx2::pair_distance(x, xn, c, cn, d);
#endif
  return generic::pair_distance(x, xn, c, cn, d);
}

void exact_scan(const float* x, const float* xn, const float* cb, const float* cn, int64_t r0,
                int64_t r1, int64_t k0, int64_t k1, int64_t d, Best* best) {
  scan_block(cpu_has_avx2_fma(), x, xn, cb, cn, r0, r1, k0, k1, d, best);
}

}  // namespace nc

const char* nearest_centroid_path_name(NearestCentroidPath path) {
  switch (path) {
    case NearestCentroidPath::kPortable: return "portable";
    case NearestCentroidPath::kAvx2: return "avx2";
    case NearestCentroidPath::kAvx512: return "avx512";
    default: return "auto";
  }
}

NearestCentroidPath nearest_centroid_parse_path(const char* name) {
  const std::string s(name);
  for (auto p : {NearestCentroidPath::kAuto, NearestCentroidPath::kPortable,
                 NearestCentroidPath::kAvx2, NearestCentroidPath::kAvx512})
    if (s == nearest_centroid_path_name(p)) return p;
  throw std::invalid_argument("unknown nearest-centroid path '" + s +
                              "'; expected auto, portable, avx2 or avx512");
}

NearestCentroidPath nearest_centroid_resolve_path(NearestCentroidPath requested, int64_t n,
                                                  int64_t k, int64_t d) {
  NearestCentroidPath p = requested;
  if (p == NearestCentroidPath::kAuto) p = path_from_env();
  switch (p) {
    case NearestCentroidPath::kPortable: return p;
    case NearestCentroidPath::kAvx2:
      if (!cpu_has_avx2_fma())
        throw std::invalid_argument("nearest-centroid path 'avx2' needs AVX2 + FMA (CPU or build)");
      return p;
    case NearestCentroidPath::kAvx512:
      if (!nc::screen_supported())
        throw std::invalid_argument(
            "nearest-centroid path 'avx512' needs AVX-512 F/BW/VL + BF16 (CPU or build)");
      return p;
    default:
      break;
  }
  if (nc::screen_supported() && n >= kScreenMinRows && k >= kScreenMinCentroids &&
      d >= kScreenMinDim)
    return NearestCentroidPath::kAvx512;
  return cpu_has_avx2_fma() ? NearestCentroidPath::kAvx2 : NearestCentroidPath::kPortable;
}

void codebook_sqnorm_f32(const float* codebook, int64_t k, int64_t d, float* out, int num_threads) {
  sqnorms(cpu_has_avx2_fma(), codebook, k, d, out, resolve_threads(num_threads),
          k * d >= kParallelWork);
}

void nearest_centroid_f32(const float* x, const float* codebook, const float* codebook_sqnorm,
                          int64_t n, int64_t k, int64_t d, int64_t* out_index, float* out_sqdist,
                          int num_threads, NearestCentroidPath path, NearestCentroidStats* stats) {
  path = nearest_centroid_resolve_path(path, n, k, d);
  if (stats != nullptr) *stats = NearestCentroidStats{};
  if (n <= 0) return;
  const int threads = resolve_threads(num_threads);
  const bool parallel = n * k * std::max<int64_t>(d, 1) >= kParallelWork && threads > 1;
  const bool use_avx2 = path != NearestCentroidPath::kPortable;
  const bool screen = path == NearestCentroidPath::kAvx512;

  std::vector<float> cn_owned;
  const float* cn = codebook_sqnorm;
  if (cn == nullptr) {
    cn_owned.resize(k);
    sqnorms(use_avx2, codebook, k, d, cn_owned.data(), threads, parallel);
    cn = cn_owned.data();
  }
  std::vector<float> xn(n);
  sqnorms(use_avx2, x, n, d, xn.data(), threads, parallel);

  nc::ScreenCall call{x, xn.data(), codebook, cn, n, k, d, {}, 0.0};
  if (screen) nc::screen_prepare(call);
  const TaskGrid grid = screen ? plan_tasks(n, k, threads, parallel, nc::screen_row_block(), 16)
                               : plan_tasks(n, k, threads, parallel, kRowBlock, kTileCols);

  // partial[c * n + i]: best of row i within chunk c.
  std::vector<Best> partial(static_cast<size_t>(grid.chunks * n), Best{0.0f, -1});
  std::vector<NearestCentroidStats> counts(screen && stats ? grid.tasks() : 0);
  const int64_t tasks = grid.tasks();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t rb = t / grid.chunks, c = t % grid.chunks;
    const int64_t r0 = rb * grid.row_block, r1 = std::min(r0 + grid.row_block, n);
    const int64_t k0 = c * grid.chunk, k1 = std::min(k0 + grid.chunk, k);
    Best* best = partial.data() + c * n + r0;
    if (screen)
      nc::screen_task(call, r0, r1, k0, k1, best, counts.empty() ? nullptr : &counts[t]);
    else
      scan_block(use_avx2, x, xn.data(), codebook, cn, r0, r1, k0, k1, d, best);
  }
  for (const auto& s : counts) {
    stats->rows_screened += s.rows_screened;
    stats->candidates += s.candidates;
    stats->rows_fallback += s.rows_fallback;
  }

#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (int64_t i = 0; i < n; ++i) {
    Best b = partial[i];
    for (int64_t c = 1; c < grid.chunks; ++c) {
      const Best& p = partial[c * n + i];
      if (better(p.dist, p.index, b)) b = p;
    }
    out_index[i] = b.index;
    if (out_sqdist != nullptr) out_sqdist[i] = b.dist;
  }
}

}  // namespace scrt
