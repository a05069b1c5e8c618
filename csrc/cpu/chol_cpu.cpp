// The CPU Cholesky op z = mu + L eps: argument checks, the stream, and rows of the sample in
// parallel through the row kernels of the best instruction set (chol_cpu_kernels_impl.h,
// chol_cpu_backward_impl.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/chol_checks.h"
#include "common/problem_builder.h"
#include "cpu/cpu_kernels.h"
#include "cpu/dtype_index.h"
#include "cpu/huge_pages.h"
#include "cpu/stream_cpu.h"

namespace fused_reparam {
namespace cpu {
namespace {

constexpr const char* kFwd = "fused_reparam::chol_rsample";
constexpr const char* kBwd = "fused_reparam::chol_rsample_backward";

// Rows in parallel; the grain keeps about 16K multiply-adds per task.
void parallel_rows(const Problem& p, RowsFn fn) {
  const int64_t work = std::max<int64_t>(1, p.d * (p.d + 1) / 2);
  const int64_t grain = std::max<int64_t>(1, 16384 / work);
  at::parallel_for(0, p.rows, grain, [&](int64_t b, int64_t e) { fn(p, b, e); });
}

std::tuple<at::Tensor, at::Tensor> chol_rsample_cpu(const at::Tensor& mu,
                                                    const at::Tensor& scale_tril,
                                                    const std::optional<at::Tensor>& eps,
                                                    const std::optional<at::Tensor>& seed_offset,
                                                    std::optional<at::Generator> generator) {
  const std::vector<int64_t> shape =
      check_chol_rsample_args(kFwd, mu, scale_tril, eps, seed_offset);
  const at::Tensor used = stream_used(eps, seed_offset, generator);
  at::Tensor z = at::empty(shape, mu.options().memory_format(at::MemoryFormat::Contiguous));
  if (z.numel() == 0) return {z, used};
  advise_huge_pages(z);
  KeepAlive keep;
  Problem p = make_rows_problem(shape, chol_inputs(mu, scale_tril, eps), keep);
  p.out[kZ] = z.mutable_data_ptr();
  p.seed = as_u64(used.const_data_ptr<int64_t>()[0]);
  p.offset = as_u64(used.const_data_ptr<int64_t>()[1]);
  parallel_rows(p, active_cpu_kernels()->chol_forward[dtype_index(mu.scalar_type())]);
  return {z, used};
}

std::tuple<at::Tensor, at::Tensor> chol_rsample_backward_cpu(
    const at::Tensor& grad_z, const at::Tensor& scale_tril, const std::optional<at::Tensor>& eps,
    const at::Tensor& seed_offset, bool need_grad_eps) {
  const std::vector<int64_t> shape =
      check_chol_backward_args(kBwd, grad_z, scale_tril, eps, seed_offset, need_grad_eps);
  std::vector<int64_t> l_shape = shape;
  l_shape.push_back(shape.back());
  const auto opts = grad_z.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor grad_l = at::empty(l_shape, opts);
  at::Tensor grad_eps = need_grad_eps ? at::empty(shape, opts) : at::empty({0}, opts);
  if (grad_z.numel() == 0) return {grad_l, grad_eps};
  advise_huge_pages(grad_l);
  KeepAlive keep;
  Problem p = make_rows_problem(shape, chol_inputs(grad_z, scale_tril, eps), keep);
  p.out[kGradSecond] = grad_l.mutable_data_ptr();
  p.out[kGradEps] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  if (!eps.has_value()) {
    std::tie(p.seed, p.offset) = read_seed_offset(seed_offset);
  }
  parallel_rows(p, active_cpu_kernels()->chol_backward[dtype_index(grad_z.scalar_type())]);
  return {grad_l, grad_eps};
}

}  // namespace
}  // namespace cpu
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CPU, m) {
  m.impl("chol_rsample", &fused_reparam::cpu::chol_rsample_cpu);
  m.impl("chol_rsample_backward", &fused_reparam::cpu::chol_rsample_backward_cpu);
}
