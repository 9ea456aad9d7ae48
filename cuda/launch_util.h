// Host-side helpers shared by the CUDA launchers (cuda/*.cu): error checks and the device guard.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace scrt::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

inline void require(bool ok, const char* message) {
  if (!ok) throw std::invalid_argument(message);
}

// Makes `device` current for one launch and restores the caller's device (torch tracks its own
// notion of the current device and must not see it change under it).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device) {
      check(cudaSetDevice(device), "cudaSetDevice");
      changed_ = true;
    }
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

}  // namespace scrt::cuda
