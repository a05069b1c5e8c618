// CPU kernels of the diagonal op: argument checks, the stream draw, and a parallel loop over
// aligned ranges that calls the vectorized range kernel of the best instruction set.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/library.h>

#include <atomic>
#include <limits>
#include <string>

#include "common/diag_checks.h"
#include "common/problem_builder.h"
#include "cpu/cpu_kernels.h"
#include "cpu/huge_pages.h"
#include "cpu/dtype_index.h"
#include "cpu/stream_cpu.h"

namespace fused_reparam {
namespace cpu {
namespace {

// The widest build this CPU runs, as PyTorch itself judges it (so ATEN_CPU_CAPABILITY=avx2
// or =default in the environment narrows ours too).
const CpuKernels* best_kernels() {
  const std::string cap = at::get_cpu_capability();
  if (cap == "AVX512" && cpu_kernels_avx512() != nullptr) return cpu_kernels_avx512();
  if ((cap == "AVX512" || cap == "AVX2") && cpu_kernels_avx2() != nullptr) {
    return cpu_kernels_avx2();
  }
  return cpu_kernels_default();
}

std::atomic<const CpuKernels*>& active_kernels() {
  static std::atomic<const CpuKernels*> active{best_kernels()};
  return active;
}

// Aligned ranges: every range starts on a noise block, so results do not depend on the
// thread count. The grain keeps small tensors on one thread.
void parallel_ranges(const Problem& p, RangeFn fn) {
  constexpr int64_t kGrainBlocks = 16;  // 8192 elements
  const int64_t numel = p.numel();
  const int64_t blocks = (numel + kRangeAlign - 1) / kRangeAlign;
  at::parallel_for(0, blocks, kGrainBlocks, [&](int64_t b, int64_t e) {
    fn(p, b * kRangeAlign, std::min(e * kRangeAlign, numel));
  });
}

std::tuple<at::Tensor, at::Tensor> diag_rsample_cpu(const at::Tensor& mu,
                                                    const at::Tensor& s, int64_t scale,
                                                    const std::optional<at::Tensor>& eps,
                                                    const std::optional<at::Tensor>& seed_offset,
                                                    std::optional<at::Generator> generator,
                                                    double min_scale, int64_t noise) {
  const std::vector<int64_t> shape = check_diag_rsample_args(mu, s, eps, seed_offset);
  check_scale(scale, min_scale, "fused_reparam::diag_rsample");
  check_noise(noise, "fused_reparam::diag_rsample");
  const at::Tensor used = stream_used(eps, seed_offset, generator);
  at::Tensor z = at::empty(shape, mu.options().memory_format(at::MemoryFormat::Contiguous));
  if (z.numel() == 0) return {z, used};
  advise_huge_pages(z);

  KeepAlive keep;
  Problem p = make_elementwise_problem(shape, diag_inputs(mu, s, eps), keep);
  set_scale(p, scale, min_scale);
  p.noise = static_cast<int>(noise);
  p.out[kZ] = z.mutable_data_ptr();
  const int64_t* so = used.const_data_ptr<int64_t>();
  p.seed = as_u64(so[0]);
  p.offset = as_u64(so[1]);
  parallel_ranges(p, active_kernels().load()->forward[dtype_index(mu.scalar_type())]);
  return {z, used};
}

std::tuple<at::Tensor, at::Tensor> diag_rsample_backward_cpu(
    const at::Tensor& grad_z, const at::Tensor& s, const std::optional<at::Tensor>& eps,
    const at::Tensor& seed_offset, bool need_grad_eps, int64_t scale, double min_scale,
    int64_t noise) {
  check_diag_backward_args(grad_z, s, eps, seed_offset, need_grad_eps);
  check_scale(scale, min_scale, "fused_reparam::diag_rsample_backward");
  check_noise(noise, "fused_reparam::diag_rsample_backward");
  const auto opts = grad_z.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor grad_s = at::empty(grad_z.sizes(), opts);
  at::Tensor grad_eps = need_grad_eps ? at::empty(grad_z.sizes(), opts) : at::empty({0}, opts);
  if (grad_z.numel() == 0) return {grad_s, grad_eps};
  advise_huge_pages(grad_s);
  if (need_grad_eps) advise_huge_pages(grad_eps);

  KeepAlive keep;
  Problem p = make_elementwise_problem(grad_z.sizes(), diag_inputs(grad_z, s, eps), keep);
  set_scale(p, scale, min_scale);
  p.noise = static_cast<int>(noise);
  p.out[kGradSecond] = grad_s.mutable_data_ptr();
  p.out[kGradEps] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  if (!eps.has_value()) {
    std::tie(p.seed, p.offset) = read_seed_offset(seed_offset);
  }
  parallel_ranges(p, active_kernels().load()->backward[dtype_index(grad_z.scalar_type())]);
  return {grad_s, grad_eps};
}

}  // namespace

const CpuKernels* active_cpu_kernels() { return active_kernels().load(); }

// Not in the anonymous namespace: the CompositeExplicitAutograd registration in ops.cpp's
// library needs only the op; this is registered below.
std::string cpu_kernel_isa(c10::string_view force) {
  if (!force.empty()) {
    const CpuKernels* k = nullptr;
    if (force == "default") k = cpu_kernels_default();
    if (force == "avx2") k = cpu_kernels_avx2();
    if (force == "avx512") k = cpu_kernels_avx512();
    if (force == "best") k = best_kernels();
    TORCH_CHECK(force == "default" || force == "avx2" || force == "avx512" || force == "best",
                "fused_reparam::_cpu_kernel_isa: unknown build '", force,
                "'; expected default, avx2, avx512 or best");
    TORCH_CHECK(k != nullptr, "fused_reparam::_cpu_kernel_isa: the ", force,
                " build was not compiled into this library");
    const CpuKernels* best = best_kernels();
    const int rank_k = k == cpu_kernels_default() ? 0 : (k == cpu_kernels_avx2() ? 1 : 2);
    const int rank_best =
        best == cpu_kernels_default() ? 0 : (best == cpu_kernels_avx2() ? 1 : 2);
    TORCH_CHECK(rank_k <= rank_best, "fused_reparam::_cpu_kernel_isa: this CPU does not support ",
                force, " (best available: ", best->isa, ")");
    active_kernels().store(k);
  }
  return active_kernels().load()->isa;
}

}  // namespace cpu
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CPU, m) {
  m.impl("diag_rsample", &fused_reparam::cpu::diag_rsample_cpu);
  m.impl("diag_rsample_backward", &fused_reparam::cpu::diag_rsample_backward_cpu);
}

TORCH_LIBRARY_IMPL(fused_reparam, CompositeExplicitAutograd, m) {
  m.impl("_cpu_kernel_isa", &fused_reparam::cpu::cpu_kernel_isa);
}
