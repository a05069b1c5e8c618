// CUDA kernels of the diagonal op: one launch forward, one backward, one pass over memory.
//
// Each thread takes groups of four elements, the four normals of one Philox call, in a
// grid-stride loop over groups, so the noise depends on the element index only, never on the
// launch configuration. Contiguous inputs (or broadcast scalars) whose pointers are aligned
// take 4-wide vector loads and stores; everything else goes through the strided offsets.
//
// RNG: the forward reserves a Philox offset from torch's CUDA generator under its mutex and
// unpacks it in the kernel (at::cuda::philox::unpack), so under CUDA-graph capture each replay
// reads the advanced offset and draws fresh noise; the kernel writes the [seed, offset] it used
// into a small int64 tensor on the device, which the backward reads.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/PhiloxUtils.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>


#include "common/diag_checks.h"
#include "common/problem.h"
#include "common/problem_builder.h"
#include "cuda/kernel_common.cuh"
#include "cuda/stream_cuda.cuh"
#include "fused_reparam/diag_math.h"
#include "fused_reparam/noise.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/philox.h"
#include "fused_reparam/scale.h"

namespace fused_reparam {
namespace cuda {
namespace {

// Four consecutive elements, aligned so one (or two, for double) vector instruction moves them.
template <class T>
struct alignas(sizeof(T) * 4) Vec4 {
  T v[4];
};

// The two ops as formulas, with their output slots. The scale kind is a runtime value, the
// same for the whole launch (a uniform branch, not one instantiation per kind).
struct ForwardOp {
  static constexpr int kOutputs = 1;
  static constexpr int kOut0 = kZ, kOut1 = kZ;
  template <class F>
  __device__ __forceinline__ static void apply(F mu, F s, F eps, const scale::Scale<F>& sc,
                                               F& z, F& /*unused*/) {
    z = diag::sample<F>(mu, scale::sigma<F, F>(s, sc), eps);
  }
};

template <bool kWithGradEps>
struct BackwardOp {
  static constexpr int kOutputs = kWithGradEps ? 2 : 1;
  static constexpr int kOut0 = kGradSecond, kOut1 = kGradEps;
  template <class F>
  __device__ __forceinline__ static void apply(F dz, F s, F eps, const scale::Scale<F>& sc,
                                               F& ds, F& deps) {
    if constexpr (kWithGradEps) {
      const F base = scale::sigma_base<F, F>(s, sc);
      ds = diag::grad_scale<F>(dz, scale::dsigma<F, F>(s, base, sc), eps);
      deps = diag::grad_eps<F>(dz, base + sc.min);
    } else {
      ds = diag::grad_scale<F>(dz, scale::dsigma<F, F>(s, sc), eps);
    }
  }
};

// How each input is read. kContig: offset = linear index; kRow: offset = index % d (a row
// broadcast over all outer dims, e.g. s [D] with mu [B, D]); kScalar: one value; kStrided:
// offsets from the strides (element_offset). `vec`: 4-wide loads are legal (aligned, and rows
// of whole groups).
enum InputMode : int { kStrided = 0, kContig = 1, kRow = 2, kScalar = 3 };

struct LoadPlan {
  int mode[3] = {kStrided, kStrided, kStrided};
  bool vec[3] = {false, false, false};
};

// The four values of input k for elements i0 .. i0+3 (those < numel), in compute type F.
template <class T, class F>
__device__ __forceinline__ void load4(const Problem& d, const LoadPlan& plan, int k,
                                      const T* p, int64_t i0, bool full, F x[4]) {
  const int mode = plan.mode[k];
  if (mode == kScalar) {
    x[0] = x[1] = x[2] = x[3] = static_cast<F>(p[0]);
    return;
  }
  if (mode != kStrided && full && plan.vec[k]) {
    const int64_t at = mode == kContig ? i0 : i0 % d.d;
    const Vec4<T> v = *reinterpret_cast<const Vec4<T>*>(p + at);
#pragma unroll
    for (int j = 0; j < 4; ++j) x[j] = static_cast<F>(v.v[j]);
    return;
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t i = i0 + j;
    if (i >= d.numel()) break;
    const int64_t at = mode == kContig ? i : (mode == kRow ? i % d.d : element_offset(d, k, i));
    x[j] = static_cast<F>(p[at]);
  }
}

template <class T, class Op>
__global__ void __launch_bounds__(kThreads)
    diag_kernel(Problem d, StreamSource src, LoadPlan plan, bool has_eps) {
  using F = Acc<T>;
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const T* in[3] = {static_cast<const T*>(d.in[0]), static_cast<const T*>(d.in[1]),
                    static_cast<const T*>(d.in[2])};
  T* out0 = static_cast<T*>(d.out[Op::kOut0]);
  T* out1 = static_cast<T*>(d.out[Op::kOut1]);
  const scale::Scale<F> sc{d.scale, static_cast<F>(d.min_scale)};
  const int64_t numel = d.numel();
  const int64_t groups = (numel + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += stride) {
    const int64_t i0 = 4 * g;
    const bool full = i0 + 4 <= numel;
    F a[4], b[4], eps[4];
    load4<T, F>(d, plan, 0, in[0], i0, full, a);
    load4<T, F>(d, plan, 1, in[1], i0, full, b);
    if (has_eps) {
      load4<T, F>(d, plan, 2, in[2], i0, full, eps);
    } else {
      noise::stream4<F>(seed, offset, static_cast<uint64_t>(g), d.noise, eps);
    }
    Vec4<T> y0, y1;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      F r0, r1;
      Op::template apply<F>(a[j], b[j], eps[j], sc, r0, r1);
      y0.v[j] = static_cast<T>(r0);
      y1.v[j] = static_cast<T>(Op::kOutputs == 2 ? r1 : r0);
    }
    if (full) {  // outputs are fresh allocations: always aligned
      *reinterpret_cast<Vec4<T>*>(out0 + i0) = y0;
      if (Op::kOutputs == 2) *reinterpret_cast<Vec4<T>*>(out1 + i0) = y1;
    } else {
      for (int j = 0; i0 + j < numel; ++j) {
        out0[i0 + j] = y0.v[j];
        if (Op::kOutputs == 2) out1[i0 + j] = y1.v[j];
      }
    }
  }
}

LoadPlan make_plan(const Problem& d, size_t elem_size) {
  LoadPlan plan;
  for (int k = 0; k < 3; ++k) {
    if (d.in[k] == nullptr) continue;
    // Over the dims (outer dims, then d): all strides 0; row-major; a row repeated.
    bool scalar = d.dstride[k] == 0, contig = d.dstride[k] == 1, row = d.dstride[k] == 1;
    int64_t expect = d.d;
    for (int i = d.bdim - 1; i >= 0; --i) {
      if (d.bsizes[i] == 1) continue;
      scalar = scalar && d.bstrides[k][i] == 0;
      contig = contig && d.bstrides[k][i] == expect;
      row = row && d.bstrides[k][i] == 0;
      expect *= d.bsizes[i];
    }
    const bool aligned = reinterpret_cast<uintptr_t>(d.in[k]) % (4 * elem_size) == 0;
    if (scalar) {
      plan.mode[k] = kScalar;
    } else if (contig) {
      plan.mode[k] = kContig;
      plan.vec[k] = aligned;
    } else if (row) {
      plan.mode[k] = kRow;
      plan.vec[k] = aligned && d.d % 4 == 0;
    }
  }
  return plan;
}

template <class Op>
void launch(const Problem& d, at::ScalarType dtype, const StreamSource& src, bool has_eps) {
  const int64_t groups = (d.numel() + 3) / 4;
  // Four elements a thread; at least one block so `used` is written even for empty tensors.
  const int blocks = grid_for((groups + kThreads - 1) / kThreads);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "fused_reparam_diag_cuda", [&] {
    const LoadPlan plan = make_plan(d, sizeof(scalar_t));
    diag_kernel<scalar_t, Op><<<blocks, kThreads, 0, stream>>>(d, src, plan, has_eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

std::tuple<at::Tensor, at::Tensor> diag_rsample_cuda(const at::Tensor& mu, const at::Tensor& s,
                                                     int64_t scale,
                                                     const std::optional<at::Tensor>& eps,
                                                     const std::optional<at::Tensor>& seed_offset,
                                                     std::optional<at::Generator> generator,
                                                     double min_scale, int64_t noise) {
  const std::vector<int64_t> shape = check_diag_rsample_args(mu, s, eps, seed_offset);
  check_scale(scale, min_scale, "fused_reparam::diag_rsample");
  check_noise(noise, "fused_reparam::diag_rsample");
  const c10::cuda::CUDAGuard guard(mu.device());
  at::Tensor z = at::empty(shape, mu.options().memory_format(at::MemoryFormat::Contiguous));

  KeepAlive keep;
  Problem d = make_elementwise_problem(shape, diag_inputs(mu, s, eps), keep);
  set_scale(d, scale, min_scale);
  d.noise = static_cast<int>(noise);
  d.out[kZ] = z.mutable_data_ptr();

  at::Tensor used, so_in;
  const StreamSource src =
      recorded_stream_source(eps.has_value(), seed_offset, generator, mu, used, so_in);
  launch<ForwardOp>(d, mu.scalar_type(), src, eps.has_value());
  return {z, used};
}

std::tuple<at::Tensor, at::Tensor> diag_rsample_backward_cuda(
    const at::Tensor& grad_z, const at::Tensor& s, const std::optional<at::Tensor>& eps,
    const at::Tensor& seed_offset, bool need_grad_eps, int64_t scale, double min_scale,
    int64_t noise) {
  check_diag_backward_args(grad_z, s, eps, seed_offset, need_grad_eps);
  check_scale(scale, min_scale, "fused_reparam::diag_rsample_backward");
  check_noise(noise, "fused_reparam::diag_rsample_backward");
  const c10::cuda::CUDAGuard guard(grad_z.device());
  const auto opts = grad_z.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor grad_s = at::empty(grad_z.sizes(), opts);
  at::Tensor grad_eps = need_grad_eps ? at::empty(grad_z.sizes(), opts) : at::empty({0}, opts);
  if (grad_z.numel() == 0) return {grad_s, grad_eps};

  KeepAlive keep;
  Problem d = make_elementwise_problem(grad_z.sizes(), diag_inputs(grad_z, s, eps), keep);
  set_scale(d, scale, min_scale);
  d.noise = static_cast<int>(noise);
  d.out[kGradSecond] = grad_s.mutable_data_ptr();
  d.out[kGradEps] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  at::Tensor so_in;
  const StreamSource src = stream_source(eps.has_value(), seed_offset, std::nullopt,
                                         grad_z.device(), so_in);
  if (need_grad_eps) {
    launch<BackwardOp<true>>(d, grad_z.scalar_type(), src, eps.has_value());
  } else {
    launch<BackwardOp<false>>(d, grad_z.scalar_type(), src, eps.has_value());
  }
  return {grad_s, grad_eps};
}

}  // namespace
}  // namespace cuda
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CUDA, m) {
  m.impl("diag_rsample", &fused_reparam::cuda::diag_rsample_cuda);
  m.impl("diag_rsample_backward", &fused_reparam::cuda::diag_rsample_backward_cuda);
}
