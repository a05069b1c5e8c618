// The CPU ops with VAE extras (diag_rsample_stats, chol_rsample_stats and their backward ops):
// argument checks, the stream, and sample rows in parallel through the row kernels of the
// best instruction set (stats_cpu_kernels_impl.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/chol_checks.h"
#include "common/stats_args.h"
#include "cpu/cpu_kernels.h"
#include "cpu/dtype_index.h"
#include "cpu/huge_pages.h"
#include "cpu/stream_cpu.h"

namespace fused_reparam {
namespace cpu {
namespace {

using Out3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Out4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Rows in parallel; the grain keeps about 16K elements of work per task.
void parallel_rows(const Problem& p, int64_t work_per_row, RowsFn fn) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, work_per_row));
  at::parallel_for(0, p.rows, grain, [&](int64_t b, int64_t e) { fn(p, b, e); });
}

void set_stream(Problem& p, const at::Tensor& seed_offset) {
  std::tie(p.seed, p.offset) = read_seed_offset(seed_offset);
}

// The forward of both ops: z, kl, log_q and the stream used.
Out4 stats_forward(const std::vector<int64_t>& shape, RowKind second_kind, const at::Tensor& mu,
                   const at::Tensor& second, const std::optional<at::Tensor>& eps,
                   const std::optional<at::Tensor>& seed_offset,
                   std::optional<at::Generator> generator, bool chol, int64_t scale = 0,
                   double min_scale = 0.0, bool squash = false, double low = -1.0,
                   double high = 1.0) {
  const at::Tensor used = stream_used(eps, seed_offset, generator);
  const StatsForwardOutputs out =
      stats_forward_outputs(shape, mu.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.z.numel() == 0) return {out.z, out.kl, out.log_q, used};
  advise_huge_pages(out.z);
  KeepAlive keep;
  Problem p = make_stats_forward_problem(shape, mu, second, second_kind, eps, out, keep);
  set_scale(p, scale, min_scale);
  set_squash(p, squash, low, high);
  set_stream(p, used);
  const CpuKernels* k = active_cpu_kernels();
  const int i = dtype_index(mu.scalar_type());
  parallel_rows(p, chol ? p.d * (p.d + 1) / 2 : p.d,
                chol ? k->chol_stats_forward[i] : k->diag_stats_forward[i]);
  return {out.z, out.kl, out.log_q, used};
}

Out4 diag_rsample_stats_cpu(const at::Tensor& mu, const at::Tensor& s, int64_t scale,
                            const std::optional<at::Tensor>& eps,
                            const std::optional<at::Tensor>& seed_offset,
                            std::optional<at::Generator> generator, double min_scale,
                            bool squash, double low, double high) {
  constexpr const char* op = "fused_reparam::diag_rsample_stats";
  const std::vector<int64_t> shape = check_diag_stats_args(op, mu, s, eps, seed_offset);
  check_scale(scale, min_scale, op);
  check_squash(squash, low, high, mu.scalar_type(), op);
  return stats_forward(shape, RowKind::kElement, mu, s, eps, seed_offset, generator, false,
                       scale, min_scale, squash, low, high);
}

Out4 chol_rsample_stats_cpu(const at::Tensor& mu, const at::Tensor& scale_tril,
                            const std::optional<at::Tensor>& eps,
                            const std::optional<at::Tensor>& seed_offset,
                            std::optional<at::Generator> generator) {
  constexpr const char* op = "fused_reparam::chol_rsample_stats";
  const std::vector<int64_t> shape =
      check_chol_rsample_args(op, mu, scale_tril, eps, seed_offset);
  return stats_forward(shape, RowKind::kTril, mu, scale_tril, eps, seed_offset, generator, true);
}

// The backward of both ops: grad_mu, grad of the second input, grad_eps (or empty).
Out3 stats_backward(const at::Tensor& grad_z, const at::Tensor& grad_kl,
                    const at::Tensor& grad_log_q, const at::Tensor& mu, const at::Tensor& second,
                    const std::optional<at::Tensor>& eps, const at::Tensor& seed_offset,
                    bool need_grad_eps, bool chol, int64_t scale = 0, double min_scale = 0.0,
                    bool squash = false, double low = -1.0, double high = 1.0) {
  const std::vector<int64_t> shape(grad_z.sizes().begin(), grad_z.sizes().end());
  std::vector<int64_t> second_shape = shape;
  if (chol) second_shape.push_back(shape.back());
  const auto opts = grad_z.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor g_mu = at::empty(shape, opts);
  at::Tensor g_second = at::empty(second_shape, opts);
  at::Tensor g_eps = need_grad_eps ? at::empty(shape, opts) : at::empty({0}, opts);
  if (grad_z.numel() == 0) return {g_mu, g_second, g_eps};
  advise_huge_pages(g_second);
  KeepAlive keep;
  Problem p = make_rows_problem(
      shape,
      stats_backward_inputs(grad_z, second, chol ? RowKind::kTril : RowKind::kElement, eps,
                            grad_kl, grad_log_q, mu),
      keep);
  set_scale(p, scale, min_scale);
  set_squash(p, squash, low, high);
  p.out[kGradMu] = g_mu.mutable_data_ptr();
  p.out[kGradSecond] = g_second.mutable_data_ptr();
  p.out[kGradEps] = need_grad_eps ? g_eps.mutable_data_ptr() : nullptr;
  if (!eps.has_value()) set_stream(p, seed_offset);
  const CpuKernels* k = active_cpu_kernels();
  const int i = dtype_index(grad_z.scalar_type());
  parallel_rows(p, chol ? p.d * p.d : p.d,
                chol ? k->chol_stats_backward[i] : k->diag_stats_backward[i]);
  return {g_mu, g_second, g_eps};
}

Out3 diag_rsample_stats_backward_cpu(const at::Tensor& grad_z, const at::Tensor& grad_kl,
                                     const at::Tensor& grad_log_q, const at::Tensor& mu,
                                     const at::Tensor& s, const std::optional<at::Tensor>& eps,
                                     const at::Tensor& seed_offset, bool need_grad_eps,
                                     int64_t scale, double min_scale, bool squash, double low,
                                     double high) {
  constexpr const char* op = "fused_reparam::diag_rsample_stats_backward";
  check_diag_backward_args(grad_z, s, eps, seed_offset, need_grad_eps, op);
  check_row_grads(op, grad_z, grad_kl, grad_log_q, mu);
  check_scale(scale, min_scale, op);
  check_squash(squash, low, high, grad_z.scalar_type(), op);
  return stats_backward(grad_z, grad_kl, grad_log_q, mu, s, eps, seed_offset, need_grad_eps,
                        false, scale, min_scale, squash, low, high);
}

Out3 chol_rsample_stats_backward_cpu(const at::Tensor& grad_z, const at::Tensor& grad_kl,
                                     const at::Tensor& grad_log_q, const at::Tensor& mu,
                                     const at::Tensor& scale_tril,
                                     const std::optional<at::Tensor>& eps,
                                     const at::Tensor& seed_offset, bool need_grad_eps) {
  constexpr const char* op = "fused_reparam::chol_rsample_stats_backward";
  check_chol_backward_args(op, grad_z, scale_tril, eps, seed_offset, need_grad_eps);
  check_row_grads(op, grad_z, grad_kl, grad_log_q, mu);
  return stats_backward(grad_z, grad_kl, grad_log_q, mu, scale_tril, eps, seed_offset,
                        need_grad_eps, true);
}

}  // namespace
}  // namespace cpu
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CPU, m) {
  m.impl("diag_rsample_stats", &fused_reparam::cpu::diag_rsample_stats_cpu);
  m.impl("diag_rsample_stats_backward", &fused_reparam::cpu::diag_rsample_stats_backward_cpu);
  m.impl("chol_rsample_stats", &fused_reparam::cpu::chol_rsample_stats_cpu);
  m.impl("chol_rsample_stats_backward", &fused_reparam::cpu::chol_rsample_stats_backward_cpu);
}
