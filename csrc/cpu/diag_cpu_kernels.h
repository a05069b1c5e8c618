// Interface between the CPU op (diag_cpu.cpp, plain ATen) and the vectorized range kernels
// (diag_cpu_kernels_impl.h), which are compiled once per instruction set. Plain data only,
// so the per-ISA translation units need no dispatcher headers.
#pragma once

#include <cstdint>

#include "common/diag_loop.h"

namespace fused_reparam {
namespace cpu {

using fused_reparam::DiagLoop;
using fused_reparam::kMaxDims;

// Ranges handed to a kernel start at multiples of this (so each starts on a Philox group).
constexpr int64_t kRangeAlign = 512;

enum DtypeIndex { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3, kNumDtypes = 4 };

using RangeFn = void (*)(const DiagLoop&, int64_t begin, int64_t end);

// float32 normals of stream elements [first, first + len) (first % 4 == 0) into buf, which
// must hold kNoisePad more floats than len rounded up to 4 (whole vector steps are written).
using NoiseFn = void (*)(float* buf, uint64_t seed, uint64_t offset, int64_t first, int64_t len);
constexpr int64_t kNoisePad = 256;

struct DiagKernels {
  const char* isa;
  RangeFn forward[kNumDtypes];
  RangeFn backward[kNumDtypes];
  NoiseFn noise_f32;  // the vectorized noise, for the other CPU ops (Cholesky)
};

// The table in use (the best this CPU runs unless _cpu_kernel_isa forced one).
const DiagKernels* active_cpu_kernels();

// One table per instruction set; null where that set was not compiled in.
const DiagKernels* diag_kernels_default();
const DiagKernels* diag_kernels_avx2();
const DiagKernels* diag_kernels_avx512();

}  // namespace cpu
}  // namespace fused_reparam
