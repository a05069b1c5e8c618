// What the ops with VAE extras share beyond the plain ops' checks (common/diag_checks.h,
// common/chol_checks.h): the checks of their per-row gradients, their outputs, and their
// forward problem.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <vector>

#include "common/arg_checks.h"
#include "common/diag_checks.h"
#include "common/problem_builder.h"

namespace fused_reparam {

// grad_kl and grad_log_q of a stats backward op: one value per sample row.
inline void check_row_grads(const char* op, const at::Tensor& grad_z, const at::Tensor& grad_kl,
                            const at::Tensor& grad_log_q, const at::Tensor& mu) {
  TORCH_CHECK(grad_z.dim() >= 1, op, ": grad_z must have at least one dim, got a scalar");
  const at::IntArrayRef batch = grad_z.sizes().slice(0, grad_z.dim() - 1);
  for (const auto& [t, name] : {std::pair{&grad_kl, "grad_kl"}, {&grad_log_q, "grad_log_q"},
                                {&mu, "mu"}}) {
    check_float_input(*t, op, name);
    check_same(grad_z, "grad_z", *t, name, op);
  }
  TORCH_CHECK(grad_kl.sizes() == batch, op, ": grad_kl must have shape ", batch,
              " (grad_z's shape without its last dim), got ", grad_kl.sizes());
  TORCH_CHECK(grad_log_q.sizes() == batch, op, ": grad_log_q must have shape ", batch,
              " (grad_z's shape without its last dim), got ", grad_log_q.sizes());
  const std::vector<int64_t> shape = broadcast_shape(grad_z, "grad_z", mu, "mu", op);
  TORCH_CHECK(at::IntArrayRef(shape) == grad_z.sizes(), op, ": mu (shape ", mu.sizes(),
              ") must broadcast to grad_z's shape ", grad_z.sizes());
}

// Argument checks of diag_rsample_stats: those of diag_rsample, and a dim for D.
inline std::vector<int64_t> check_diag_stats_args(const char* op, const at::Tensor& mu,
                                                  const at::Tensor& s,
                                                  const std::optional<at::Tensor>& eps,
                                                  const std::optional<at::Tensor>& seed_offset) {
  std::vector<int64_t> shape = check_diag_rsample_args(mu, s, eps, seed_offset, op);
  TORCH_CHECK(!shape.empty(), op, ": mu and s must have at least one dim (D is the last)");
  return shape;
}

// The outputs of a stats forward op (diag or chol) over the sample `shape` [*batch, D]: z,
// and kl and log_q per row. With D = 0 (rows but no elements) kl and log_q are set to the
// empty sums, 0, so no kernel needs to touch them.
struct StatsForwardOutputs {
  at::Tensor z, kl, log_q;
};

inline StatsForwardOutputs stats_forward_outputs(at::IntArrayRef shape,
                                                 const at::TensorOptions& opts) {
  const at::IntArrayRef batch = shape.slice(0, shape.size() - 1);
  StatsForwardOutputs o{at::empty(shape, opts), at::empty(batch, opts), at::empty(batch, opts)};
  if (o.z.numel() == 0 && o.kl.numel() != 0) {
    o.kl.zero_();
    o.log_q.zero_();
  }
  return o;
}

// The rows problem of a stats forward op: mu, the second input (s: kElement, or L:
// kTril) and eps (absent when the stream makes it); the output pointers are set. Kernels that
// read mu and eps with unit stride along D ask for kUnitElement.
inline Problem make_stats_forward_problem(at::IntArrayRef shape, const at::Tensor& mu,
                                          const at::Tensor& second, RowKind second_kind,
                                          const std::optional<at::Tensor>& eps,
                                          const StatsForwardOutputs& out, KeepAlive& keep,
                                          RowKind element_kind = RowKind::kElement) {
  ProblemInputs in;
  in[kFirst] = {&mu, element_kind};
  in[kSecond] = {&second, second_kind};
  in[kEps] = {eps.has_value() ? &*eps : nullptr, element_kind};
  Problem p = make_rows_problem(shape, in, keep);
  p.out[kZ] = out.z.mutable_data_ptr();
  p.out[kKl] = out.kl.mutable_data_ptr();
  p.out[kLogQ] = out.log_q.mutable_data_ptr();
  return p;
}

// The operands of a stats backward op. Kernels that read grad_z, eps and mu with unit stride
// along D ask for kUnitElement.
inline ProblemInputs stats_backward_inputs(const at::Tensor& grad_z, const at::Tensor& second,
                                           RowKind second_kind,
                                           const std::optional<at::Tensor>& eps,
                                           const at::Tensor& grad_kl,
                                           const at::Tensor& grad_log_q, const at::Tensor& mu,
                                           RowKind element_kind = RowKind::kElement) {
  ProblemInputs in;
  in[kFirst] = {&grad_z, element_kind};
  in[kSecond] = {&second, second_kind};
  in[kEps] = {eps.has_value() ? &*eps : nullptr, element_kind};
  in[kGradKl] = {&grad_kl, RowKind::kRow};
  in[kGradLogQ] = {&grad_log_q, RowKind::kRow};
  in[kMu] = {&mu, element_kind};
  return in;
}

}  // namespace fused_reparam
