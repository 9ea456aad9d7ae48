// Host-side launchers of the CUDA nearest-centroid kernels.
//
// Plain types only (no CUDA headers), so cuda/bindings.cpp compiles with the host compiler.
// Pointers are device addresses as integers (torch's Tensor.data_ptr()); `stream` is the caller's
// cudaStream_t as an integer (torch.cuda.current_stream().cuda_stream), so launches are ordered
// with the caller's work; `device` is the CUDA device index, made current for the launch and
// restored afterwards. Launches are asynchronous; errors found at launch throw
// std::runtime_error, bad arguments std::invalid_argument.
#pragma once

#include <cstdint>
#include <string>

namespace scrt::cuda {

// out[k] = ||codebook[k]||^2 in the summation order nearest_centroid uses.
//   codebook: [k, d] float32 row-major; out: [k] float32.
void codebook_sqnorm(std::uintptr_t codebook, int64_t k, int64_t d, std::uintptr_t out,
                     std::uintptr_t stream, int device);

// out_index[i] = argmin_k (||x_i||^2 + sqnorm[k]) - 2 <x_i, c_k>, out_sqdist[i] = that minimum.
//   x: [n, d] float32; codebook: [k, d] float32 (k >= 1); sqnorm: [k] float32 (required: compute
//   it with codebook_sqnorm); out_index: [n] int64; out_sqdist: [n] float32 or 0.
// Ties resolve to the lowest index; a NaN distance wins (first NaN index), as in the CPU kernel.
void nearest_centroid(std::uintptr_t x, std::uintptr_t codebook, std::uintptr_t sqnorm, int64_t n,
                      int64_t k, int64_t d, std::uintptr_t out_index, std::uintptr_t out_sqdist,
                      std::uintptr_t stream, int device);

struct DeviceStatus {
  int count;           // 0 when the query failed
  int error;           // cudaError_t of cudaGetDeviceCount (0: success)
  std::string message; // cudaGetErrorString of it
};

DeviceStatus device_status();
int runtime_version();  // cudaRuntimeGetVersion, e.g. 13000
int driver_version();   // cudaDriverGetVersion, 0 when no driver is installed

}  // namespace scrt::cuda
