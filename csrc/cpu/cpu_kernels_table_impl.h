// The table of one instruction set's CPU kernels (every op), included last by isa/*.cpp.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "cpu/chol_cpu_backward_impl.h"
#include "cpu/chol_stats_cpu_kernels_impl.h"
#include "cpu/cpu_kernels.h"
#include "cpu/diag_cpu_kernels_impl.h"
#include "cpu/stats_cpu_kernels_impl.h"

namespace fused_reparam {
namespace cpu {
inline namespace CPU_CAPABILITY {

inline const CpuKernels* make_cpu_kernels(const char* isa) {
  using c10::BFloat16;
  using c10::Half;
  static const CpuKernels table = {
      isa,
      {&run_range<float, ForwardOp>, &run_range<double, ForwardOp>, &run_range<Half, ForwardOp>,
       &run_range<BFloat16, ForwardOp>},
      {&backward_range<float>, &backward_range<double>, &backward_range<Half>,
       &backward_range<BFloat16>},
      {&chol_rows::forward_rows<float>, &chol_rows::forward_rows<double>,
       &chol_rows::forward_rows<Half>, &chol_rows::forward_rows<BFloat16>},
      {&chol_rows::backward_rows<float>, &chol_rows::backward_rows<double>,
       &chol_rows::backward_rows<Half>, &chol_rows::backward_rows<BFloat16>},
      {&stats_rows::diag_forward_rows<float>, &stats_rows::diag_forward_rows<double>,
       &stats_rows::diag_forward_rows<Half>, &stats_rows::diag_forward_rows<BFloat16>},
      {&stats_rows::diag_backward_rows<float>, &stats_rows::diag_backward_rows<double>,
       &stats_rows::diag_backward_rows<Half>, &stats_rows::diag_backward_rows<BFloat16>},
      {&stats_rows::chol_forward_rows<float>, &stats_rows::chol_forward_rows<double>,
       &stats_rows::chol_forward_rows<Half>, &stats_rows::chol_forward_rows<BFloat16>},
      {&stats_rows::chol_backward_rows<float>, &stats_rows::chol_backward_rows<double>,
       &stats_rows::chol_backward_rows<Half>, &stats_rows::chol_backward_rows<BFloat16>},
  };
  return &table;
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fused_reparam
