// Checks of the Cholesky op's arguments and the builder of its plain-data problem
// (common/chol_layout.h) from tensors. The builder makes every operand's last dim unit-stride,
// copying only an operand's own storage, not a broadcast (except where interleaved broadcasts
// leave too many batch dims, make_chol_problem). Shared by the CPU and CUDA ops.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <vector>

#include "common/batch_dims.h"
#include "common/chol_layout.h"
#include "common/diag_checks.h"
#include "common/diag_loop.h"

namespace fused_reparam {

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
  // Batch shapes from sizes (a select would fail for D = 0).
  std::vector<int64_t> shape =
      broadcast_sizes(first.sizes().slice(0, first.dim() - 1), first_name,
                      l.sizes().slice(0, l.dim() - 2), "scale_tril batch", op);
  shape.push_back(d);
  if (eps.has_value()) {
    check_float_input(*eps, op, "eps");
    check_same(first, first_name, *eps, "eps", op);
    TORCH_CHECK(eps->sizes() == at::IntArrayRef(shape), op, ": eps must have shape ",
                at::IntArrayRef(shape), " (the sample's shape), got ", eps->sizes());
  }
  return shape;
}

// Argument checks of a Cholesky forward op (chol_rsample, chol_rsample_stats): the inputs,
// and seed_offset when it is used (no eps). Returns the sample shape [*batch, D].
inline std::vector<int64_t> check_chol_rsample_args(const char* op, const at::Tensor& mu,
                                                    const at::Tensor& l,
                                                    const std::optional<at::Tensor>& eps,
                                                    const std::optional<at::Tensor>& seed_offset) {
  std::vector<int64_t> shape = check_chol_args(op, mu, "mu", l, eps);
  if (seed_offset.has_value() && !eps.has_value()) check_seed_offset(*seed_offset, mu, op);
  return shape;
}

// Argument checks of the Cholesky backward op; returns grad_z's shape [*batch, D].
inline std::vector<int64_t> check_chol_backward_args(const char* op, const at::Tensor& grad_z,
                                                     const at::Tensor& l,
                                                     const std::optional<at::Tensor>& eps,
                                                     const at::Tensor& seed_offset,
                                                     bool need_grad_eps) {
  std::vector<int64_t> shape = check_chol_args(op, grad_z, "grad_z", l, eps);
  TORCH_CHECK(at::IntArrayRef(shape) == grad_z.sizes(), op, ": scale_tril (shape ", l.sizes(),
              ") must broadcast to grad_z's batch shape, grad_z has shape ", grad_z.sizes());
  TORCH_CHECK(eps.has_value() || !need_grad_eps, op, ": need_grad_eps requires an explicit eps");
  if (!eps.has_value()) check_seed_offset(seed_offset, grad_z, op);
  return shape;
}

// Unit stride along the last dim, copying only when needed (and only t's own storage).
inline at::Tensor unit_last_stride(const at::Tensor& t) {
  return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous();
}

// The problem for operands first [..., D], l [..., D, D], eps [*batch, D] over `shape`.
// keep_alive holds any copies made: of an operand whose rows are not unit-stride, and of all
// of them when interleaved broadcasts leave more than kMaxDims batch dims unmerged.
inline CholProblem make_chol_problem(at::IntArrayRef shape, const at::Tensor& first,
                                     const at::Tensor& l, const std::optional<at::Tensor>& eps,
                                     std::array<at::Tensor, 3>& keep_alive) {
  CholProblem p;
  p.d = shape.back();
  p.rows = c10::multiply_integers(shape.begin(), shape.end() - 1);
  const at::IntArrayRef bshape = shape.slice(0, shape.size() - 1);
  std::array<at::Tensor, 3> views;  // the operands over the batch shape
  for (bool dense : {false, true}) {
    keep_alive[0] = unit_last_stride(dense ? first.expand(shape).contiguous() : first);
    keep_alive[1] = dense ? l.expand(append_dim(shape, p.d)).contiguous()
                          : unit_last_stride(l);
    if (l.size(-1) > 1 && keep_alive[1].stride(-2) < l.size(-1)) {
      keep_alive[1] = keep_alive[1].contiguous();
    }
    if (eps.has_value()) keep_alive[2] = unit_last_stride(dense ? eps->contiguous() : *eps);
    p.l_row_stride = keep_alive[1].stride(-2);
    views[0] = keep_alive[0].select(-1, 0).expand(bshape);
    views[1] = keep_alive[1].select(-1, 0).select(-1, 0).expand(bshape);
    if (eps.has_value()) views[2] = keep_alive[2].select(-1, 0).expand(bshape);
    if (merge_batch_dims(bshape, views, p.bsizes, p.bstrides, p.bdim)) break;
    TORCH_CHECK(!dense, "fused_reparam: dense operands must merge their batch dims");
  }
  p.in[0] = keep_alive[0].const_data_ptr();
  p.in[1] = keep_alive[1].const_data_ptr();
  p.in[2] = eps.has_value() ? keep_alive[2].const_data_ptr() : nullptr;
  return p;
}

}  // namespace fused_reparam
