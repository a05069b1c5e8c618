// The Cholesky op's problem as plain data, built from tensors: rows of the sample (the batch
// shape flattened) with each operand's batch strides (0 = broadcast), D, L's row stride, and
// the stream. Every operand has unit stride along its last dim (made so by the builder, which
// copies only an operand's own storage, never a broadcast). Shared by the CPU and CUDA ops.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <vector>

#include "common/diag_checks.h"
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

// Argument checks of the Cholesky op; returns the sample shape [*batch, D].
inline std::vector<int64_t> check_chol_args(const char* op, const at::Tensor& first,
                                            const char* first_name, const at::Tensor& l,
                                            const std::optional<at::Tensor>& eps) {
  check_float_input(first, op, first_name);
  check_float_input(l, op, "scale_tril");
  check_same(first, first_name, l, "scale_tril", op);
  TORCH_CHECK(l.dim() >= 2, op, ": scale_tril must have shape [..., D, D], got ", l.sizes());
  TORCH_CHECK(l.size(-1) == l.size(-2), op, ": scale_tril must be square in its last two dims, got ",
              l.sizes());
  TORCH_CHECK(first.dim() >= 1, op, ": ", first_name, " must have shape [..., D], got a scalar");
  const int64_t d = l.size(-1);
  TORCH_CHECK(first.size(-1) == d, op, ": ", first_name, " has D = ", first.size(-1),
              " (shape ", first.sizes(), ") but scale_tril has D = ", d, " (shape ", l.sizes(),
              ")");
  const at::Tensor fb = first.select(-1, 0);
  const at::Tensor lb = l.select(-1, 0).select(-1, 0);
  std::vector<int64_t> shape = broadcast_shape(fb, first_name, lb, "scale_tril batch", op);
  shape.push_back(d);
  if (eps.has_value()) {
    check_float_input(*eps, op, "eps");
    check_same(first, first_name, *eps, "eps", op);
    TORCH_CHECK(eps->sizes() == at::IntArrayRef(shape), op, ": eps must have shape ",
                at::IntArrayRef(shape), " (the sample's shape), got ", eps->sizes());
  }
  return shape;
}

// Unit stride along the last dim, copying only when needed (and only t's own storage).
inline at::Tensor unit_last_stride(const at::Tensor& t) {
  return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous();
}

// The problem for operands first [..., D], l [..., D, D], eps [*batch, D] over `shape`.
// keep_alive holds any copies made.
inline CholProblem make_chol_problem(at::IntArrayRef shape, const at::Tensor& first,
                                     const at::Tensor& l, const std::optional<at::Tensor>& eps,
                                     std::array<at::Tensor, 3>& keep_alive) {
  CholProblem p;
  const int64_t nb = static_cast<int64_t>(shape.size()) - 1;
  p.d = shape.back();
  p.rows = c10::multiply_integers(shape.begin(), shape.end() - 1);
  keep_alive[0] = unit_last_stride(first);
  keep_alive[1] = unit_last_stride(l);
  if (l.size(-1) > 1 && keep_alive[1].stride(-2) < l.size(-1)) keep_alive[1] = l.contiguous();
  if (eps.has_value()) keep_alive[2] = unit_last_stride(*eps);
  p.l_row_stride = keep_alive[1].stride(-2);
  // Batch views broadcast to the batch shape (stride 0 along broadcast dims).
  std::vector<int64_t> bshape(shape.begin(), shape.end() - 1);
  std::array<at::Tensor, 3> views;
  views[0] = keep_alive[0].select(-1, 0).expand(bshape);
  views[1] = keep_alive[1].select(-1, 0).select(-1, 0).expand(bshape);
  if (eps.has_value()) views[2] = keep_alive[2].select(-1, 0).expand(bshape);
  // Merge batch dims where every operand is row-major across the pair.
  for (int64_t i = 0; i < nb; ++i) {
    if (bshape[i] == 1) continue;
    bool merge = p.bdim > 0;
    for (int k = 0; k < 3 && merge; ++k) {
      if (!views[k].defined()) continue;
      merge = p.bstrides[k][p.bdim - 1] == views[k].stride(i) * bshape[i];
    }
    if (merge) {
      p.bsizes[p.bdim - 1] *= bshape[i];
      for (int k = 0; k < 3; ++k) {
        if (views[k].defined()) p.bstrides[k][p.bdim - 1] = views[k].stride(i);
      }
    } else {
      TORCH_CHECK(p.bdim < kMaxDims, "fused_reparam: too many batch dims");
      p.bsizes[p.bdim] = bshape[i];
      for (int k = 0; k < 3; ++k) {
        if (views[k].defined()) p.bstrides[k][p.bdim] = views[k].stride(i);
      }
      ++p.bdim;
    }
  }
  p.in[0] = keep_alive[0].const_data_ptr();
  p.in[1] = keep_alive[1].const_data_ptr();
  p.in[2] = eps.has_value() ? keep_alive[2].const_data_ptr() : nullptr;
  return p;
}

}  // namespace fused_reparam
