// The row problem of the ops with VAE extras (diag_rsample_stats, chol_rsample_stats and their
// backward ops) as plain data: rows of the sample (its batch shape, merged), D, and up to six
// operands, each with batch strides (0 = broadcast) and a stride along D. Per-row operands
// (grad_kl, grad_log_q) have D stride 0. No ATen here: the per-ISA CPU kernels take it.
// Built from tensors by common/rows_problem.h.
#pragma once

#include <cstdint>

#include "common/diag_loop.h"

namespace fused_reparam {

// Operand slots. Forward: kFirst = mu; backward: kFirst = grad_z and kMu = mu.
// kSecond is logvar (diagonal op) or scale_tril (Cholesky op).
enum RowOperand { kFirst = 0, kSecond = 1, kEps = 2, kGradKl = 3, kGradLogQ = 4, kMu = 5 };
constexpr int kRowOperands = 6;

struct RowsProblem {
  int64_t d = 0;     // event size D
  int64_t rows = 0;  // product of the batch shape
  int bdim = 0;      // batch dims (merged)
  int64_t bsizes[kMaxDims] = {};
  const void* in[kRowOperands] = {};  // null = absent
  int64_t bstrides[kRowOperands][kMaxDims] = {};
  int64_t dstride[kRowOperands] = {};  // along D (for scale_tril: along j, always 1)
  int64_t l_row_stride = 0;            // scale_tril: elements between its rows i
  // Forward: z [rows, D], kl [rows], log_q [rows]. Backward: grad_mu [rows, D],
  // grad_second ([rows, D] or [rows, D, D]), grad_eps [rows, D] or null. All contiguous.
  void* out[3] = {};
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// Element offsets of consecutive rows' operands: divisions only at the first row.
struct RowsCursor {
  int64_t idx[kMaxDims] = {};
  int64_t off[kRowOperands] = {};

  RowsCursor(const RowsProblem& p, int64_t r) {
    for (int k = p.bdim - 1; k >= 0; --k) {
      idx[k] = r % p.bsizes[k];
      r /= p.bsizes[k];
      for (int o = 0; o < kRowOperands; ++o) off[o] += idx[k] * p.bstrides[o][k];
    }
  }

  void next(const RowsProblem& p) {
    for (int k = p.bdim - 1; k >= 0; --k) {
      for (int o = 0; o < kRowOperands; ++o) off[o] += p.bstrides[o][k];
      if (++idx[k] < p.bsizes[k] || k == 0) return;
      for (int o = 0; o < kRowOperands; ++o) off[o] -= p.bsizes[k] * p.bstrides[o][k];
      idx[k] = 0;
    }
  }
};

}  // namespace fused_reparam
