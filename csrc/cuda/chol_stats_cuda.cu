// The Cholesky op with the VAE extras on CUDA (chol_rsample_stats and its backward): the same
// checks and row problem as the CPU op (common/rows_problem.h), handed to the Cholesky op's
// kernels (chol_cuda.cu) with the extras switched on: one launch each way, the same noise, RNG
// and tile/row structure (see that file).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <optional>
#include <tuple>
#include <vector>

#include "common/chol_problem.h"
#include "common/diag_checks.h"
#include "common/rows_problem.h"
#include "cuda/rows_cuda.cuh"
#include "cuda/stream_cuda.cuh"

namespace fused_reparam {
namespace cuda {
namespace {

using Out3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Out4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The row problem of (first, L, eps[, grad_kl, grad_log_q, mu]) over `shape` as the Cholesky
// kernels take it: first, L and eps in a CholProblem and the extras' inputs beside it, over the
// same merged batch dims. The kernels read [..., D] operands with unit stride along D, so any
// that lacks it is copied first (its own storage, never a broadcast). `keep` holds the views.
void make_problem(at::IntArrayRef shape, const at::Tensor& first, const at::Tensor& l,
                  const std::optional<at::Tensor>& eps, const at::Tensor* grad_kl,
                  const at::Tensor* grad_log_q, const at::Tensor* mu,
                  std::array<at::Tensor, kRowOperands>& keep, CholProblem& p, CholStats& x) {
  const at::Tensor first_u = unit_last_stride(first);
  const at::Tensor eps_u = eps.has_value() ? unit_last_stride(*eps) : at::Tensor();
  const at::Tensor mu_u = mu != nullptr ? unit_last_stride(*mu) : at::Tensor();
  auto elem = [](const at::Tensor& t) {
    return RowInput{t.defined() ? &t : nullptr, RowKind::kElement};
  };
  const RowsProblem r = make_rows_problem(
      shape,
      {elem(first_u), RowInput{&l, RowKind::kTril}, elem(eps_u), RowInput{grad_kl, RowKind::kRow},
       RowInput{grad_log_q, RowKind::kRow}, elem(mu_u)},
      keep);
  p.d = r.d;
  p.rows = r.rows;
  p.bdim = r.bdim;
  p.l_row_stride = r.l_row_stride;
  std::copy(r.bsizes, r.bsizes + kMaxDims, p.bsizes);
  constexpr int kCholOps[3] = {kFirst, kSecond, kEps};
  constexpr int kExtraOps[3] = {kMu, kGradKl, kGradLogQ};
  for (int k = 0; k < 3; ++k) {
    p.in[k] = r.in[kCholOps[k]];
    std::copy(r.bstrides[kCholOps[k]], r.bstrides[kCholOps[k]] + kMaxDims, p.bstrides[k]);
    x.in[k] = r.in[kExtraOps[k]];
    std::copy(r.bstrides[kExtraOps[k]], r.bstrides[kExtraOps[k]] + kMaxDims, x.bstrides[k]);
  }
}

Out4 chol_rsample_stats_cuda(const at::Tensor& mu, const at::Tensor& scale_tril,
                             const std::optional<at::Tensor>& eps,
                             const std::optional<at::Tensor>& seed_offset,
                             std::optional<at::Generator> generator) {
  constexpr const char* op = "fused_reparam::chol_rsample_stats";
  const std::vector<int64_t> shape =
      check_chol_rsample_args(op, mu, scale_tril, eps, seed_offset);
  const c10::cuda::CUDAGuard guard(mu.device());
  const StatsForwardOutputs out =
      stats_forward_outputs(shape, mu.options().memory_format(at::MemoryFormat::Contiguous));

  at::Tensor used, so_in;
  const StreamSource src =
      recorded_stream_source(eps.has_value(), seed_offset, generator, mu, used, so_in);
  // An empty sample still launches (one block, no rows) so that `used` is written.
  CholProblem p;
  CholStats x;
  std::array<at::Tensor, kRowOperands> keep;
  if (out.z.numel() != 0) {
    make_problem(shape, mu, scale_tril, eps, nullptr, nullptr, nullptr, keep, p, x);
    p.out[0] = out.z.mutable_data_ptr();
    x.out[0] = out.kl.mutable_data_ptr();
    x.out[1] = out.log_q.mutable_data_ptr();
  }
  launch_chol_forward(p, &x, mu.scalar_type(), src);
  return {out.z, out.kl, out.log_q, used};
}

Out3 chol_rsample_stats_backward_cuda(const at::Tensor& grad_z, const at::Tensor& grad_kl,
                                      const at::Tensor& grad_log_q, const at::Tensor& mu,
                                      const at::Tensor& scale_tril,
                                      const std::optional<at::Tensor>& eps,
                                      const at::Tensor& seed_offset, bool need_grad_eps) {
  constexpr const char* op = "fused_reparam::chol_rsample_stats_backward";
  const std::vector<int64_t> shape =
      check_chol_backward_args(op, grad_z, scale_tril, eps, seed_offset, need_grad_eps);
  check_row_grads(op, grad_z, grad_kl, grad_log_q, mu);
  // The kernels read mu with unit stride along D: a mu broadcast along D (which the CPU op
  // accepts too) is made whole first. Autograd always passes a full-D mu.
  const bool mu_full_d = mu.dim() >= 1 && mu.size(-1) == shape.back();
  const at::Tensor mu_d = mu_full_d ? mu : mu.expand(shape).contiguous();
  const c10::cuda::CUDAGuard guard(grad_z.device());
  std::vector<int64_t> l_shape = shape;
  l_shape.push_back(shape.back());
  const auto opts = grad_z.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor grad_mu = at::empty(shape, opts);
  at::Tensor grad_l = at::empty(l_shape, opts);
  at::Tensor grad_eps = need_grad_eps ? at::empty(shape, opts) : at::empty({0}, opts);
  if (grad_z.numel() == 0) return {grad_mu, grad_l, grad_eps};

  CholProblem p;
  CholStats x;
  std::array<at::Tensor, kRowOperands> keep;
  make_problem(shape, grad_z, scale_tril, eps, &grad_kl, &grad_log_q, &mu_d, keep, p, x);
  x.out[0] = grad_mu.mutable_data_ptr();
  p.out[0] = grad_l.mutable_data_ptr();
  p.out[1] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  at::Tensor so_in;
  const StreamSource src = stream_source(eps.has_value(), seed_offset, std::nullopt,
                                         grad_z.device(), so_in);
  launch_chol_backward(p, &x, grad_z.scalar_type(), src, need_grad_eps);
  return {grad_mu, grad_l, grad_eps};
}

}  // namespace
}  // namespace cuda
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CUDA, m) {
  m.impl("chol_rsample_stats", &fused_reparam::cuda::chol_rsample_stats_cuda);
  m.impl("chol_rsample_stats_backward", &fused_reparam::cuda::chol_rsample_stats_backward_cuda);
}
