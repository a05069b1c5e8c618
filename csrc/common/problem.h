// The one plain-data layout of every op's work, shared by the CPU kernels (compiled per
// instruction set, no ATen) and the CUDA kernels (passed by value to a launch). A sample is
// `rows` rows of `d` elements: for the row ops (Cholesky, the ops with VAE extras) d is the
// event size D and the rows are the batch shape; for the elementwise diagonal op d is the
// innermost dim left after merging every dim the operands allow (one run for contiguous
// inputs). Operands are strided views (stride 0 = broadcast); outputs are fresh and
// contiguous. Built from tensors by common/problem_builder.h.
#pragma once

#include <cstdint>

#include "fused_reparam/macros.h"

namespace fused_reparam {

// Merged outer dims at most; beyond, the builder reads operands from dense copies.
constexpr int kMaxDims = 16;

// Operand slots. kFirst: mu (forward) or grad_z (backward); kSecond: s (the diagonal op's
// scale input) or scale_tril; kEps: eps (null: made from the stream); kGradKl, kGradLogQ: the
// stats ops' per-row gradients (stride 0 along d); kMu: mu, in the stats ops' backward.
enum Operand : int { kFirst = 0, kSecond = 1, kEps = 2, kGradKl = 3, kGradLogQ = 4, kMu = 5 };
constexpr int kOperands = 6;

// Output slots. Forward: z, and kl and log_q per row for the stats ops. Backward: grad_mu
// (stats ops only), the second input's gradient, grad_eps (null unless asked for).
enum Output : int { kZ = 0, kKl = 1, kLogQ = 2, kGradMu = 0, kGradSecond = 1, kGradEps = 2 };
constexpr int kOutputs = 3;

struct Problem {
  int64_t d = 0;     // elements per row
  int64_t rows = 0;  // product of bsizes
  int bdim = 0;      // merged outer dims (at least 1 once built)
  int64_t bsizes[kMaxDims] = {};
  const void* in[kOperands] = {};  // null = absent
  int64_t bstrides[kOperands][kMaxDims] = {};
  int64_t dstride[kOperands] = {};  // along d (scale_tril: along its rows' columns, always 1)
  int64_t l_row_stride = 0;         // scale_tril: elements between its rows i
  void* out[kOutputs] = {};
  uint64_t seed = 0;
  uint64_t offset = 0;
  // The diagonal ops' scale parametrization (fused_reparam/scale.h: scale::Kind) and the
  // lower bound added to sigma.
  int scale = 0;
  double min_scale = 0.0;
  // The diagonal op's noise kind (fused_reparam/noise.h: noise::Kind); the normal elsewhere.
  int noise = 0;
  // The diagonal stats ops' tanh squash (fused_reparam/squash.h): z is the action
  // low + (high - low) (tanh(u) + 1) / 2 and log_q its log-density.
  bool squash = false;
  double low = -1.0, high = 1.0;

  FR_ALWAYS_INLINE int64_t numel() const { return rows * d; }
};

// Index in the noise stream of element j of row r: the element's position in the sample
// (docs/design.md, "The noise contract"), whatever the operands' layout.
FR_ALWAYS_INLINE int64_t noise_index(const Problem& p, int64_t r, int64_t j) {
  return r * p.d + j;
}

// Element offsets of row r for operands [first, first + N): one merged dim (the common case)
// needs no division, more take one per dim.
template <int N>
FR_ALWAYS_INLINE void row_offsets(const Problem& p, int first, int64_t r, int64_t (&off)[N]) {
  if (p.bdim == 1) {
    for (int o = 0; o < N; ++o) off[o] = r * p.bstrides[first + o][0];
    return;
  }
  for (int o = 0; o < N; ++o) off[o] = 0;
  for (int k = p.bdim - 1; k >= 0; --k) {
    const int64_t idx = r % p.bsizes[k];
    r /= p.bsizes[k];
    for (int o = 0; o < N; ++o) off[o] += idx * p.bstrides[first + o][k];
  }
}

// Offset of operand k's element i (i = r * d + j).
FR_ALWAYS_INLINE int64_t element_offset(const Problem& p, int k, int64_t i) {
  int64_t off[1];
  row_offsets<1>(p, k, i / p.d, off);
  return off[0] + (i % p.d) * p.dstride[k];
}

// Offsets of consecutive rows for operands [0, N): divisions only at the first row.
template <int N>
struct RowCursor {
  int64_t idx[kMaxDims] = {};
  int64_t off[N] = {};

  FR_ALWAYS_INLINE RowCursor(const Problem& p, int64_t r) {
    for (int k = p.bdim - 1; k >= 0; --k) {
      idx[k] = r % p.bsizes[k];
      r /= p.bsizes[k];
      for (int o = 0; o < N; ++o) off[o] += idx[k] * p.bstrides[o][k];
    }
  }

  FR_ALWAYS_INLINE void next(const Problem& p) {
    for (int k = p.bdim - 1; k >= 0; --k) {
      for (int o = 0; o < N; ++o) off[o] += p.bstrides[o][k];
      if (++idx[k] < p.bsizes[k] || k == 0) return;
      for (int o = 0; o < N; ++o) off[o] -= p.bsizes[k] * p.bstrides[o][k];
      idx[k] = 0;
    }
  }
};

}  // namespace fused_reparam
