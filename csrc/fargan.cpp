// FARGAN streaming synthesis (see fargan.h).  The arithmetic follows the torch twin step by step;
// only the order of the sums differs (columns added one input at a time), so the two agree to
// float rounding on a frame and to the spectrum over a stream (tests/test_fargan.py).
#include "fargan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace scrt {

namespace {

constexpr int kFeatures = 20, kFrame = 160, kSubframes = 4, kSub = 40, kCond = 80;
constexpr int kPitchMax = 256, kPitchMin = 32, kSigInput = kCond + 2 * kSub + 4;
constexpr float kDeemph = 0.85f;

// (n_in, n_out) of every layer, FARGAN_LAYERS order.
constexpr int kSizes[kFarganLayers][2] = {
    {224, 12}, {32, 64},   {192, 128}, {128, 320}, {80, 1},    {328, 192}, {192, 192},
    {272, 480}, {160, 480}, {240, 384}, {128, 384}, {208, 384}, {128, 384}, {160, 160},
    {128, 128}, {128, 128}, {128, 128}, {688, 128}, {128, 40},  {192, 4}};

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// y = bias + sum_i x[i] * column_i.  Portable; the AVX2 + FMA copy below is picked at run time.
void gemv_cols_portable(const float* w, const float* b, int n_in, int n_out, const float* x, float* y) {
  std::memcpy(y, b, sizeof(float) * n_out);
  for (int i = 0; i < n_in; ++i) {
    const float xi = x[i];
    const float* col = w + static_cast<int64_t>(i) * n_out;
    for (int o = 0; o < n_out; ++o) y[o] += col[o] * xi;
  }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>
void gemv_cols_avx2(const float* w, const float* b, int n_in, int n_out, const float* x, float* y) {
  std::memcpy(y, b, sizeof(float) * n_out);
  const int n8 = n_out / 8 * 8;
  int i = 0;
  // Four columns per pass over y: a quarter of the loads and stores of y (which then stay in
  // registers for four FMAs), the weights streamed once either way.
  for (; i + 4 <= n_in; i += 4) {
    const __m256 x0 = _mm256_set1_ps(x[i]), x1 = _mm256_set1_ps(x[i + 1]);
    const __m256 x2 = _mm256_set1_ps(x[i + 2]), x3 = _mm256_set1_ps(x[i + 3]);
    const float* c0 = w + static_cast<int64_t>(i) * n_out;
    const float *c1 = c0 + n_out, *c2 = c1 + n_out, *c3 = c2 + n_out;
    for (int o = 0; o < n8; o += 8) {
      __m256 acc = _mm256_loadu_ps(y + o);
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(c0 + o), x0, acc);
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(c1 + o), x1, acc);
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(c2 + o), x2, acc);
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(c3 + o), x3, acc);
      _mm256_storeu_ps(y + o, acc);
    }
    for (int o = n8; o < n_out; ++o)
      y[o] = std::fma(c3[o], x[i + 3], std::fma(c2[o], x[i + 2], std::fma(c1[o], x[i + 1], std::fma(c0[o], x[i], y[o]))));
  }
  for (; i < n_in; ++i) {
    const __m256 xi = _mm256_set1_ps(x[i]);
    const float* col = w + static_cast<int64_t>(i) * n_out;
    for (int o = 0; o < n8; o += 8)
      _mm256_storeu_ps(y + o, _mm256_fmadd_ps(_mm256_loadu_ps(col + o), xi, _mm256_loadu_ps(y + o)));
    for (int o = n8; o < n_out; ++o) y[o] = std::fma(col[o], x[i], y[o]);
  }
}
#pragma GCC pop_options
bool have_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
#else
void gemv_cols_avx2(const float* w, const float* b, int n_in, int n_out, const float* x, float* y) {
  gemv_cols_portable(w, b, n_in, n_out, x, y);
}
bool have_avx2() { return false; }
#endif

}  // namespace

int fargan_pitch_period(float f18) {
  return static_cast<int>(std::floor(0.5 + 256.0 / std::pow(2.0, static_cast<double>(f18) + 1.5)));
}

Fargan::Fargan(std::vector<FarganLayer> layers) : layers_(std::move(layers)) {
  if (layers_.size() != kFarganLayers)
    throw std::invalid_argument("FARGAN needs " + std::to_string(kFarganLayers) + " layers, got " +
                                std::to_string(layers_.size()));
  for (int id = 0; id < kFarganLayers; ++id) {
    const FarganLayer& l = layers_[id];
    if (l.n_in != kSizes[id][0] || l.n_out != kSizes[id][1] ||
        l.w_cols.size() != static_cast<size_t>(l.n_in) * l.n_out || l.bias.size() != static_cast<size_t>(l.n_out))
      throw std::invalid_argument("FARGAN layer " + std::to_string(id) + ": expected " +
                                  std::to_string(kSizes[id][0]) + " x " + std::to_string(kSizes[id][1]));
  }
}

void Fargan::reset() { state = FarganState{}; }

void Fargan::linear(int id, const float* x, float* y) const {
  const FarganLayer& l = layers_[id];
  if (have_avx2())
    gemv_cols_avx2(l.w_cols.data(), l.bias.data(), l.n_in, l.n_out, x, y);
  else
    gemv_cols_portable(l.w_cols.data(), l.bias.data(), l.n_in, l.n_out, x, y);
}

void Fargan::cond(const float* features, int period, float* out320) {
  float in[kFeatures + 12], x64[64], window[192], x128[128];
  std::memcpy(in, features, sizeof(float) * kFeatures);
  // the pitch embedding is a table read by row: column i of the [224 -> 12] "layer" is row i
  const FarganLayer& emb = layers_[kPembed];
  const int row = std::clamp(period - kPitchMin, 0, 223);
  for (int k = 0; k < 12; ++k) in[kFeatures + k] = emb.w_cols[static_cast<int64_t>(row) * 12 + k];
  linear(kFdense1, in, x64);
  for (float& v : x64) v = std::tanh(v);
  std::memcpy(window, state.conv1.data(), sizeof(float) * 128);
  std::memcpy(window + 128, x64, sizeof(float) * 64);
  std::memcpy(state.conv1.data(), window + 64, sizeof(float) * 128);
  linear(kFconv1, window, x128);
  for (float& v : x128) v = std::tanh(v);
  linear(kFdense2, x128, out320);
  for (int i = 0; i < 320; ++i) out320[i] = std::tanh(out320[i]);
}

void Fargan::subframe(const float* cond80, int period, float* pcm40) {
  FarganState& st = state;
  float g;
  linear(kCondGain, cond80, &g);
  const float gain = std::exp(g);
  const float gain_1 = 1.f / (1e-5f + gain);

  float fwc[2 * kSigInput];  // [previous input | this input]
  float* in = fwc + kSigInput;
  std::memcpy(in, cond80, sizeof(float) * kCond);
  float* pred = in + kCond;  // 44 values
  int pos = kPitchMax - period - 2;
  for (int i = 0; i < kSub + 4; ++i) {
    pred[i] = std::min(1.f, std::max(-1.f, gain_1 * st.pitch_buf[std::max(0, pos)]));
    if (++pos == kPitchMax) pos -= period;
  }
  float* prev = pred + kSub + 4;
  for (int i = 0; i < kSub; ++i)
    prev[i] = std::max(-1.f, std::min(1.f, gain_1 * st.pitch_buf[kPitchMax - kSub + i]));
  std::memcpy(fwc, st.fwc0.data(), sizeof(float) * kSigInput);
  std::memcpy(st.fwc0.data(), in, sizeof(float) * kSigInput);

  float x[192], gate_in[192], gate[4];
  linear(kFwc0Conv, fwc, x);
  for (float& v : x) v = std::tanh(v);
  linear(kFwc0Glu, x, gate_in);
  for (int i = 0; i < 192; ++i) x[i] *= sigmoid(gate_in[i]);
  linear(kGainOut, x, gate);
  for (float& v : gate) v = sigmoid(v);

  const float* p = pred + 2;  // the 40 predicted samples
  float gru_in[272], zrh[480], rec[480], glu_gate[160];
  float g1[160], g2[128], g3[128];
  auto gru = [&](int id_in, int id_rec, float* h, int n, const float* xin) {
    linear(id_in, xin, zrh);
    linear(id_rec, h, rec);
    for (int i = 0; i < n; ++i) {
      const float z = sigmoid(zrh[i] + rec[i]);
      const float r = sigmoid(zrh[n + i] + rec[n + i]);
      const float c = std::tanh(zrh[2 * n + i] + r * rec[2 * n + i]);
      h[i] = z * h[i] + (1.f - z) * c;
    }
  };
  auto glu_out = [&](int id, const float* h, int n, float* out) {
    linear(id, h, glu_gate);
    for (int i = 0; i < n; ++i) out[i] = h[i] * sigmoid(glu_gate[i]);
  };
  auto stack = [&](const float* a, int n, float gain_k) {
    std::memcpy(gru_in, a, sizeof(float) * n);
    for (int i = 0; i < kSub; ++i) gru_in[n + i] = gain_k * p[i];
    std::memcpy(gru_in + n + kSub, prev, sizeof(float) * kSub);
  };
  stack(x, 192, gate[0]);
  gru(kGru1In, kGru1Rec, st.gru1.data(), 160, gru_in);
  glu_out(kGru1Glu, st.gru1.data(), 160, g1);
  stack(g1, 160, gate[1]);
  gru(kGru2In, kGru2Rec, st.gru2.data(), 128, gru_in);
  glu_out(kGru2Glu, st.gru2.data(), 128, g2);
  stack(g2, 128, gate[2]);
  gru(kGru3In, kGru3Rec, st.gru3.data(), 128, gru_in);
  glu_out(kGru3Glu, st.gru3.data(), 128, g3);

  float skip[688], s1[128], s2[128];
  float* s = skip;
  std::memcpy(s, g1, sizeof g1); s += 160;
  std::memcpy(s, g2, sizeof g2); s += 128;
  std::memcpy(s, g3, sizeof g3); s += 128;
  std::memcpy(s, x, sizeof x); s += 192;
  for (int i = 0; i < kSub; ++i) s[i] = gate[3] * p[i];
  std::memcpy(s + kSub, prev, sizeof(float) * kSub);
  linear(kSkipDense, skip, s1);
  for (float& v : s1) v = std::tanh(v);
  linear(kSkipGlu, s1, s2);
  for (int i = 0; i < 128; ++i) s1[i] *= sigmoid(s2[i]);
  linear(kSigOut, s1, pcm40);
  for (int i = 0; i < kSub; ++i) pcm40[i] = std::tanh(pcm40[i]) * gain;

  std::memmove(st.pitch_buf.data(), st.pitch_buf.data() + kSub, sizeof(float) * (kPitchMax - kSub));
  std::memcpy(st.pitch_buf.data() + kPitchMax - kSub, pcm40, sizeof(float) * kSub);
}

void Fargan::prime(const float* features5, const float* pcm320) {
  reset();
  float c[320];
  int period = 0;
  for (int f = 0; f < 5; ++f) {
    state.last_period = period;
    period = fargan_pitch_period(features5[f * kFeatures + 18]);
    cond(features5 + f * kFeatures, period, c);
  }
  float x0[2 * kFrame] = {0.f};
  for (int n = 1; pcm320 && n < 2 * kFrame; ++n) x0[n] = pcm320[n] - kDeemph * pcm320[n - 1];
  std::memcpy(state.pitch_buf.data() + kPitchMax - kFrame, x0, sizeof(float) * kFrame);
  float dummy[kSub];
  for (int k = 0; k < kSubframes; ++k) {
    subframe(c + k * kCond, state.last_period, dummy);
    std::memcpy(state.pitch_buf.data() + kPitchMax - kSub, x0 + kFrame + k * kSub, sizeof(float) * kSub);
  }
  state.deemph = pcm320 ? pcm320[2 * kFrame - 1] : 0.f;
}

void Fargan::synthesize(const float* features, int64_t n_frames, int64_t stride, float* pcm) {
  float c[320];
  for (int64_t f = 0; f < n_frames; ++f) {
    const float* feat = features + f * stride;
    const int period = fargan_pitch_period(feat[18]);
    cond(feat, period, c);
    for (int k = 0; k < kSubframes; ++k) {
      float* out = pcm + f * kFrame + k * kSub;
      subframe(c + k * kCond, state.last_period, out);
      for (int i = 0; i < kSub; ++i) {  // de-emphasis: y[n] = x[n] + 0.85 y[n - 1]
        out[i] += kDeemph * state.deemph;
        state.deemph = out[i];
      }
    }
    state.last_period = period;
  }
}

}  // namespace scrt
