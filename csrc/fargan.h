// FARGAN speech vocoder (Opus 1.5's pretrained model), streaming synthesis on the CPU.
//
// The C++ twin of semanticodec_rt/decoder/synthesis/fargan.py (float mode): dense float weights,
// exact tanh / sigmoid / exp, state carried across calls, any number of 10 ms frames per call.
// Shapes: features [T, 20] float32 per call; pcm [T * 160] float32 at 16 kHz.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace scrt {

// One linear layer: y = W x + b, W stored column-major ([n_in][n_out]) so that the product
// streams W once and adds whole columns (vectorises without reassociating a sum).
struct FarganLayer {
  int n_in = 0, n_out = 0;
  std::vector<float> w_cols;  // [n_in * n_out]: column i (input i) is w_cols[i * n_out ... +n_out)
  std::vector<float> bias;    // [n_out] (zeros when the layer has none)
};

// The 20 layers in the order of FARGAN_LAYERS (semanticodec_rt/decoder/synthesis/fargan.py).
enum FarganLayerId {
  kPembed, kFdense1, kFconv1, kFdense2, kCondGain, kFwc0Conv, kFwc0Glu, kGru1In, kGru1Rec, kGru2In,
  kGru2Rec, kGru3In, kGru3Rec, kGru1Glu, kGru2Glu, kGru3Glu, kSkipGlu, kSkipDense, kSigOut, kGainOut,
  kFarganLayers
};

struct FarganState {
  std::array<float, 128> conv1{};      // conditioning conv history: the last 2 frames of 64
  std::array<float, 164> fwc0{};       // the previous subframe's frame-wise conv input
  std::array<float, 160> gru1{};
  std::array<float, 128> gru2{};
  std::array<float, 128> gru3{};
  std::array<float, 256> pitch_buf{};  // past output before de-emphasis
  float deemph = 0.f;
  int last_period = 0;
};

class Fargan {
 public:
  // layers: kFarganLayers entries; throws std::invalid_argument on a size mismatch.
  explicit Fargan(std::vector<FarganLayer> layers);

  void reset();
  // Start a stream: the first 5 frames of features [5 * 20] and the 320 samples before the
  // stream (nullptr: silence).  As opus's fargan_cont.
  void prime(const float* features5, const float* pcm320);
  // Synthesise n_frames frames; features row f starts at features + f * stride (>= 20 floats).
  void synthesize(const float* features, int64_t n_frames, int64_t stride, float* pcm);

  FarganState state;

 private:
  std::vector<FarganLayer> layers_;
  void cond(const float* features, int period, float* out320);
  void subframe(const float* cond80, int period, float* pcm40);
  void linear(int id, const float* x, float* y) const;
};

int fargan_pitch_period(float f18);

}  // namespace scrt
