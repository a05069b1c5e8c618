// Interface between the CPU op (diag_cpu.cpp, plain ATen) and the vectorized range kernels
// (diag_cpu_kernels_impl.h), which are compiled once per instruction set. Plain data only,
// so the per-ISA translation units need no dispatcher headers.
#pragma once

#include <cstdint>

namespace fused_reparam {
namespace cpu {

// Enough for any shape once adjacent dims are merged; beyond it the op makes its inputs
// contiguous (one dim).
constexpr int kMaxDims = 16;

// A row-major elementwise problem over `sizes` (dims merged where every operand allows).
// Outputs are fresh contiguous tensors, indexed by the linear element index, which is also
// the element's index in the noise stream. Inputs are strided views (stride 0 = broadcast).
struct DiagLoop {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t numel = 0;
  // forward: mu, logvar, eps-or-null; backward: grad_z, logvar, eps-or-null
  const void* in[3] = {nullptr, nullptr, nullptr};
  int64_t in_strides[3][kMaxDims] = {};
  // forward: z; backward: grad_logvar, grad_eps-or-null
  void* out[2] = {nullptr, nullptr};
  uint64_t seed = 0;
  uint64_t offset = 0;
};

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
