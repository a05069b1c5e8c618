// What the row-structured CUDA kernels share (the Cholesky op, and both ops with the VAE
// extras, whose per-row sums need a row's elements together): launch sizing, a tile's noise
// made once into shared memory, sums over teams of lanes and over a block, row offsets, and
// the entry points of the Cholesky kernels (chol_cuda.cu), which chol_stats_cuda.cu calls with
// the extras switched on.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <array>
#include <atomic>

#include "common/chol_layout.h"
#include "cuda/stream_cuda.cuh"
#include "fused_reparam/normal.h"

namespace fused_reparam {
namespace cuda {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

inline int ceil_log2(int64_t v) {
  int k = 0;
  while ((int64_t{1} << k) < v) ++k;
  return k;
}

inline int multiprocessor_count(int device) {
  static std::array<std::atomic<int>, 64> cache{};
  if (device < 0 || device >= 64) return 132;
  int n = cache[device].load(std::memory_order_relaxed);
  if (n == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    cache[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

// Blocks for `units` work units: at least one (the [seed, offset] output is written even for
// empty tensors), at most 8 per SM (grid-stride loops take the rest).
inline int grid_for(int64_t units) {
  const int device = c10::cuda::current_device();
  return static_cast<int>(
      std::max<int64_t>(1, min64(units, 8LL * multiprocessor_count(device))));
}

// Elements [e0, e0 + n) of the stream into dst[0, n): each thread makes whole Philox groups,
// so no group is made twice within a call.
template <class F>
__device__ __forceinline__ void fill_stream_eps(F* dst, uint64_t seed, uint64_t offset,
                                                int64_t e0, int n) {
  const int64_t q0 = e0 >> 2;
  const int lead = static_cast<int>(e0 & 3);  // elements of group q0 before e0
  const int groups = (lead + n + 3) >> 2;
  for (int t = threadIdx.x; t < groups; t += blockDim.x) {
    F v[4];
    stream_normals4<F>(seed, offset, static_cast<uint64_t>(q0 + t), v);
    const int base = 4 * t - lead;  // dst index of the group's first element
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      if (base + m >= 0 && base + m < n) dst[base + m] = v[m];
    }
  }
}

// Sum over each aligned group of g lanes (g a power of two <= 32, the same for the warp);
// every lane of the warp must call it.
template <class F>
__device__ __forceinline__ F group_sum(F v, int g) {
  for (int o = g >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sums of N values over each aligned team of 2^log_t threads (log_t <= 8, the same for the
// block), in a fixed order (deterministic); valid in the team's first thread. Every thread
// must call it. Teams wider than a warp meet in `scratch` ([kWarps][N], shared; reusable once
// it returns).
template <int N, class F>
__device__ __forceinline__ void team_sum(F v[N], int log_t, F (*scratch)[N]) {
  const int lanes = 1 << log_t;
#pragma unroll
  for (int c = 0; c < N; ++c) v[c] = group_sum(v[c], lanes < 32 ? lanes : 32);
  if (lanes <= 32) return;
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) {
#pragma unroll
    for (int c = 0; c < N; ++c) scratch[warp][c] = v[c];
  }
  __syncthreads();
  if ((threadIdx.x & (lanes - 1)) == 0) {
#pragma unroll
    for (int c = 0; c < N; ++c) {
      v[c] = scratch[warp][c];
      for (int w = 1; w < (lanes >> 5); ++w) v[c] += scratch[warp + w][c];
    }
  }
  __syncthreads();
}

// team_sum over the whole block (kThreads = 2^8): valid in thread 0.
template <int N, class F>
__device__ __forceinline__ void block_sum(F v[N], F (*scratch)[N]) {
  static_assert(kThreads == 256, "block_sum assumes 2^8 threads");
  team_sum<N>(v, 8, scratch);
}

// Element offsets of row r of N operands from the merged batch dims; one dim (the common
// case) needs no division.
template <int N>
__device__ __forceinline__ void batch_offsets(int bdim, const int64_t* bsizes,
                                              const int64_t (*bstrides)[kMaxDims], int64_t r,
                                              int64_t off[N]) {
  if (bdim <= 1) {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = r * bstrides[k][0];  // bdim 0: strides are 0
    return;
  }
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int dim = bdim - 1; dim >= 0; --dim) {
    const int64_t idx = r % bsizes[dim];
    r /= bsizes[dim];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += idx * bstrides[k][dim];
  }
}

// ---- the Cholesky kernels' entry points (chol_cuda.cu) -------------------------------------

// The VAE extras of the Cholesky kernels, beside a CholProblem with the same merged batch dims.
// Forward: out = kl, log_q ([rows], contiguous). Backward: in = mu [*batch, D] (unit stride
// along D), grad_kl, grad_log_q [*batch], with their batch strides; out[0] = grad_mu [rows, D].
struct CholStats {
  const void* in[3] = {nullptr, nullptr, nullptr};
  int64_t bstrides[3][kMaxDims] = {};
  void* out[2] = {nullptr, nullptr};
};

// One launch each. `stats` null: the plain op; else the op with the extras.
void launch_chol_forward(const CholProblem& p, const CholStats* stats, at::ScalarType dtype,
                         const StreamSource& src);
void launch_chol_backward(const CholProblem& p, const CholStats* stats, at::ScalarType dtype,
                          const StreamSource& src, bool need_grad_eps);

}  // namespace cuda
}  // namespace fused_reparam
