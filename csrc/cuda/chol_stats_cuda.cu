// The Cholesky op with the VAE extras on CUDA (chol_rsample_stats and its backward): the same
// checks and row problem as the CPU op (common/stats_args.h), handed to the Cholesky op's
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

#include "common/chol_checks.h"
#include "common/problem_builder.h"
#include "common/stats_args.h"
#include "cuda/kernel_common.cuh"
#include "cuda/stream_cuda.cuh"

namespace fused_reparam {
namespace cuda {
namespace {

using Out3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Out4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The kernels read [..., D] operands (mu, grad_z, eps) with unit stride along D: any that
// lacks it is copied first (its own storage, never a broadcast).
constexpr RowKind kUnit = RowKind::kUnitElement;

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
  Problem p;
  KeepAlive keep;
  if (out.z.numel() != 0) {
    p = make_stats_forward_problem(shape, mu, scale_tril, RowKind::kTril, eps, out, keep, kUnit);
  }
  launch_chol_forward(p, true, mu.scalar_type(), src);
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

  KeepAlive keep;
  Problem p = make_rows_problem(shape,
                                stats_backward_inputs(grad_z, scale_tril, RowKind::kTril, eps,
                                                      grad_kl, grad_log_q, mu_d, kUnit),
                                keep);
  p.out[kGradMu] = grad_mu.mutable_data_ptr();
  p.out[kGradSecond] = grad_l.mutable_data_ptr();
  p.out[kGradEps] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  at::Tensor so_in;
  const StreamSource src = stream_source(eps.has_value(), seed_offset, std::nullopt,
                                         grad_z.device(), so_in);
  launch_chol_backward(p, true, grad_z.scalar_type(), src, need_grad_eps);
  return {grad_mu, grad_l, grad_eps};
}

}  // namespace
}  // namespace cuda
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CUDA, m) {
  m.impl("chol_rsample_stats", &fused_reparam::cuda::chol_rsample_stats_cuda);
  m.impl("chol_rsample_stats_backward", &fused_reparam::cuda::chol_rsample_stats_backward_cuda);
}
