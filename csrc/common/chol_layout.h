// The Cholesky op's problem as plain data: rows of the sample (the batch shape flattened)
// with each operand's batch strides (0 = broadcast), D, L's row stride, and the stream. Every
// operand has unit stride along its last dim. No ATen here: the per-ISA CPU kernels and the
// CUDA kernels take it by value. Built from tensors by common/chol_problem.h.
#pragma once

#include <cstdint>

#include "common/diag_loop.h"

namespace fused_reparam {

struct CholProblem {
  int64_t d = 0;     // event size D
  int64_t rows = 0;  // number of sample rows (product of the batch shape)
  int bdim = 0;      // batch dims (merged)
  int64_t bsizes[kMaxDims] = {};
  // Operands: 0 = mu (forward) or grad_z (backward), 1 = L, 2 = eps or null.
  const void* in[3] = {nullptr, nullptr, nullptr};
  int64_t bstrides[3][kMaxDims] = {};
  int64_t l_row_stride = 0;  // elements between rows of one L
  // forward: z [rows, D]; backward: grad_L [rows, D, D], grad_eps [rows, D] or null.
  void* out[2] = {nullptr, nullptr};
  uint64_t seed = 0;
  uint64_t offset = 0;

  // Element offsets of row `r`'s operands.
  FR_HOST_DEVICE void row_offsets(int64_t r, int64_t off[3]) const {
    off[0] = off[1] = off[2] = 0;
    for (int k = bdim - 1; k >= 0; --k) {
      const int64_t idx = r % bsizes[k];
      r /= bsizes[k];
      off[0] += idx * bstrides[0][k];
      off[1] += idx * bstrides[1][k];
      off[2] += idx * bstrides[2][k];
    }
  }
};

}  // namespace fused_reparam
