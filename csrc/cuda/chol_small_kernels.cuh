// The Cholesky kernels for small D (chol_cuda.cu launches them; kStats adds the VAE extras).
//
// Small D (<= 64, the VAE range): a block takes a tile of rows (about 1K elements of the
// sample). Its threads first make the tile's noise together, each thread whole Philox groups
// (one call feeds four elements, nothing is computed twice), into shared memory, with the
// rows' operand offsets. Forward: a group of G lanes (G = 1..8, so a row of L takes at most
// about 8 steps) per output z[r, i]; the lanes read L[i, :i+1] strided by G (adjacent groups
// read adjacent rows of L) and add their parts with shuffles. Backward: a group of lanes per
// row of grad_L writes it contiguously; grad_eps[r, j] is one thread per j walking the rows
// of L, so a warp reads consecutive columns of one row.
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

constexpr int kSmallMaxD = 64;      // up to this D the tile kernels run
constexpr int kTileElems = 1024;    // sample elements of one small-D tile (at most)
constexpr int kMaxTileRows = 256;   // rows of one small-D tile (at most)

// Per tile: operand offsets of its rows and its eps, in shared memory.
template <class F>
struct TileShared {
  F eps[kTileElems];
  int64_t off[3][kMaxTileRows];
};

// Offsets of rows [r0, r0 + nr), and eps from the stream when none is given. No sync.
template <class F>
__device__ __forceinline__ void tile_setup(const Problem& p, TileShared<F>& s, int64_t r0,
                                           int nr, bool stream, uint64_t seed,
                                           uint64_t offset) {
  for (int k = threadIdx.x; k < nr; k += blockDim.x) {
    int64_t off[3];
    chol_offsets(p, r0 + k, off);
    s.off[0][k] = off[0];
    s.off[1][k] = off[1];
    s.off[2][k] = off[2];
  }
  if (stream) {
    fill_stream_eps(s.eps, seed, offset, noise_index(p, r0, 0), nr * static_cast<int>(p.d));
  }
}

// The extras, forward: per output of a tile, L[i, :i+1]^2 + mu_i^2 and log|L_ii|.
template <class F, bool kStats>
struct TileStats {
  F sq[kTileElems];
  F ld[kTileElems];
};
template <class F>
struct TileStats<F, false> {};

// The extras, backward: per row of a tile, mu's offset, grad_kl and grad_log_q.
template <class F, bool kStats>
struct TileGrads {
  int64_t mu_off[kMaxTileRows];
  F gk[kMaxTileRows];
  F gq[kMaxTileRows];
};
template <class F>
struct TileGrads<F, false> {};

// kl and log_q of a tile's rows from the per-output terms: a group of lanes per row.
template <class T, class F>
__device__ __forceinline__ void tile_chol_stats(const TileStats<F, true>& st, const F* eps, int nr,
                                                int d, int64_t r0, T* kl, T* log_q) {
  int log_t = 0;
  while ((1 << log_t) < d && log_t < 5) ++log_t;
  const int lanes = 1 << log_t;
  const int lane = threadIdx.x & (lanes - 1);
  const int team = threadIdx.x >> log_t;
  const int teams = kThreads >> log_t;
  for (int kb = 0; kb < nr; kb += teams) {  // the same trip count for every lane (shuffles)
    const int k = kb + team;
    F v[3] = {F(0), F(0), F(0)};
    for (int j = lane; k < nr && j < d; j += lanes) {
      const int at = k * d + j;
      v[0] += st.sq[at];
      v[1] += st.ld[at];
      v[2] += eps[at] * eps[at];
    }
#pragma unroll
    for (int c = 0; c < 3; ++c) v[c] = group_sum(v[c], lanes);
    if (k < nr && lane == 0) {
      // v[0] holds the squares of L and of mu together.
      kl[r0 + k] = static_cast<T>(stats::chol_kl_finish<F>(v[0], F(0), v[1], d));
      log_q[r0 + k] = static_cast<T>(stats::chol_log_q_finish<F>(v[2], v[1], d));
    }
  }
}

template <class T, bool kStats>
__global__ void __launch_bounds__(kThreads)
    chol_fwd_small_kernel(Problem p, StreamSource src, int tile_rows,
                          int log_g) {
  using F = Acc<T>;
  __shared__ TileShared<F> s;
  __shared__ TileStats<F, kStats> st;
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const int d = static_cast<int>(p.d);
  if (d == 0) return;
  const T* mu = static_cast<const T*>(p.in[kFirst]);
  const T* l = static_cast<const T*>(p.in[kSecond]);
  const T* eps_in = static_cast<const T*>(p.in[kEps]);
  T* z = static_cast<T*>(p.out[kZ]);
  const int g = 1 << log_g;
  const int lane_g = threadIdx.x & (g - 1);
  const int group = threadIdx.x >> log_g;
  const int groups = kThreads >> log_g;
  const int64_t tiles = (p.rows + tile_rows - 1) / tile_rows;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t r0 = t * tile_rows;
    const int nr = static_cast<int>(min64(tile_rows, p.rows - r0));
    const int n = nr * d;
    __syncthreads();  // the previous tile's readers are done with s
    tile_setup(p, s, r0, nr, eps_in == nullptr, seed, offset);
    __syncthreads();
    if (eps_in != nullptr) {
      for (int idx = threadIdx.x; idx < n; idx += kThreads) {
        const int k = idx / d;
        s.eps[idx] = static_cast<F>(eps_in[s.off[2][k] + (idx - k * d)]);
      }
      __syncthreads();
    }
    // Item (k, i) = output z[r0 + k, i]; `base` is the same for the whole block, so every
    // lane of a warp reaches the shuffles the same number of times.
    for (int base = 0; base < n; base += groups) {
      const int item = base + group;
      const bool valid = item < n;
      const int k = valid ? item / d : 0;
      const int i = item - k * d;
      const T* l_row = l + s.off[1][k] + static_cast<int64_t>(i) * p.l_row_stride;
      F acc = F(0), sq = F(0);
      if (valid) {
        if constexpr (kStats) {
          stats::lower_row_dot_sq_strided<F>(l_row, i, s.eps + k * d, lane_g, g, acc, sq);
        } else {
          acc = chol::lower_row_dot_strided<F>(l_row, i, s.eps + k * d, lane_g, g);
        }
      }
      acc = group_sum(acc, g);
      if constexpr (kStats) sq = group_sum(sq, g);
      if (valid && lane_g == 0) {
        const F m = static_cast<F>(mu[s.off[0][k] + i]);
        z[(r0 + k) * d + i] = static_cast<T>(m + acc);
        if constexpr (kStats) {
          st.sq[item] = sq + m * m;
          st.ld[item] = stats::log_abs(static_cast<F>(l_row[i]));
        }
      }
    }
    if constexpr (kStats) {
      __syncthreads();  // every output's terms are in st
      tile_chol_stats(st, s.eps, nr, d, r0, static_cast<T*>(p.out[kKl]),
                      static_cast<T*>(p.out[kLogQ]));
    }
  }
}

template <class T, bool kStats>
__global__ void __launch_bounds__(kThreads)
    chol_bwd_small_kernel(Problem p, StreamSource src, int tile_rows,
                          int log_w, bool need_grad_eps) {
  using F = Acc<T>;
  __shared__ TileShared<F> s;
  __shared__ F g_s[kTileElems];  // grad_z of the tile
  __shared__ TileGrads<F, kStats> sg;
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const int d = static_cast<int>(p.d);
  if (d == 0) return;
  const T* gz = static_cast<const T*>(p.in[kFirst]);
  const T* l = static_cast<const T*>(p.in[kSecond]);
  const T* eps_in = static_cast<const T*>(p.in[kEps]);
  T* gl = static_cast<T*>(p.out[kGradSecond]);
  T* ge = static_cast<T*>(p.out[kGradEps]);
  const T* mu = static_cast<const T*>(p.in[kMu]);
  T* gm = static_cast<T*>(p.out[kGradMu]);
  const int w = 1 << log_w;
  const int lane_w = threadIdx.x & (w - 1);
  const int group = threadIdx.x >> log_w;
  const int groups = kThreads >> log_w;
  const int64_t tiles = (p.rows + tile_rows - 1) / tile_rows;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t r0 = t * tile_rows;
    const int nr = static_cast<int>(min64(tile_rows, p.rows - r0));
    const int n = nr * d;
    __syncthreads();  // the previous tile's readers are done with s
    tile_setup(p, s, r0, nr, eps_in == nullptr, seed, offset);
    if constexpr (kStats) {
      for (int k = threadIdx.x; k < nr; k += kThreads) {
        int64_t xo[3];  // grad_kl, grad_log_q, mu
        extra_offsets(p, r0 + k, xo);
        sg.gk[k] = static_cast<F>(static_cast<const T*>(p.in[kGradKl])[xo[0]]);
        sg.gq[k] = static_cast<F>(static_cast<const T*>(p.in[kGradLogQ])[xo[1]]);
        sg.mu_off[k] = xo[2];
      }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < n; idx += kThreads) {
      const int k = idx / d;
      const int j = idx - k * d;
      const F g = static_cast<F>(gz[s.off[0][k] + j]);
      g_s[idx] = g;
      if (eps_in != nullptr) s.eps[idx] = static_cast<F>(eps_in[s.off[2][k] + j]);
      if constexpr (kStats) {
        const F m = static_cast<F>(mu[sg.mu_off[k] + j]);
        gm[(r0 + k) * d + j] = static_cast<T>(stats::chol_grad_mu<F>(g, sg.gk[k], m));
      }
    }
    __syncthreads();
    // grad_L of the tile is contiguous: row q = k * D + i of it by a group of w lanes.
    T* gl_t = gl + r0 * d * d;
    for (int q = group; q < n; q += groups) {
      const int k = q / d;
      const int i = q - k * d;
      const F gi = g_s[q];
      const F* ek = s.eps + k * d;
      T* row = gl_t + static_cast<int64_t>(q) * d;
      if constexpr (kStats) {
        const T* l_row = l + s.off[1][k] + static_cast<int64_t>(i) * p.l_row_stride;
        const F gk = sg.gk[k], gq = sg.gq[k];
        for (int j = lane_w; j < d; j += w) {
          row[j] = static_cast<T>(stats::chol_grad_l<F>(gi, ek[j], gk, gq, l_row, i, j));
        }
      } else {
        for (int j = lane_w; j < d; j += w) row[j] = static_cast<T>(chol::grad_l(gi, ek[j], i, j));
      }
    }
    if (need_grad_eps) {
      // grad_eps[k, j] = sum_{i >= j} L[i, j] dz[i]: all lanes walk the same rows i, so a
      // warp reads consecutive columns of a row of L; i < j is skipped (never read).
      for (int idx = threadIdx.x; idx < n; idx += kThreads) {
        const int k = idx / d;
        const int j = idx - k * d;
        const T* lk = l + s.off[1][k];
        const F* gk = g_s + k * d;
        F acc = F(0);
        for (int i = 0; i < d; ++i) {
          if (i >= j) acc += static_cast<F>(lk[static_cast<int64_t>(i) * p.l_row_stride + j]) * gk[i];
        }
        if constexpr (kStats) acc = stats::chol_grad_eps_finish<F>(acc, sg.gq[k], s.eps[idx]);
        ge[(r0 + k) * d + j] = static_cast<T>(acc);
      }
    }
  }
}

}  // namespace cuda
}  // namespace fused_reparam
