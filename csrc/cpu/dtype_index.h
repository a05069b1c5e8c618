// The slot of a dtype in the per-ISA kernel table (cpu/cpu_kernels.h).
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include "cpu/cpu_kernels.h"

namespace fused_reparam {
namespace cpu {

inline int dtype_index(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat:
      return kFloat32;
    case c10::kDouble:
      return kFloat64;
    case c10::kHalf:
      return kFloat16;
    case c10::kBFloat16:
      return kBFloat16;
    default:
      TORCH_CHECK(false, "fused_reparam: unsupported dtype ", t);
  }
}

}  // namespace cpu
}  // namespace fused_reparam
