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

struct DiagKernels {
  const char* isa;
  RangeFn forward[kNumDtypes];
  RangeFn backward[kNumDtypes];
};

// One table per instruction set; null where that set was not compiled in.
const DiagKernels* diag_kernels_default();
const DiagKernels* diag_kernels_avx2();
const DiagKernels* diag_kernels_avx512();

}  // namespace cpu
}  // namespace fused_reparam
