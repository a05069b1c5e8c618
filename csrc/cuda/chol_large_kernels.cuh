// The Cholesky kernels for large D (chol_cuda.cu launches them; kStats adds the VAE extras).
//
// Large D (> 64): forward, a block per (row, 32 outputs), a warp per output (four per warp),
// L's rows read 32 columns at a time and the row's eps made in shared memory in chunks of
// 1024 columns, so any D works with fixed shared memory. Backward, a block per (row, 32
// columns of grad_L): each warp walks every 8th row of grad_L writing 32 contiguous columns
// and adds L[i, j] * dz[i] for grad_eps; the 8 warps' sums are added in a fixed order.
#pragma once

#include <cstdint>

#include "common/problem.h"
#include "cuda/kernel_common.cuh"
#include "cuda/stream_cuda.cuh"
#include "fused_reparam/chol_math.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/stats_math.h"

namespace fused_reparam {
namespace cuda {

constexpr int kChunk = 1024;        // eps columns per shared-memory chunk, large-D forward
constexpr int kOutsPerWarp = 4;     // large-D forward: outputs per warp per unit
constexpr int kFwdUnitOuts = kWarps * kOutsPerWarp;  // outputs of one large-D forward unit
constexpr int kBwdUnitCols = 32;    // columns of grad_L of one large-D backward unit

// Outputs [i0, i0 + kFwdUnitOuts) of row r: a warp per output (four per warp), L's rows read
// 32 columns at a time against eps[0, i1) made in shared memory in chunks of kChunk. With the
// extras, adds this thread's shares of the row's L^2 + mu^2, log|L_ii| and eps^2 to `part`.
template <class T, bool kStats, class F>
__device__ __forceinline__ void fwd_large_slice(const Problem& p, const int64_t off[3],
                                                int64_t r, int64_t i0, uint64_t seed,
                                                uint64_t offset, F* eps_s, F part[3]) {
  const int64_t d = p.d;
  const T* mu = static_cast<const T*>(p.in[kFirst]);
  const T* l = static_cast<const T*>(p.in[kSecond]);
  const T* eps_in = static_cast<const T*>(p.in[kEps]);
  T* z = static_cast<T*>(p.out[kZ]);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int64_t i1 = min64(d, i0 + kFwdUnitOuts);
  F acc[kOutsPerWarp];
#pragma unroll
  for (int k = 0; k < kOutsPerWarp; ++k) acc[k] = F(0);
  // Outputs i0 + warp + kWarps * k need eps[0, i1): chunks of kChunk columns.
  for (int64_t j0 = 0; j0 < i1; j0 += kChunk) {
    const int n = static_cast<int>(min64(kChunk, i1 - j0));
    __syncthreads();  // the previous chunk's readers are done with eps_s
    if (eps_in == nullptr) {
      fill_stream_eps(eps_s, seed, offset, r * d + j0, n);
    } else {
      for (int t = threadIdx.x; t < n; t += kThreads) {
        eps_s[t] = static_cast<F>(eps_in[off[2] + j0 + t]);
      }
    }
    __syncthreads();
    if constexpr (kStats) {  // eps^2 of the slice's own columns, each in exactly one chunk
      for (int t = threadIdx.x; t < n; t += kThreads) {
        if (j0 + t >= i0 && j0 + t < i1) part[2] += eps_s[t] * eps_s[t];
      }
    }
#pragma unroll
    for (int k = 0; k < kOutsPerWarp; ++k) {
      const int64_t i = i0 + warp + kWarps * k;
      if (i < i1 && i >= j0) {
        const T* l_row = l + off[1] + i * p.l_row_stride + j0;
        const int last = static_cast<int>(min64(i - j0, n - 1));
        if constexpr (kStats) {  // L^2 only counts for the row: straight into this thread's part
          stats::lower_row_dot_sq_strided<F>(l_row, last, eps_s, lane, 32, acc[k], part[0]);
        } else {
          acc[k] += chol::lower_row_dot_strided<F>(l_row, last, eps_s, lane, 32);
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kOutsPerWarp; ++k) {
    const F v = group_sum(acc[k], 32);
    const int64_t i = i0 + warp + kWarps * k;
    if (lane == 0 && i < i1) {
      const F m = static_cast<F>(mu[off[0] + i]);
      z[r * d + i] = static_cast<T>(m + v);
      if constexpr (kStats) {
        part[0] += m * m;
        part[1] += stats::log_abs(static_cast<F>(l[off[1] + i * p.l_row_stride + i]));
      }
    }
  }
}

template <class T, bool kStats>
__global__ void __launch_bounds__(kThreads)
    chol_fwd_large_kernel(Problem p, StreamSource src) {
  using F = Acc<T>;
  __shared__ F eps_s[kChunk];
  __shared__ F red_s[kWarps][3];
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const int64_t per_row = (p.d + kFwdUnitOuts - 1) / kFwdUnitOuts;
  // With the extras a unit is a whole row (its slices in turn), so its sums stay in the block.
  const int64_t units = kStats ? p.rows : p.rows * per_row;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t r = kStats ? u : u / per_row;
    int64_t off[3];
    chol_offsets(p, r, off);
    if constexpr (!kStats) {
      fwd_large_slice<T, false, F>(p, off, r, (u - r * per_row) * kFwdUnitOuts, seed, offset,
                                   eps_s, nullptr);
    } else {
      F part[3] = {F(0), F(0), F(0)};
      for (int64_t i0 = 0; i0 < p.d; i0 += kFwdUnitOuts) {
        fwd_large_slice<T, true>(p, off, r, i0, seed, offset, eps_s, part);
      }
      block_sum<3>(part, red_s);
      if (threadIdx.x == 0) {  // part[0] holds the squares of L and of mu together
        static_cast<T*>(p.out[kKl])[r] =
            static_cast<T>(stats::chol_kl_finish<F>(part[0], F(0), part[1], p.d));
        static_cast<T*>(p.out[kLogQ])[r] =
            static_cast<T>(stats::chol_log_q_finish<F>(part[2], part[1], p.d));
      }
    }
  }
}

template <class T, bool kStats>
__global__ void __launch_bounds__(kThreads)
    chol_bwd_large_kernel(Problem p, StreamSource src, bool need_grad_eps) {
  using F = Acc<T>;
  __shared__ F eps_s[kBwdUnitCols];
  __shared__ F part_s[kWarps][kBwdUnitCols];
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const int64_t d = p.d;
  const T* gz = static_cast<const T*>(p.in[kFirst]);
  const T* l = static_cast<const T*>(p.in[kSecond]);
  const T* eps_in = static_cast<const T*>(p.in[kEps]);
  T* gl = static_cast<T*>(p.out[kGradSecond]);
  T* ge = static_cast<T*>(p.out[kGradEps]);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int64_t per_row = (d + kBwdUnitCols - 1) / kBwdUnitCols;
  const int64_t units = p.rows * per_row;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t r = u / per_row;
    const int64_t j0 = (u - r * per_row) * kBwdUnitCols;
    const int nj = static_cast<int>(min64(kBwdUnitCols, d - j0));
    int64_t off[3];
    chol_offsets(p, r, off);
    int64_t mu_off = 0;
    F gk = F(0), gq = F(0);
    if constexpr (kStats) {
      int64_t xo[3];  // grad_kl, grad_log_q, mu
      extra_offsets(p, r, xo);
      gk = static_cast<F>(static_cast<const T*>(p.in[kGradKl])[xo[0]]);
      gq = static_cast<F>(static_cast<const T*>(p.in[kGradLogQ])[xo[1]]);
      mu_off = xo[2];
    }
    __syncthreads();  // the previous unit's readers are done with eps_s and part_s
    if (eps_in == nullptr) {
      fill_stream_eps(eps_s, seed, offset, noise_index(p, r, j0), nj);
    } else if (threadIdx.x < nj) {
      eps_s[threadIdx.x] = static_cast<F>(eps_in[off[2] + j0 + threadIdx.x]);
    }
    __syncthreads();
    const bool col = lane < nj;
    const int64_t j = j0 + lane;
    const F e = col ? eps_s[lane] : F(0);
    F acc = F(0);
    T* gl_r = gl + r * d * d;
    const T* l_r = l + off[1];
    for (int64_t i = warp; i < d; i += kWarps) {
      const F gi = static_cast<F>(gz[off[0] + i]);
      if constexpr (kStats) {  // grad_mu by the unit of the first columns
        if (j0 == 0 && lane == 0) {
          const F m = static_cast<F>(static_cast<const T*>(p.in[kMu])[mu_off + i]);
          static_cast<T*>(p.out[kGradMu])[r * d + i] =
              static_cast<T>(stats::chol_grad_mu<F>(gi, gk, m));
        }
      }
      if (col) {
        if constexpr (kStats) {
          gl_r[i * d + j] =
              static_cast<T>(stats::chol_grad_l<F>(gi, e, gk, gq, l_r + i * p.l_row_stride, i, j));
        } else {
          gl_r[i * d + j] = static_cast<T>(chol::grad_l(gi, e, i, j));
        }
        if (need_grad_eps && j <= i) acc += static_cast<F>(l_r[i * p.l_row_stride + j]) * gi;
      }
    }
    if (need_grad_eps) {
      part_s[warp][lane] = acc;
      __syncthreads();
      if (warp == 0 && col) {
        F sum = part_s[0][lane];
#pragma unroll
        for (int w = 1; w < kWarps; ++w) sum += part_s[w][lane];
        if constexpr (kStats) sum = stats::chol_grad_eps_finish<F>(sum, gq, eps_s[lane]);
        ge[r * d + j] = static_cast<T>(sum);
      }
    }
  }
}

}  // namespace cuda
}  // namespace fused_reparam
