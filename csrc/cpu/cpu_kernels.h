// Interface between the CPU ops (diag_cpu.cpp, chol_cpu.cpp, stats_cpu.cpp: plain ATen) and
// their vectorized kernels (*_cpu_kernels_impl.h), which are compiled once per instruction set
// (isa/kernels_*.cpp) into one table. Plain data only, so the per-ISA translation units need no
// dispatcher headers.
#pragma once

#include <cstdint>

#include "common/problem.h"

namespace fused_reparam {
namespace cpu {

using fused_reparam::kMaxDims;
using fused_reparam::Problem;

// Ranges handed to a kernel start at multiples of this (so each starts on a Philox group).
constexpr int64_t kRangeAlign = 512;

enum DtypeIndex { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3, kNumDtypes = 4 };

// Elements [begin, end) of the elementwise (diagonal) problem.
using RangeFn = void (*)(const Problem&, int64_t begin, int64_t end);

// Sample rows [r0, r1) of a row problem (Cholesky op, ops with VAE extras).
using RowsFn = void (*)(const Problem&, int64_t r0, int64_t r1);

// Noise buffers hold this many elements more than they are asked for: the vectorized noise
// writes whole vector steps.
constexpr int64_t kNoisePad = 256;

struct CpuKernels {
  const char* isa;
  RangeFn forward[kNumDtypes];  // diagonal op
  RangeFn backward[kNumDtypes];
  RowsFn chol_forward[kNumDtypes];  // Cholesky op
  RowsFn chol_backward[kNumDtypes];
  RowsFn diag_stats_forward[kNumDtypes];  // ops with VAE extras
  RowsFn diag_stats_backward[kNumDtypes];
  RowsFn chol_stats_forward[kNumDtypes];
  RowsFn chol_stats_backward[kNumDtypes];
};

// The table in use (the best this CPU runs unless _cpu_kernel_isa forced one).
const CpuKernels* active_cpu_kernels();

// One table per instruction set; null where that set was not compiled in.
const CpuKernels* cpu_kernels_default();
const CpuKernels* cpu_kernels_avx2();
const CpuKernels* cpu_kernels_avx512();

}  // namespace cpu
}  // namespace fused_reparam
