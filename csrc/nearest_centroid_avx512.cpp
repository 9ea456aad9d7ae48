// The AVX-512 BF16 path of the nearest-centroid lookup: a screen in bf16 (vdpbf16ps, 32
// multiply-adds per instruction, twice the fp32 FMA rate) that keeps, for every query, only the
// centroids whose exact fp32 distance could still be the minimum, then the exact distance of those
// candidates with the scan's own arithmetic (nc::exact_dist). The answer is therefore the exact
// path's, bit for bit: the screen only decides which distances are worth computing exactly.
//
// ---------------------------------------------------------------- the bound
// Notation: u = 2^-24 (fp32 unit roundoff), gamma(m) = m u / (1 - m u), D the row length, D2 = D
// rounded up to even (the zero pad adds nothing). For one query x and centroid c:
//   exact path   f = fl(fl(xn + cn) - 2 fl_dot(x, c)), xn and cn the fp32 norms the caller uses
//                (cn may even be given by the caller: it is data here, never assumed to be ||c||^2).
//   target       F = xn + cn - 2 x.c (real arithmetic on those floats). Ranking by f is ranking by
//                F up to |f - F| <= e_f = u(2 + u)(|xn| + |cn|) + (2 gamma(D) + 2u(1 + gamma(D))) X C,
//                X = ||x||, C = ||c|| (every order of an fp32 sum of D terms errs by at most
//                gamma(D) sum|terms| <= gamma(D) X C, Cauchy-Schwarz).
//   screen       both vectors are centred on one vector m (any m is valid; we take a codebook mean
//                so that X0 = ||x - m|| and C0 = ||c - m|| are small) and rounded to bf16:
//                  c' = fl(c - m) (|c' - (c - m)| <= u |c - m| per element), c~ = bf16(c'),
//                  dc = c' - c~ (exact in fp32), and the same for x. |c~_j| <= (1 + eta)|c_j - m_j|
//                with eta = 2^-8 + 2u (bf16 keeps 8 significant bits; a subnormal c'_j is flushed
//                to 0, which dc records exactly). Then, with dX = ||dx||, dC = ||dc||,
//                  (x-m).(c-m) - x~.c~ = [(x-m).(c-m) - x'.c'] + x~.dc + dx.c~ + dx.dc,
//                  |...| <= (2u + u^2) X0 C0 + ((1 + eta) X0 + dX) dC + (1 + eta) dX C0.
//                This uses the actual rounding residuals: about 0.4 2^-8 of the norms for
//                random data, against 2^-8 in the worst case, so the radius is ~2.5x tighter
//                than eta X0 C0 would be. Products of two bf16 are exact in fp32, and vdpbf16ps
//                adds them into 16 fp32 lanes (one centroid per lane, D2 additions deep):
//                  |dot~ - x~.c~| <= gamma(D2 + 2) (1 + eta)^2 X0 C0 + abs,
//                abs covering vdpbf16ps' flushing of subnormal products and sums (< 2^-126 each,
//                at most 2 D2 of them; charged as 2^-118 (2 D2 + sqrt(D2)(X0 + C0))).
//                With h = fl(cn - 2 fl_dot(m, c)) per centroid, the screen value is
//                  t = fl(h - 2 dot~) = F - xn + 2 (x - m).m + error      (x.c = (x-m).(c-m) + (x-m).m + m.c)
//                so t ranks centroids like F up to a per-query constant, with
//                  |t - (F + const)| <= 2 (dot~ error) + |h error| + u |t|.
//   decision     with R(k) >= |t_k - (F_k + const)| + e_f(k), the exact winner k* (f(k*) <= f(j)
//                for all j) satisfies t_k* - R(k*) <= t_j + R(j) for every j: every centroid whose
//                lower bound t - R exceeds the smallest upper bound t + R seen so far can be
//                dropped, and nothing else is. Exact ties have equal t and R, so all tied copies
//                survive and the exact pass picks the lowest index, as the exact scan does.
//   evaluation   R is charged per pair as  rad = A_i dC_k + B_i C0_k + q_k + p_i  (fp32, rounded
//                up), with
//                  A_i = 2 ((1 + eta) X0_i + dX_i),
//                  B_i = 2 (1 + eta) dX_i + b1 X0_i,
//                        b1 = 2 gamma(D2+2)(1+eta)^2 + 4u + 2u^2 + 6u (1+eta)^2 (1 + gamma(D2+2)),
//                  q_k = c1 M C_k + 6u |cn_k| + a2/2 C_k^2 + abs_k,  c1 = 2 gamma(D+2) + 8u(1 + gamma),
//                  p_i = u(2+u)(1+u) |xn_i| + a2/2 X_i^2 + abs_i,    a2 = 2 gamma(D+2) + 3u
//                (M = ||m||; X C <= (X^2 + C^2) / 2 splits the exact path's term per row and
//                centroid; the 6u terms also pay for the roundings of h, t, t - rad and t + rad,
//                each at most u times a magnitude already in the sum), and the whole radius is
//                inflated by 2^-16 for the roundings of the bound itself.
//                Norm bounds come from fp32 sums of squares S: ||v|| <= sqrt((S + D 2^-126) /
//                (1 - gamma(D+2))), divided by (1 - u) for a centred vector.
//   range        a query with ||x||^2 or ||x - m||^2 not finite or above 2^120, and a task whose
//                codebook rows fail the same test, skip the screen (exact scan): below that no
//                bf16 or fp32 quantity of the screen can overflow.
// With the sizes of the benchmark (Gaussian, D = 768) the radius is about 5 against a spread of
// the distances of ~70, so one or two centroids per query survive beside the winner; a query
// whose candidate list still overflows (kCandidates) is scanned exactly.
//
// Layout: each task packs one block of centroids at a time (about kPackBytes) into panels of 16
// centroids, pair-interleaved ([pair][centroid][2] bf16: one zmm per pair), and converts its rows
// six at a time; a 6 x 4-panel register tile then needs one broadcast per row and one load per
// panel for 24 vdpbf16ps, and its results come out as one fp32 vector per 16 centroids, so the
// bound test is vectorised too. All buffers are per task and bounded, independent of N and K
// (about 150 KiB at D = 768, most of it the packed block: 64 x D x 2 bytes).
//
// Target attributes: everything from the SIMD code on is compiled under `#pragma GCC target`
// after all headers, so no inline library function is instantiated with AVX-512 (an ODR-merged
// copy could otherwise run on a CPU without it); it is reached only after screen_supported().
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "nearest_centroid_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SCRT_NO_AVX512)
#define SCRT_HAVE_AVX512_PATH 1
#include <immintrin.h>
#endif

namespace scrt {
namespace nc {

namespace {

constexpr int64_t kScreenRowBlock = 256;  // rows per task (their candidate lists live in the task)
constexpr int kCandidates = 16;           // per row and task; a fuller list falls back to exact
constexpr int64_t kPackBytes = 96 << 10;  // one packed codebook block: stays in L2
constexpr int64_t kSampleRows = 256;      // codebook rows averaged for the centre m

// 64-byte aligned scratch, zeroed. Plain malloc/free: no library template gets instantiated
// inside the AVX-512 region below.
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes) {
    const size_t size = (std::max<size_t>(bytes, 64) + 63) / 64 * 64;
    p = std::aligned_alloc(64, size);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, size);
  }
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(p); }
};

constexpr double kU = 0x1p-24;
inline double gamma(double m) { return m * kU / (1.0 - m * kU); }

// The constants of the bound for one row length (see the header comment).
struct Bound {
  double eta, gd, b1, a2, c1;
  double d2, sqrt_d2;
  explicit Bound(int64_t d) {
    eta = 0x1p-8 + 2 * kU;
    d2 = static_cast<double>(d + (d & 1));
    sqrt_d2 = std::sqrt(d2);
    const double gs = gamma(d2 + 2), e2 = (1 + eta) * (1 + eta);
    gd = gamma(static_cast<double>(d) + 2);
    b1 = 2 * gs * e2 + 4 * kU + 2 * kU * kU + 6 * kU * e2 * (1 + gs);
    a2 = 2 * gd + 3 * kU;
    c1 = 2 * gd + 8 * kU * (1 + gd);
  }
  // ||v|| from an fp32 sum of squares s of its D elements; centred: v was rounded once more.
  // Each term may lose 2^-126 to underflow (2^-149 with gradual underflow; 2^-126 also covers a
  // caller that set flush-to-zero in MXCSR).
  double norm(double s, int64_t d, bool centred) const {
    const double v = std::sqrt((s + static_cast<double>(d) * 0x1p-126) / (1 - gd)) * (1 + 0x1p-40);
    return centred ? v / (1 - kU) : v;
  }
  // The charge for vdpbf16ps' flushed subnormals (2^-118 for < 2^-126 each: ample).
  double abs_term(double centred_norm) const { return 0x1p-118 * (2 * d2 + sqrt_d2 * centred_norm); }
};

constexpr double kInflate = 1 + 0x1p-16;  // the roundings of the bound's own evaluation
constexpr double kRoundUp = 1 + 0x1p-20;  // a double rounded to the nearest float stays above it
constexpr double kMaxSq = 0x1p120;        // squared norms beyond this skip the screen

inline float up_float(double v) { return static_cast<float>(v * kRoundUp); }
inline bool in_range(double s) { return std::isfinite(s) && std::fabs(s) <= kMaxSq; }

}  // namespace

void screen_prepare(ScreenCall& call) {
  const int64_t d = call.d, k = call.k;
  const int64_t s = std::min<int64_t>(k, kSampleRows);
  std::vector<double> sum(static_cast<size_t>(d), 0.0);
  for (int64_t i = 0; i < s; ++i) {
    const float* c = call.cb + (i * k / s) * d;
    for (int64_t j = 0; j < d; ++j) sum[j] += c[j];
  }
  call.center.assign(static_cast<size_t>(d), 0.0f);
  double norm2 = 0;
  for (int64_t j = 0; j < d; ++j) {
    const float m = static_cast<float>(sum[j] / static_cast<double>(s));
    call.center[j] = std::isfinite(m) ? m : 0.0f;  // a bad row makes its task exact anyway
    norm2 += static_cast<double>(call.center[j]) * call.center[j];
  }
  if (!std::isfinite(norm2) || norm2 > kMaxSq) {  // keep M C below overflow: centre on 0 instead
    std::fill(call.center.begin(), call.center.end(), 0.0f);
    norm2 = 0;
  }
  call.center_norm = std::sqrt(norm2) * (1 + 0x1p-30);
}

int64_t screen_row_block() { return kScreenRowBlock; }

#ifndef SCRT_HAVE_AVX512_PATH

bool screen_supported() { return false; }

void screen_task(const ScreenCall& call, int64_t r0, int64_t r1, int64_t k0, int64_t k1, Best* best,
                 NearestCentroidStats* counters) {
  exact_scan(call.x, call.xn, call.cb, call.cn, r0, r1, k0, k1, call.d, best);
  if (counters) counters->rows_fallback += r1 - r0;
}

#else

bool screen_supported() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx2") &&
                         __builtin_cpu_supports("fma");
  return ok;
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")

namespace {

constexpr int kPanel = 16;    // centroids per panel: one fp32 lane each
constexpr int kTileRows = 6;  // rows x panels accumulators: 24 of the 32 zmm registers
constexpr int kTilePanels = 4;

inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? static_cast<__mmask16>(0xFFFF)
                     : static_cast<__mmask16>((1u << std::max<int64_t>(count, 0)) - 1u);
}

// 32 floats v[0, 32) (only the first `valid`, the rest read as 0) minus m, as 16 bf16 pairs.
inline __m512i centred_bf16_pairs(const float* v, const float* m, int64_t valid) {
  const __mmask16 lo = first_lanes(valid), hi = first_lanes(valid - 16);
  const __m512 a = _mm512_sub_ps(_mm512_maskz_loadu_ps(lo, v), _mm512_maskz_loadu_ps(lo, m));
  const __m512 b =
      _mm512_sub_ps(_mm512_maskz_loadu_ps(hi, v + 16), _mm512_maskz_loadu_ps(hi, m + 16));
  return (__m512i)_mm512_cvtne2ps_pbh(b, a);  // low half from a: pairs stay in element order
}

// r[i] element e -> r[e] element i, for 16 x 16 32-bit elements.
inline void transpose16(__m512i r[16]) {
  __m512i t[16], v[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // v[4i + s], 128-bit lane L: rows 4i .. 4i+3 of column 4L + s.
  for (int i = 0; i < 4; ++i) {
    v[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    v[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    v[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    v[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int s = 0; s < 4; ++s) {
    const __m512i ab_lo = _mm512_shuffle_i32x4(v[s], v[4 + s], 0x44);
    const __m512i ab_hi = _mm512_shuffle_i32x4(v[s], v[4 + s], 0xEE);
    const __m512i cd_lo = _mm512_shuffle_i32x4(v[8 + s], v[12 + s], 0x44);
    const __m512i cd_hi = _mm512_shuffle_i32x4(v[8 + s], v[12 + s], 0xEE);
    r[s] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88);
    r[4 + s] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xDD);
    r[8 + s] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88);
    r[12 + s] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xDD);
  }
}

// The bf16 rounding residual v - bf16(v) of 16 floats, exact in fp32 (same rounding as
// vcvtne2ps2bf16 in centred_bf16_pairs: both round to nearest even and flush subnormals).
inline __m512 bf16_residual(__m512 v) {
  const __m512i wide = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
  return _mm512_sub_ps(v, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
}

// fp32 sums over one row v (D elements) of v*v, o*o, m*v and r*r, with o = fl(v - m) and r its
// bf16 residual (any order: only their bounds matter).
struct RowSums {
  float vv, oo, mv, rr;
};
inline RowSums row_sums(const float* v, const float* m, int64_t d) {
  __m512 vv = _mm512_setzero_ps(), oo = vv, mv = vv, rr = vv;
  for (int64_t j = 0; j < d; j += 16) {
    const __mmask16 mask = first_lanes(d - j);
    const __m512 x = _mm512_maskz_loadu_ps(mask, v + j);
    const __m512 c = _mm512_maskz_loadu_ps(mask, m + j);
    const __m512 o = _mm512_sub_ps(x, c);
    const __m512 r = bf16_residual(o);
    vv = _mm512_fmadd_ps(x, x, vv);
    oo = _mm512_fmadd_ps(o, o, oo);
    mv = _mm512_fmadd_ps(c, x, mv);
    rr = _mm512_fmadd_ps(r, r, rr);
  }
  return RowSums{_mm512_reduce_add_ps(vv), _mm512_reduce_add_ps(oo), _mm512_reduce_add_ps(mv),
                 _mm512_reduce_add_ps(rr)};
}

// The packed block: panels of 16 centroids, [panel][pair q][centroid][2] bf16, and per centroid
// h = fl(cn - 2 m.c), upper bounds on ||c - m|| (c0) and on its bf16 residual (dc), and q_k (see
// the header comment). Centroids past the block's end are zero with h = +inf (and masked).
struct Block {
  int64_t pairs_padded;  // pairs per centroid in the buffer (a multiple of 16)
  int64_t capacity;      // centroids (a multiple of 16 * kTilePanels)
  int32_t* panels;
  float *h, *c0, *dc, *q;
};

// Packs centroids [kb, kb + count). False if one of them is outside the screen's range.
bool pack_block(const ScreenCall& call, const Bound& bd, int64_t kb, int64_t count, Block& blk) {
  const int64_t d = call.d;
  const float* m = call.center.data();
  for (int64_t j = 0; j < count; ++j) {
    const RowSums sum = row_sums(call.cb + (kb + j) * d, m, d);
    const float cn = call.cn[kb + j];
    const float h = cn - 2.0f * sum.mv;
    if (!in_range(sum.vv) || !in_range(sum.oo) || !in_range(cn) || !std::isfinite(h)) return false;
    const double c_norm = bd.norm(sum.vv, d, false), c0_norm = bd.norm(sum.oo, d, true);
    const double q = bd.c1 * call.center_norm * c_norm + 6 * kU * std::fabs(cn) +
                     0.5 * bd.a2 * c_norm * c_norm + bd.abs_term(c0_norm);
    blk.h[j] = h;
    blk.c0[j] = up_float(c0_norm);
    blk.dc[j] = up_float(bd.norm(sum.rr, d, false));
    blk.q[j] = up_float(q * kInflate);
  }
  for (int64_t j = count; j < blk.capacity; ++j) {
    blk.h[j] = std::numeric_limits<float>::infinity();
    blk.c0[j] = blk.dc[j] = blk.q[j] = 0.0f;
  }
  const int64_t panels = (count + kPanel - 1) / kPanel;
  for (int64_t p = 0; p < panels; ++p) {
    int32_t* out = blk.panels + p * blk.pairs_padded * kPanel;
    for (int64_t q0 = 0; q0 < blk.pairs_padded; q0 += 16) {
      __m512i rows[16];
      for (int l = 0; l < 16; ++l) {
        const int64_t j = p * kPanel + l;
        rows[l] = j < count ? centred_bf16_pairs(call.cb + (kb + j) * d + 2 * q0, m + 2 * q0,
                                                 d - 2 * q0)
                            : _mm512_setzero_si512();
      }
      transpose16(rows);
      for (int e = 0; e < 16; ++e) _mm512_store_si512(out + (q0 + e) * kPanel, rows[e]);
    }
  }
  // Panels past `count` up to the capacity stay zero from the allocation or an earlier block:
  // an earlier block's data there would be harmless too (h = +inf masks it), but keep it clean.
  for (int64_t p = panels; p < blk.capacity / kPanel; ++p)
    std::memset(blk.panels + p * blk.pairs_padded * kPanel, 0,
                sizeof(int32_t) * blk.pairs_padded * kPanel);
  return true;
}

// Per-row state of a task.
struct Rows {
  int64_t count;   // real rows; arrays are sized to a whole number of tiles
  float *a, *b, *p, *u;  // A_i, B_i, p_i, running smallest upper bound
  uint8_t* exact;  // 1: scan exactly (out of range, or candidate list overflowed)
  int32_t* ncand;
  int32_t* cand;   // [row][kCandidates] centroid index
  float* cand_lo;  // [row][kCandidates] its lower bound
};

// Adds the lanes of `keep` (centroids base + lane, lower bounds lo) to row i's candidates. A full
// list first drops the entries whose lower bound now exceeds `upper`; if still full, row i goes
// to the exact scan.
void push_candidates(Rows& rs, int64_t i, __mmask16 keep, int64_t base, __m512 lo, float upper) {
  alignas(64) float lov[16];
  _mm512_store_ps(lov, lo);
  int32_t* cand = rs.cand + i * kCandidates;
  float* cand_lo = rs.cand_lo + i * kCandidates;
  int32_t n = rs.ncand[i];
  for (unsigned bits = keep; bits != 0; bits &= bits - 1) {
    const int l = __builtin_ctz(bits);
    if (n == kCandidates) {
      int32_t kept = 0;
      for (int32_t e = 0; e < n; ++e)
        if (!(cand_lo[e] > upper)) {
          cand[kept] = cand[e];
          cand_lo[kept++] = cand_lo[e];
        }
      n = kept;
      if (n == kCandidates) {
        rs.exact[i] = 1;
        break;
      }
    }
    cand[n] = static_cast<int32_t>(base + l);
    cand_lo[n++] = lov[l];
  }
  rs.ncand[i] = n;
}

// acc[r][p] = <x~ row r, panel p> for 16 centroids, over `pairs` bf16 pairs.
//   xt: kTileRows rows of `xstride` int32 pairs; panel p at panel0 + p * pstride.
template <int R, int P>
inline void dot_tile(const int32_t* xt, int64_t xstride, const int32_t* panel0, int64_t pstride,
                     int64_t pairs, __m512 out[R][P]) {
  // Local accumulators, copied out once: writing through `out` in the loop made GCC store all
  // of them on every iteration.
  __m512 acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_ps();
  for (int64_t q = 0; q < pairs; ++q) {
    __m512bh b[P];
    for (int p = 0; p < P; ++p)
      b[p] = (__m512bh)_mm512_load_si512(panel0 + p * pstride + q * kPanel);
    for (int r = 0; r < R; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(xt[r * xstride + q]);
      for (int p = 0; p < P; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], a, b[p]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) out[r][p] = acc[r][p];
}

// Bound test of one tile: rows [i0, i0 + kTileRows) of the task against the block's panels
// [g, g + kTilePanels) (local centroid kl = 16 p + lane, absolute kb + kl; the block holds
// `count` real centroids: padding lanes are masked out, whatever their bounds say).
void screen_tile(Rows& rs, const Block& blk, int64_t kb, int64_t count, int64_t g, int64_t i0,
                 __m512 acc[kTileRows][kTilePanels]) {
  const __m512 minus2 = _mm512_set1_ps(-2.0f);
  for (int r = 0; r < kTileRows; ++r) {
    const int64_t i = i0 + r;
    if (rs.exact[i]) continue;
    const __m512 a = _mm512_set1_ps(rs.a[i]), b = _mm512_set1_ps(rs.b[i]);
    const __m512 pv = _mm512_set1_ps(rs.p[i]);
    __m512 upper = _mm512_set1_ps(rs.u[i]);
    for (int p = 0; p < kTilePanels; ++p) {
      const int64_t kl = (g + p) * kPanel;
      const __m512 t = _mm512_fmadd_ps(acc[r][p], minus2, _mm512_load_ps(blk.h + kl));
      const __m512 rad = _mm512_add_ps(
          _mm512_fmadd_ps(a, _mm512_load_ps(blk.dc + kl),
                          _mm512_fmadd_ps(b, _mm512_load_ps(blk.c0 + kl), _mm512_load_ps(blk.q + kl))),
          pv);
      const __m512 lo = _mm512_sub_ps(t, rad);
      // Lane-wise running minimum; min_ps returns its second operand when one is NaN.
      upper = _mm512_min_ps(_mm512_add_ps(t, rad), upper);
      const __mmask16 keep =
          _mm512_mask_cmp_ps_mask(first_lanes(count - kl), lo, upper, _CMP_LE_OQ);
      if (keep) {
        push_candidates(rs, i, keep, kb + kl, lo, _mm512_reduce_min_ps(upper));
        if (rs.exact[i]) break;
      }
    }
    rs.u[i] = _mm512_reduce_min_ps(upper);
  }
}

// Rows [r0, r1) of x, centred and rounded to bf16 pairs, into a tile of kTileRows rows (rows past
// r1 are zero).
void convert_rows(const ScreenCall& call, int64_t r0, int64_t r1, int64_t pairs_padded,
                  int32_t* xt) {
  const int64_t d = call.d;
  for (int r = 0; r < kTileRows; ++r) {
    int32_t* out = xt + r * pairs_padded;
    for (int64_t q0 = 0; q0 < pairs_padded; q0 += 16) {
      const __m512i v = r0 + r < r1 ? centred_bf16_pairs(call.x + (r0 + r) * d + 2 * q0,
                                                         call.center.data() + 2 * q0, d - 2 * q0)
                                    : _mm512_setzero_si512();
      _mm512_store_si512(out + q0, v);
    }
  }
}

}  // namespace

void screen_task(const ScreenCall& call, int64_t r0, int64_t r1, int64_t k0, int64_t k1, Best* best,
                 NearestCentroidStats* counters) {
  const int64_t d = call.d, rows = r1 - r0;
  NearestCentroidStats local;
  auto exact_all = [&] {
    for (int64_t i = 0; i < rows; ++i) best[i] = Best{0.0f, -1};
    exact_scan(call.x, call.xn, call.cb, call.cn, r0, r1, k0, k1, d, best);
    local = NearestCentroidStats{};
    local.rows_fallback = rows;
  };
  // Candidate indices are int32; D = 0 has nothing to screen.
  if (k1 > std::numeric_limits<int32_t>::max() || d < 1) {
    exact_all();
    if (counters) *counters = local;
    return;
  }
  const Bound bd(d);
  const int64_t pairs = (d + 1) / 2;
  const int64_t pairs_padded = (pairs + 15) / 16 * 16;
  const int64_t group = kPanel * kTilePanels;
  const int64_t panel_bytes = pairs_padded * kPanel * 4;
  const int64_t per_block = std::max<int64_t>(1, kPackBytes / (panel_bytes * kTilePanels));
  const int64_t capacity = std::min(per_block, ((k1 - k0) + group - 1) / group) * group;
  const int64_t rows_padded = (rows + kTileRows - 1) / kTileRows * kTileRows;

  Scratch panel_mem(capacity * pairs_padded * 4), block_mem(4 * capacity * 4);
  Scratch tile_mem(kTileRows * pairs_padded * 4);
  Scratch row_mem(rows_padded * (4 * 4 + 4 + kCandidates * 8 + 1));
  float* per_centroid = block_mem.as<float>();
  Block blk{pairs_padded, capacity, panel_mem.as<int32_t>(), per_centroid,
            per_centroid + capacity, per_centroid + 2 * capacity, per_centroid + 3 * capacity};
  Rows rs;
  rs.count = rows;
  rs.a = row_mem.as<float>();
  rs.b = rs.a + rows_padded;
  rs.p = rs.b + rows_padded;
  rs.u = rs.p + rows_padded;
  rs.ncand = reinterpret_cast<int32_t*>(rs.u + rows_padded);
  rs.cand = rs.ncand + rows_padded;
  rs.cand_lo = reinterpret_cast<float*>(rs.cand + rows_padded * kCandidates);
  rs.exact = reinterpret_cast<uint8_t*>(rs.cand_lo + rows_padded * kCandidates);

  // Rows: norms, range, and the per-row parts of the radius.
  const float* m = call.center.data();
  for (int64_t i = 0; i < rows_padded; ++i) {
    rs.u[i] = std::numeric_limits<float>::infinity();
    if (i >= rows) {
      rs.exact[i] = 1;  // padding: never screened, never confirmed
      continue;
    }
    const RowSums sum = row_sums(call.x + (r0 + i) * d, m, d);
    const float xn = call.xn[r0 + i];
    if (!in_range(xn) || !in_range(sum.oo) || !in_range(sum.vv)) {
      rs.exact[i] = 1;
      continue;
    }
    const double x_norm = bd.norm(std::max(xn, sum.vv), d, false);
    const double x0_norm = bd.norm(sum.oo, d, true), dx_norm = bd.norm(sum.rr, d, false);
    rs.a[i] = up_float(2 * ((1 + bd.eta) * x0_norm + dx_norm) * kInflate);
    rs.b[i] = up_float((2 * (1 + bd.eta) * dx_norm + bd.b1 * x0_norm) * kInflate);
    rs.p[i] = up_float((kU * (2 + kU) * (1 + kU) * std::fabs(xn) + 0.5 * bd.a2 * x_norm * x_norm +
                        bd.abs_term(x0_norm)) *
                       kInflate);
  }

  int32_t* xt = tile_mem.as<int32_t>();
  for (int64_t kb = k0; kb < k1; kb += capacity) {
    const int64_t count = std::min(capacity, k1 - kb);
    if (!pack_block(call, bd, kb, count, blk)) {
      exact_all();
      if (counters) *counters = local;
      return;
    }
    const int64_t groups = (count + group - 1) / group;
    for (int64_t i0 = 0; i0 < rows; i0 += kTileRows) {
      bool any = false;
      for (int r = 0; r < kTileRows; ++r) any = any || !rs.exact[i0 + r];
      if (!any) continue;
      convert_rows(call, r0 + i0, r1, pairs_padded, xt);
      for (int64_t g = 0; g < groups; ++g) {
        __m512 acc[kTileRows][kTilePanels];
        dot_tile<kTileRows, kTilePanels>(xt, pairs_padded,
                                         blk.panels + g * kTilePanels * pairs_padded * kPanel,
                                         pairs_padded * kPanel, pairs, acc);
        screen_tile(rs, blk, kb, count, g * kTilePanels, i0, acc);
      }
    }
  }

  // Confirm: the exact distance of every surviving candidate, or the exact scan of the row.
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t row = r0 + i;
    if (rs.exact[i]) {
      exact_scan(call.x, call.xn, call.cb, call.cn, row, row + 1, k0, k1, d, best + i);
      ++local.rows_fallback;
      continue;
    }
    ++local.rows_screened;
    const float upper = rs.u[i];
    const float* xrow = call.x + row * d;
    for (int32_t e = 0; e < rs.ncand[i]; ++e) {
      if (rs.cand_lo[i * kCandidates + e] > upper) continue;
      const int64_t kk = rs.cand[i * kCandidates + e];
      const float dist = exact_dist(xrow, call.xn[row], call.cb + kk * d, call.cn[kk], d);
      ++local.candidates;
      if (better(dist, kk, best[i])) best[i] = Best{dist, kk};
    }
  }
  if (counters) *counters = local;
}

#pragma GCC pop_options

#endif  // SCRT_HAVE_AVX512_PATH

}  // namespace nc
}  // namespace scrt
