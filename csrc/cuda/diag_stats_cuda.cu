// CUDA kernels of the diagonal op with the VAE extras: diag_rsample_stats writes z and, per
// row, kl = 0.5 * sum(mu^2 + sigma^2 - 1 - lv) and log_q = -0.5 * sum(eps^2 + lv + log 2pi),
// lv = 2 log sigma of the scale input s (fused_reparam/scale.h), in one launch;
// diag_rsample_stats_backward writes every gradient in one launch. With squash (a runtime
// flag, uniform over the launch), z is the action low + half * (tanh(u) + 1) of the Gaussian
// sample u, log_q adds the element's log-determinant share, and the backward's dz stands for
// the gradient reaching u (fused_reparam/squash.h).
//
// Rows are the sample's dims but the last, D its last. D <= 1024: a block takes a tile of whole
// rows (at most 1024 elements), makes the tile's noise in shared memory (each thread whole
// Philox groups, none made twice, rows starting mid-group included) and the rows' operand
// offsets, then a team of lanes per row walks it (the power of two >= D up to a warp, so a
// warp's accesses are contiguous; beyond, about four elements a lane) and adds up with
// shuffles, and across warps in shared memory. D > 1024: a block per row, its noise made in
// chunks of 1024 columns. Every sum in a fixed order (deterministic, no atomics). Operands are
// read through per-row batch offsets and their own stride along D (0 when broadcast), so
// s [D], s [B, 1] or mu expanded over num_samples are never copied.
//
// Noise element r * D + j is the stream's element of the sample, as diag_rsample draws it;
// RNG and the [seed, offset] output as in diag_cuda.cu (graph-safe).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>
#include <optional>
#include <tuple>
#include <vector>

#include "common/diag_checks.h"
#include "common/stats_args.h"
#include "cuda/kernel_common.cuh"
#include "cuda/stream_cuda.cuh"
#include "fused_reparam/diag_math.h"
#include "fused_reparam/scale.h"
#include "fused_reparam/squash.h"
#include "fused_reparam/stats_math.h"

namespace fused_reparam {
namespace cuda {
namespace {

constexpr int kTileElems = 1024;  // sample elements of a tile (at most), columns of a chunk
constexpr int kMaxTileRows = 256;

// The row problem is the CPU op's (common/problem.h): operands kFirst (mu, or grad_z in
// the backward), kSecond (s), kEps (null: the stream), and in the backward kGradKl,
// kGradLogQ (one value per row: stride 0 along D) and kMu. The forward reads the first three.
static_assert(kFirst == 0 && kSecond == 1 && kEps == 2, "the forward's operands come first");

template <class T, class F>
__device__ __forceinline__ F load(const Problem& p, int k, const int64_t* off, int64_t j) {
  return static_cast<F>(static_cast<const T*>(p.in[k])[off[k] + j * p.dstride[k]]);
}

// The work of one row, element by element (each thread its share), then the row's sums. The
// scale kind and the squash are runtime values, uniform over the launch (not one
// instantiation per kind).
template <class Scalar>
struct Forward {
  using T = Scalar;
  using F = Acc<T>;
  static constexpr int kIn = 3;    // mu, s, eps
  static constexpr int kSums = 2;  // kl, log_q
  static constexpr int kMinBlocks = 5;
  F sum[kSums] = {F(0), F(0)};

  __device__ void begin(const Problem&, const int64_t*) {}

  __device__ void element(const Problem& p, const int64_t* off, int64_t j, int64_t e, F eps,
                          const scale::Scale<F>& sc, const squash::Squash<F>& sq) {
    const F mu = load<T, F>(p, kFirst, off, j);
    const F s = load<T, F>(p, kSecond, off, j);
    const F sigma = scale::sigma<F, F>(s, sc);
    const F u = diag::sample<F>(mu, sigma, eps);
    const F lv = scale::log_var<F, F>(s, sigma, sc);
    sum[0] += stats::diag_kl_term<F>(mu, sigma, lv);
    F z = u;
    F lq = stats::diag_log_q_term<F>(eps, lv);
    if (sq.on) {
      F extra;
      squash::action_and_log_q_extra<F, F>(u, sq, z, extra);
      lq += extra;
    }
    static_cast<T*>(p.out[kZ])[e] = static_cast<T>(z);
    sum[1] += lq;
  }

  // After `reduce` (the sums over the row's threads), the thread where `write` holds stores.
  template <class Reduce>
  __device__ void end(const Problem& p, int64_t r, bool write, Reduce reduce) {
    reduce(sum);
    if (write) {
      static_cast<T*>(p.out[kKl])[r] = static_cast<T>(stats::diag_kl_finish<F>(sum[0]));
      static_cast<T*>(p.out[kLogQ])[r] =
          static_cast<T>(stats::diag_log_q_finish<F>(sum[1], p.d));
    }
  }
};

template <class Scalar>
struct Backward {
  using T = Scalar;
  using F = Acc<T>;
  static constexpr int kIn = kOperands;
  static constexpr int kSums = 0;
  static constexpr int kMinBlocks = 4;
  F gk = F(0), gq = F(0);

  __device__ void begin(const Problem& p, const int64_t* off) {
    gk = static_cast<F>(static_cast<const T*>(p.in[kGradKl])[off[kGradKl]]);
    gq = static_cast<F>(static_cast<const T*>(p.in[kGradLogQ])[off[kGradLogQ]]);
  }

  __device__ void element(const Problem& p, const int64_t* off, int64_t j, int64_t e, F eps,
                          const scale::Scale<F>& sc, const squash::Squash<F>& sq) {
    F dz = load<T, F>(p, kFirst, off, j);
    const F mu = load<T, F>(p, kMu, off, j);
    const F s = load<T, F>(p, kSecond, off, j);
    const F base = scale::sigma_base<F, F>(s, sc);
    const F sigma = base + F(sc.min);
    // With squash, dz (the action's gradient) becomes the gradient reaching u = mu + sigma eps.
    if (sq.on) dz = squash::grad_u<F, F>(dz, gq, diag::sample<F>(mu, sigma, eps), sq);
    const F dsig = scale::dsigma<F, F>(s, base, sc);
    const F dlog = scale::dlog_sigma<F, F>(s, sigma, dsig, sc);
    static_cast<T*>(p.out[kGradMu])[e] = static_cast<T>(stats::diag_grad_mu<F>(dz, gk, mu));
    static_cast<T*>(p.out[kGradSecond])[e] =
        static_cast<T>(stats::diag_grad_scale<F>(dz, gk, gq, sigma, dsig, dlog, eps));
    if (p.out[kGradEps] != nullptr) {
      static_cast<T*>(p.out[kGradEps])[e] =
          static_cast<T>(stats::diag_grad_eps<F>(dz, gq, sigma, eps));
    }
  }
};

// Op::kMinBlocks per SM bounds the registers (65536 / (256 * blocks)): left to itself, ptxas
// gives the backward 48 on sm_80 and spills.
template <class Op>
__global__ void __launch_bounds__(kThreads, Op::kMinBlocks)
    diag_stats_tile_kernel(Problem p, StreamSource src, int tile_rows, int log_t) {
  using F = typename Op::F;
  __shared__ F eps_s[kTileElems];
  __shared__ int64_t off_s[Op::kIn][kMaxTileRows];
  __shared__ F red_s[kWarps][Op::kSums > 0 ? Op::kSums : 1];
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const bool stream = p.in[kEps] == nullptr;
  const scale::Scale<F> sc{p.scale, static_cast<F>(p.min_scale)};
  // The squash's constants in double, then F (no double log where the squash is off).
  const double half = 0.5 * (p.high - p.low);
  const squash::Squash<F> sq{p.squash, static_cast<F>(p.low), static_cast<F>(half),
                             static_cast<F>(p.squash ? ::log(half) : 0.0)};
  const int d = static_cast<int>(p.d);
  const int lanes = 1 << log_t;
  const int lane = threadIdx.x & (lanes - 1);
  const int team = threadIdx.x >> log_t;
  const int teams = kThreads >> log_t;
  const int64_t tiles = (p.rows + tile_rows - 1) / tile_rows;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t r0 = t * tile_rows;
    const int nr = static_cast<int>(min64(tile_rows, p.rows - r0));
    __syncthreads();  // the previous tile's readers are done with eps_s and off_s
    for (int k = threadIdx.x; k < nr; k += kThreads) {
      int64_t off[Op::kIn];
      row_offsets<Op::kIn>(p, kFirst, r0 + k, off);
#pragma unroll
      for (int c = 0; c < Op::kIn; ++c) off_s[c][k] = off[c];
    }
    if (stream) fill_stream_eps(eps_s, seed, offset, noise_index(p, r0, 0), nr * d);
    __syncthreads();
    for (int kb = 0; kb < nr; kb += teams) {  // the same trip count for every lane (shuffles)
      const int k = kb + team;
      Op op;
      if (k < nr) {
        int64_t off[Op::kIn];
#pragma unroll
        for (int c = 0; c < Op::kIn; ++c) off[c] = off_s[c][k];
        op.begin(p, off);
        const int64_t e0 = (r0 + k) * d;
        for (int j = lane; j < d; j += lanes) {
          const F eps = stream ? eps_s[k * d + j] : load<typename Op::T, F>(p, kEps, off, j);
          op.element(p, off, j, e0 + j, eps, sc, sq);
        }
      }
      if constexpr (Op::kSums > 0) {
        op.end(p, r0 + k, k < nr && lane == 0,
               [&](F* v) { team_sum<Op::kSums>(v, log_t, red_s); });
      }
    }
  }
}

template <class Op>
__global__ void __launch_bounds__(kThreads) diag_stats_row_kernel(Problem p, StreamSource src) {
  using F = typename Op::F;
  __shared__ F eps_s[kTileElems];
  __shared__ int64_t off_s[Op::kIn];
  __shared__ F red_s[kWarps][Op::kSums > 0 ? Op::kSums : 1];
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const bool stream = p.in[kEps] == nullptr;
  const scale::Scale<F> sc{p.scale, static_cast<F>(p.min_scale)};
  // The squash's constants in double, then F (no double log where the squash is off).
  const double half = 0.5 * (p.high - p.low);
  const squash::Squash<F> sq{p.squash, static_cast<F>(p.low), static_cast<F>(half),
                             static_cast<F>(p.squash ? ::log(half) : 0.0)};
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    __syncthreads();  // the previous row's readers are done with off_s and eps_s
    if (threadIdx.x == 0) {
      int64_t off[Op::kIn];
      row_offsets<Op::kIn>(p, kFirst, r, off);
#pragma unroll
      for (int c = 0; c < Op::kIn; ++c) off_s[c] = off[c];
    }
    Op op;
    for (int64_t c0 = 0; c0 < p.d; c0 += kTileElems) {
      const int n = static_cast<int>(min64(kTileElems, p.d - c0));
      if (c0 > 0) __syncthreads();  // the previous chunk's readers are done with eps_s
      if (stream) fill_stream_eps(eps_s, seed, offset, noise_index(p, r, c0), n);
      __syncthreads();
      int64_t off[Op::kIn];
#pragma unroll
      for (int c = 0; c < Op::kIn; ++c) off[c] = off_s[c];
      if (c0 == 0) op.begin(p, off);
      for (int t = threadIdx.x; t < n; t += kThreads) {
        const int64_t j = c0 + t;
        const F eps = stream ? eps_s[t] : load<typename Op::T, F>(p, kEps, off, j);
        op.element(p, off, j, r * p.d + j, eps, sc, sq);
      }
    }
    if constexpr (Op::kSums > 0) {
      op.end(p, r, threadIdx.x == 0, [&](F* v) { block_sum<Op::kSums>(v, red_s); });
    }
  }
}

// ---- host --------------------------------------------------------------------------------

template <template <class> class Op>
void launch(const Problem& p, at::ScalarType dtype, const StreamSource& src) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "diag_rsample_stats_cuda", [&] {
    if (p.d <= kTileElems) {
      // Lanes per row: the power of two >= D up to a warp, then about D / 4; whole rows per
      // tile, the same number for every team where the tile holds enough.
      const int log_t = p.d <= 4 * 32 ? std::min(5, ceil_log2(p.d)) : ceil_log2((p.d + 3) / 4);
      const int teams = kThreads >> log_t;
      int tile_rows = p.d == 0 ? kMaxTileRows
                               : static_cast<int>(min64(kMaxTileRows, kTileElems / p.d));
      if (tile_rows >= teams) tile_rows -= tile_rows % teams;
      const int64_t tiles = (p.rows + tile_rows - 1) / tile_rows;
      diag_stats_tile_kernel<Op<scalar_t>>
          <<<grid_for(tiles), kThreads, 0, stream>>>(p, src, tile_rows, log_t);
    } else {
      diag_stats_row_kernel<Op<scalar_t>><<<grid_for(p.rows), kThreads, 0, stream>>>(p, src);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> diag_rsample_stats_cuda(
    const at::Tensor& mu, const at::Tensor& s, int64_t scale,
    const std::optional<at::Tensor>& eps, const std::optional<at::Tensor>& seed_offset,
    std::optional<at::Generator> generator, double min_scale, bool squash, double low,
    double high) {
  constexpr const char* op = "fused_reparam::diag_rsample_stats";
  const std::vector<int64_t> shape = check_diag_stats_args(op, mu, s, eps, seed_offset);
  check_scale(scale, min_scale, op);
  check_squash(squash, low, high, mu.scalar_type(), op);
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
    p = make_stats_forward_problem(shape, mu, s, RowKind::kElement, eps, out, keep);
  }
  set_scale(p, scale, min_scale);
  set_squash(p, squash, low, high);
  launch<Forward>(p, mu.scalar_type(), src);
  return {out.z, out.kl, out.log_q, used};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> diag_rsample_stats_backward_cuda(
    const at::Tensor& grad_z, const at::Tensor& grad_kl, const at::Tensor& grad_log_q,
    const at::Tensor& mu, const at::Tensor& s, const std::optional<at::Tensor>& eps,
    const at::Tensor& seed_offset, bool need_grad_eps, int64_t scale, double min_scale,
    bool squash, double low, double high) {
  constexpr const char* op = "fused_reparam::diag_rsample_stats_backward";
  check_diag_backward_args(grad_z, s, eps, seed_offset, need_grad_eps, op);
  check_row_grads(op, grad_z, grad_kl, grad_log_q, mu);
  check_scale(scale, min_scale, op);
  check_squash(squash, low, high, grad_z.scalar_type(), op);
  const c10::cuda::CUDAGuard guard(grad_z.device());
  const auto opts = grad_z.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor grad_mu = at::empty(grad_z.sizes(), opts);
  at::Tensor grad_s = at::empty(grad_z.sizes(), opts);
  at::Tensor grad_eps = need_grad_eps ? at::empty(grad_z.sizes(), opts) : at::empty({0}, opts);
  if (grad_z.numel() == 0) return {grad_mu, grad_s, grad_eps};

  KeepAlive keep;
  Problem p = make_rows_problem(
      grad_z.sizes(),
      stats_backward_inputs(grad_z, s, RowKind::kElement, eps, grad_kl, grad_log_q, mu),
      keep);
  set_scale(p, scale, min_scale);
  set_squash(p, squash, low, high);
  p.out[kGradMu] = grad_mu.mutable_data_ptr();
  p.out[kGradSecond] = grad_s.mutable_data_ptr();
  p.out[kGradEps] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  at::Tensor so_in;
  const StreamSource src = stream_source(eps.has_value(), seed_offset, std::nullopt,
                                         grad_z.device(), so_in);
  launch<Backward>(p, grad_z.scalar_type(), src);
  return {grad_mu, grad_s, grad_eps};
}

}  // namespace
}  // namespace cuda
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CUDA, m) {
  m.impl("diag_rsample_stats", &fused_reparam::cuda::diag_rsample_stats_cuda);
  m.impl("diag_rsample_stats_backward", &fused_reparam::cuda::diag_rsample_stats_backward_cuda);
}
