// CUDA kernels of the Cholesky op z = mu + L eps: one launch forward, one backward.
//
// Small D (<= 64): chol_small_kernels.cuh. Large D: chol_large_kernels.cuh.
//
// Noise is indexed by the element of the sample, never by thread or block. RNG is handled as
// in diag_cuda.cu: the forward reserves a Philox offset under the generator's mutex and
// unpacks it in the kernel (graph-safe); thread 0 of block 0 writes the [seed, offset] used.
// Only the lower triangle of L is read. Grid-stride loops over work units, int64 offsets.
//
// The VAE extras (chol_rsample_stats and its backward, entry points in chol_stats_cuda.cu)
// run through the same kernels with kStats. Forward: the dot product's loop also sums
// L[i, j]^2; small D, each output's terms go to shared memory and a group of lanes per row sums
// them; large D, a block takes a whole row (its slices in turn) and sums them at the end.
// Backward: grad_L and grad_eps get their extra terms where they are written, and grad_mu is
// written beside grad_z's read.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/PhiloxUtils.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <type_traits>

#include "common/chol_checks.h"
#include "common/problem.h"
#include "common/problem_builder.h"
#include "cuda/chol_large_kernels.cuh"
#include "cuda/chol_small_kernels.cuh"
#include "cuda/kernel_common.cuh"
#include "cuda/stream_cuda.cuh"

namespace fused_reparam {
namespace cuda {
namespace {

constexpr const char* kFwd = "fused_reparam::chol_rsample";
constexpr const char* kBwd = "fused_reparam::chol_rsample_backward";

// ---- host --------------------------------------------------------------------------------

int small_tile_rows(int64_t d) {
  return static_cast<int>(min64(kMaxTileRows, std::max<int64_t>(1, kTileElems / d)));
}

template <class T, bool kStats>
void launch_forward_as(const Problem& p, const StreamSource& src) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (p.d <= kSmallMaxD) {
    // G lanes per output: a row of L takes at most about 8 steps of G columns.
    const int tile_rows = p.d == 0 ? 1 : small_tile_rows(p.d);
    const int log_g = ceil_log2((p.d + 7) / 8);
    const int64_t tiles = (p.rows + tile_rows - 1) / tile_rows;
    chol_fwd_small_kernel<T, kStats>
        <<<grid_for(tiles), kThreads, 0, stream>>>(p, src, tile_rows, log_g);
  } else {
    const int64_t per_row = (p.d + kFwdUnitOuts - 1) / kFwdUnitOuts;
    const int64_t units = kStats ? p.rows : p.rows * per_row;
    chol_fwd_large_kernel<T, kStats><<<grid_for(units), kThreads, 0, stream>>>(p, src);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class T, bool kStats>
void launch_backward_as(const Problem& p, const StreamSource& src,
                        bool need_grad_eps) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (p.d <= kSmallMaxD) {
    // w lanes (the power of two >= D, at most 32) write one row of grad_L.
    const int tile_rows = small_tile_rows(p.d);
    const int log_w = std::min(5, ceil_log2(p.d));
    const int64_t tiles = (p.rows + tile_rows - 1) / tile_rows;
    chol_bwd_small_kernel<T, kStats><<<grid_for(tiles), kThreads, 0, stream>>>(
        p, src, tile_rows, log_w, need_grad_eps);
  } else {
    const int64_t units = p.rows * ((p.d + kBwdUnitCols - 1) / kBwdUnitCols);
    chol_bwd_large_kernel<T, kStats>
        <<<grid_for(units), kThreads, 0, stream>>>(p, src, need_grad_eps);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> chol_rsample_cuda(const at::Tensor& mu,
                                                     const at::Tensor& scale_tril,
                                                     const std::optional<at::Tensor>& eps,
                                                     const std::optional<at::Tensor>& seed_offset,
                                                     std::optional<at::Generator> generator) {
  const std::vector<int64_t> shape =
      check_chol_rsample_args(kFwd, mu, scale_tril, eps, seed_offset);
  const c10::cuda::CUDAGuard guard(mu.device());
  at::Tensor z = at::empty(shape, mu.options().memory_format(at::MemoryFormat::Contiguous));

  at::Tensor used, so_in;
  const StreamSource src =
      recorded_stream_source(eps.has_value(), seed_offset, generator, mu, used, so_in);
  // An empty sample still launches (one block) so that `used` is written on the device.
  Problem p;
  KeepAlive keep;
  if (z.numel() != 0) {
    p = make_rows_problem(shape, chol_inputs(mu, scale_tril, eps), keep);
    p.out[kZ] = z.mutable_data_ptr();
  }
  launch_chol_forward(p, false, mu.scalar_type(), src);
  return {z, used};
}

std::tuple<at::Tensor, at::Tensor> chol_rsample_backward_cuda(
    const at::Tensor& grad_z, const at::Tensor& scale_tril, const std::optional<at::Tensor>& eps,
    const at::Tensor& seed_offset, bool need_grad_eps) {
  const std::vector<int64_t> shape =
      check_chol_backward_args(kBwd, grad_z, scale_tril, eps, seed_offset, need_grad_eps);
  const c10::cuda::CUDAGuard guard(grad_z.device());
  std::vector<int64_t> l_shape = shape;
  l_shape.push_back(shape.back());
  const auto opts = grad_z.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor grad_l = at::empty(l_shape, opts);
  at::Tensor grad_eps = need_grad_eps ? at::empty(shape, opts) : at::empty({0}, opts);
  if (grad_z.numel() == 0) return {grad_l, grad_eps};
  KeepAlive keep;
  Problem p = make_rows_problem(shape, chol_inputs(grad_z, scale_tril, eps), keep);
  p.out[kGradSecond] = grad_l.mutable_data_ptr();
  p.out[kGradEps] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  at::Tensor so_in;
  const StreamSource src = stream_source(eps.has_value(), seed_offset, std::nullopt,
                                         grad_z.device(), so_in);
  launch_chol_backward(p, false, grad_z.scalar_type(), src, need_grad_eps);
  return {grad_l, grad_eps};
}

}  // namespace

void launch_chol_forward(const Problem& p, bool stats, at::ScalarType dtype,
                         const StreamSource& src) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "chol_rsample_cuda", [&] {
    if (stats) {
      launch_forward_as<scalar_t, true>(p, src);
    } else {
      launch_forward_as<scalar_t, false>(p, src);
    }
  });
}

void launch_chol_backward(const Problem& p, bool stats, at::ScalarType dtype,
                          const StreamSource& src, bool need_grad_eps) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, dtype, "chol_rsample_backward_cuda", [&] {
        if (stats) {
          launch_backward_as<scalar_t, true>(p, src, need_grad_eps);
        } else {
          launch_backward_as<scalar_t, false>(p, src, need_grad_eps);
        }
      });
}

}  // namespace cuda
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CUDA, m) {
  m.impl("chol_rsample", &fused_reparam::cuda::chol_rsample_cuda);
  m.impl("chol_rsample_backward", &fused_reparam::cuda::chol_rsample_backward_cuda);
}
