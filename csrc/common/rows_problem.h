// Argument checks of the ops with VAE extras and the builder of their RowsProblem
// (common/rows_layout.h) from tensors: every operand is viewed over the sample's batch shape
// (broadcast dims get stride 0, not a copy), and batch dims are merged where all allow.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <vector>

#include "common/batch_dims.h"
#include "common/chol_problem.h"
#include "common/diag_checks.h"
#include "common/rows_layout.h"

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

// How an operand maps onto the sample [*batch, D].
enum class RowKind { kElement, kRow, kTril };

struct RowInput {
  const at::Tensor* t;  // null = absent
  RowKind kind;
};

// `shape` is the sample's shape [*batch, D]; `keep_alive` holds the views (and any copies).
// Broadcasts that interleave so that more than kMaxDims batch dims stay unmerged are read from
// dense copies instead: first of the per-element and per-row operands, then of L too.
inline RowsProblem make_rows_problem(at::IntArrayRef shape,
                                     std::array<RowInput, kRowOperands> inputs,
                                     std::array<at::Tensor, kRowOperands>& keep_alive) {
  RowsProblem p;
  const int64_t nb = static_cast<int64_t>(shape.size()) - 1;
  const at::IntArrayRef batch = shape.slice(0, nb);
  p.d = shape.back();
  p.rows = c10::multiply_integers(batch);
  std::array<at::Tensor, kRowOperands> views;  // each operand over the batch shape
  for (int dense = 0;; ++dense) {
    for (int k = 0; k < kRowOperands; ++k) {
      const RowInput& in = inputs[k];
      if (in.t == nullptr) continue;
      if (in.kind == RowKind::kTril) {
        at::Tensor l = unit_last_stride(*in.t);
        if (dense >= 2) l = l.expand(append_dim(shape, p.d)).contiguous();
        if (l.size(-1) > 1 && l.stride(-2) < l.size(-1)) l = l.contiguous();
        keep_alive[k] = l;
        p.l_row_stride = l.stride(-2);
        p.dstride[k] = 1;
        views[k] = l.select(-1, 0).select(-1, 0).expand(batch);
      } else if (in.kind == RowKind::kRow) {
        keep_alive[k] = dense >= 1 ? in.t->expand(batch).contiguous() : *in.t;
        views[k] = keep_alive[k].expand(batch);
      } else {
        keep_alive[k] = dense >= 1 ? in.t->expand(shape).contiguous() : in.t->expand(shape);
        p.dstride[k] = keep_alive[k].stride(-1);
        views[k] = keep_alive[k].select(-1, 0);
      }
    }
    if (merge_batch_dims(batch, views, p.bsizes, p.bstrides, p.bdim)) break;
    TORCH_CHECK(dense < 2, "fused_reparam: dense operands must merge their batch dims");
  }
  if (p.bdim == 0) p.bsizes[p.bdim++] = 1;
  for (int k = 0; k < kRowOperands; ++k) {
    p.in[k] = views[k].defined() ? keep_alive[k].const_data_ptr() : nullptr;
  }
  return p;
}

// Argument checks of diag_rsample_stats: those of diag_rsample, and a dim for D.
inline std::vector<int64_t> check_diag_stats_args(const char* op, const at::Tensor& mu,
                                                  const at::Tensor& logvar,
                                                  const std::optional<at::Tensor>& eps,
                                                  const std::optional<at::Tensor>& seed_offset) {
  std::vector<int64_t> shape = check_diag_rsample_args(mu, logvar, eps, seed_offset, op);
  TORCH_CHECK(!shape.empty(), op, ": mu and logvar must have at least one dim (D is the last)");
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

// The rows problem of a stats forward op: mu, the second input (logvar: kElement, or L:
// kTril) and eps (absent when the stream makes it); the output pointers are set.
inline RowsProblem make_stats_forward_problem(at::IntArrayRef shape, const at::Tensor& mu,
                                              const at::Tensor& second, RowKind second_kind,
                                              const std::optional<at::Tensor>& eps,
                                              const StatsForwardOutputs& out,
                                              std::array<at::Tensor, kRowOperands>& keep) {
  RowsProblem p = make_rows_problem(
      shape,
      {RowInput{&mu, RowKind::kElement}, RowInput{&second, second_kind},
       RowInput{eps.has_value() ? &*eps : nullptr, RowKind::kElement},
       RowInput{nullptr, RowKind::kRow}, RowInput{nullptr, RowKind::kRow},
       RowInput{nullptr, RowKind::kElement}},
      keep);
  p.out[0] = out.z.mutable_data_ptr();
  p.out[1] = out.kl.mutable_data_ptr();
  p.out[2] = out.log_q.mutable_data_ptr();
  return p;
}

}  // namespace fused_reparam
