// Measured arithmetic peaks of this CPU, for the "% of peak" columns of examples/kernel_bench.py.
#pragma once

namespace scrt {

// GFLOP/s of `threads` OpenMP threads (<= 0: the OpenMP default) each running a register-only
// loop of independent multiply-add chains for about `seconds`:
//   "fp32"  vfmadd on the widest float vectors the CPU has (AVX-512, else AVX2 + FMA, else
//           scalar std::fma), 2 FLOP per lane;
//   "bf16"  vdpbf16ps on 512-bit vectors (32 bf16 pairs, 64 FLOP per instruction); 0 when the
//           CPU or the build has no AVX-512 BF16.
// Throws std::invalid_argument for another kind.
double peak_gflops(const char* kind, int threads, double seconds);

}  // namespace scrt
