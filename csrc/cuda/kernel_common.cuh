// What the CUDA kernels share: launch sizing, a tile's noise made once into shared memory, sums
// over teams of lanes and over a block, operand offsets, and the entry points of the Cholesky
// kernels (chol_cuda.cu), which chol_stats_cuda.cu calls with the extras switched on.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <array>
#include <atomic>

#include "common/problem.h"
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

// Offsets of row r's operands kFirst, kSecond, kEps (the Cholesky kernels' three) and of its
// kGradKl, kGradLogQ, kMu (the extras' backward).
__device__ __forceinline__ void chol_offsets(const Problem& p, int64_t r, int64_t (&off)[3]) {
  row_offsets<3>(p, kFirst, r, off);
}
__device__ __forceinline__ void extra_offsets(const Problem& p, int64_t r, int64_t (&off)[3]) {
  row_offsets<3>(p, kGradKl, r, off);
}
static_assert(kFirst == 0 && kSecond == 1 && kEps == 2 && kGradKl == 3 && kGradLogQ == 4 &&
                  kMu == 5,
              "three consecutive operands each");

// ---- the Cholesky kernels' entry points (chol_cuda.cu) -------------------------------------

// One launch each. `stats`: the op with the VAE extras (operands kGradKl, kGradLogQ, kMu in
// the backward; outputs kl, log_q forward and grad_mu backward), else the plain op.
void launch_chol_forward(const Problem& p, bool stats, at::ScalarType dtype,
                         const StreamSource& src);
void launch_chol_backward(const Problem& p, bool stats, at::ScalarType dtype,
                          const StreamSource& src, bool need_grad_eps);

}  // namespace cuda
}  // namespace fused_reparam
