// Argument checks of the Cholesky ops, shared by their CPU and CUDA entry points (the plain
// op and the one with VAE extras).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <vector>

#include "common/arg_checks.h"

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

}  // namespace fused_reparam
