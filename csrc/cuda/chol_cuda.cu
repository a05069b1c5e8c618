// CUDA kernels of the Cholesky op z = mu + L eps: one launch forward, one backward.
//
// Small D (<= 64, the VAE range): a block takes a tile of rows (about 1K elements of the
// sample). Its threads first make the tile's noise together, each thread whole Philox groups
// (one call feeds four elements, nothing is computed twice), into shared memory, with the
// rows' operand offsets. Forward: a group of G lanes (G = 1..8, so a row of L takes at most
// about 8 steps) per output z[r, i]; the lanes read L[i, :i+1] strided by G (adjacent groups
// read adjacent rows of L) and add their parts with shuffles. Backward: a group of lanes per
// row of grad_L writes it contiguously; grad_eps[r, j] is one thread per j walking the rows
// of L, so a warp reads consecutive columns of one row.
//
// Large D (> 64): forward, a block per (row, 32 outputs), a warp per output (four per warp),
// L's rows read 32 columns at a time and the row's eps made in shared memory in chunks of
// 1024 columns, so any D works with fixed shared memory. Backward, a block per (row, 32
// columns of grad_L): each warp walks every 8th row of grad_L writing 32 contiguous columns
// and adds L[i, j] * dz[i] for grad_eps; the 8 warps' sums are added in a fixed order.
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

#include "common/chol_problem.h"
#include "common/diag_checks.h"
#include "cuda/rows_cuda.cuh"
#include "cuda/stream_cuda.cuh"
#include "fused_reparam/chol_math.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/philox.h"
#include "fused_reparam/stats_math.h"

namespace fused_reparam {
namespace cuda {
namespace {

constexpr const char* kFwd = "fused_reparam::chol_rsample";
constexpr const char* kBwd = "fused_reparam::chol_rsample_backward";

constexpr int kSmallMaxD = 64;      // up to this D the tile kernels run
constexpr int kTileElems = 1024;    // sample elements of one small-D tile (at most)
constexpr int kMaxTileRows = 256;   // rows of one small-D tile (at most)
constexpr int kChunk = 1024;        // eps columns per shared-memory chunk, large-D forward
constexpr int kOutsPerWarp = 4;     // large-D forward: outputs per warp per unit
constexpr int kFwdUnitOuts = kWarps * kOutsPerWarp;  // outputs of one large-D forward unit
constexpr int kBwdUnitCols = 32;    // columns of grad_L of one large-D backward unit

// Operand offsets of row r; one merged batch dim (the common case) needs no division.
__device__ __forceinline__ void row_offsets(const CholProblem& p, int64_t r, int64_t off[3]) {
  if (p.bdim <= 1) {
#pragma unroll
    for (int k = 0; k < 3; ++k) off[k] = r * p.bstrides[k][0];  // bdim 0: strides are 0
  } else {
    p.row_offsets(r, off);
  }
}

// ---- small D: tiles of rows --------------------------------------------------------------

// Per tile: operand offsets of its rows and its eps, in shared memory.
template <class F>
struct TileShared {
  F eps[kTileElems];
  int64_t off[3][kMaxTileRows];
};

// Offsets of rows [r0, r0 + nr), and eps from the stream when none is given. No sync.
template <class F>
__device__ __forceinline__ void tile_setup(const CholProblem& p, TileShared<F>& s, int64_t r0,
                                           int nr, bool stream, uint64_t seed,
                                           uint64_t offset) {
  for (int k = threadIdx.x; k < nr; k += blockDim.x) {
    int64_t off[3];
    row_offsets(p, r0 + k, off);
    s.off[0][k] = off[0];
    s.off[1][k] = off[1];
    s.off[2][k] = off[2];
  }
  if (stream) fill_stream_eps(s.eps, seed, offset, r0 * p.d, nr * static_cast<int>(p.d));
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
    chol_fwd_small_kernel(CholProblem p, CholStats x, StreamSource src, int tile_rows,
                          int log_g) {
  using F = Acc<T>;
  __shared__ TileShared<F> s;
  __shared__ TileStats<F, kStats> st;
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const int d = static_cast<int>(p.d);
  if (d == 0) return;
  const T* mu = static_cast<const T*>(p.in[0]);
  const T* l = static_cast<const T*>(p.in[1]);
  const T* eps_in = static_cast<const T*>(p.in[2]);
  T* z = static_cast<T*>(p.out[0]);
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
      tile_chol_stats(st, s.eps, nr, d, r0, static_cast<T*>(x.out[0]), static_cast<T*>(x.out[1]));
    }
  }
}

template <class T, bool kStats>
__global__ void __launch_bounds__(kThreads)
    chol_bwd_small_kernel(CholProblem p, CholStats x, StreamSource src, int tile_rows,
                          int log_w, bool need_grad_eps) {
  using F = Acc<T>;
  __shared__ TileShared<F> s;
  __shared__ F g_s[kTileElems];  // grad_z of the tile
  __shared__ TileGrads<F, kStats> sg;
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const int d = static_cast<int>(p.d);
  if (d == 0) return;
  const T* gz = static_cast<const T*>(p.in[0]);
  const T* l = static_cast<const T*>(p.in[1]);
  const T* eps_in = static_cast<const T*>(p.in[2]);
  T* gl = static_cast<T*>(p.out[0]);
  T* ge = static_cast<T*>(p.out[1]);
  const T* mu = static_cast<const T*>(x.in[0]);
  T* gm = static_cast<T*>(x.out[0]);
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
        int64_t xo[3];
        batch_offsets<3>(p.bdim, p.bsizes, x.bstrides, r0 + k, xo);
        sg.mu_off[k] = xo[0];
        sg.gk[k] = static_cast<F>(static_cast<const T*>(x.in[1])[xo[1]]);
        sg.gq[k] = static_cast<F>(static_cast<const T*>(x.in[2])[xo[2]]);
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

// ---- large D ----------------------------------------------------------------------------

// Outputs [i0, i0 + kFwdUnitOuts) of row r: a warp per output (four per warp), L's rows read
// 32 columns at a time against eps[0, i1) made in shared memory in chunks of kChunk. With the
// extras, adds this thread's shares of the row's L^2 + mu^2, log|L_ii| and eps^2 to `part`.
template <class T, bool kStats, class F>
__device__ __forceinline__ void fwd_large_slice(const CholProblem& p, const int64_t off[3],
                                                int64_t r, int64_t i0, uint64_t seed,
                                                uint64_t offset, F* eps_s, F part[3]) {
  const int64_t d = p.d;
  const T* mu = static_cast<const T*>(p.in[0]);
  const T* l = static_cast<const T*>(p.in[1]);
  const T* eps_in = static_cast<const T*>(p.in[2]);
  T* z = static_cast<T*>(p.out[0]);
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
    chol_fwd_large_kernel(CholProblem p, CholStats x, StreamSource src) {
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
    row_offsets(p, r, off);
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
        static_cast<T*>(x.out[0])[r] =
            static_cast<T>(stats::chol_kl_finish<F>(part[0], F(0), part[1], p.d));
        static_cast<T*>(x.out[1])[r] =
            static_cast<T>(stats::chol_log_q_finish<F>(part[2], part[1], p.d));
      }
    }
  }
}

template <class T, bool kStats>
__global__ void __launch_bounds__(kThreads)
    chol_bwd_large_kernel(CholProblem p, CholStats x, StreamSource src, bool need_grad_eps) {
  using F = Acc<T>;
  __shared__ F eps_s[kBwdUnitCols];
  __shared__ F part_s[kWarps][kBwdUnitCols];
  uint64_t seed, offset;
  resolve_stream(src, seed, offset);
  const int64_t d = p.d;
  const T* gz = static_cast<const T*>(p.in[0]);
  const T* l = static_cast<const T*>(p.in[1]);
  const T* eps_in = static_cast<const T*>(p.in[2]);
  T* gl = static_cast<T*>(p.out[0]);
  T* ge = static_cast<T*>(p.out[1]);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int64_t per_row = (d + kBwdUnitCols - 1) / kBwdUnitCols;
  const int64_t units = p.rows * per_row;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t r = u / per_row;
    const int64_t j0 = (u - r * per_row) * kBwdUnitCols;
    const int nj = static_cast<int>(min64(kBwdUnitCols, d - j0));
    int64_t off[3];
    row_offsets(p, r, off);
    int64_t mu_off = 0;
    F gk = F(0), gq = F(0);
    if constexpr (kStats) {
      int64_t xo[3];
      batch_offsets<3>(p.bdim, p.bsizes, x.bstrides, r, xo);
      mu_off = xo[0];
      gk = static_cast<F>(static_cast<const T*>(x.in[1])[xo[1]]);
      gq = static_cast<F>(static_cast<const T*>(x.in[2])[xo[2]]);
    }
    __syncthreads();  // the previous unit's readers are done with eps_s and part_s
    if (eps_in == nullptr) {
      fill_stream_eps(eps_s, seed, offset, r * d + j0, nj);
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
          const F m = static_cast<F>(static_cast<const T*>(x.in[0])[mu_off + i]);
          static_cast<T*>(x.out[0])[r * d + i] = static_cast<T>(stats::chol_grad_mu<F>(gi, gk, m));
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

// ---- host --------------------------------------------------------------------------------

int small_tile_rows(int64_t d) {
  return static_cast<int>(min64(kMaxTileRows, std::max<int64_t>(1, kTileElems / d)));
}

template <class T, bool kStats>
void launch_forward_as(const CholProblem& p, const CholStats& x, const StreamSource& src) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (p.d <= kSmallMaxD) {
    // G lanes per output: a row of L takes at most about 8 steps of G columns.
    const int tile_rows = p.d == 0 ? 1 : small_tile_rows(p.d);
    const int log_g = ceil_log2((p.d + 7) / 8);
    const int64_t tiles = (p.rows + tile_rows - 1) / tile_rows;
    chol_fwd_small_kernel<T, kStats>
        <<<grid_for(tiles), kThreads, 0, stream>>>(p, x, src, tile_rows, log_g);
  } else {
    const int64_t per_row = (p.d + kFwdUnitOuts - 1) / kFwdUnitOuts;
    const int64_t units = kStats ? p.rows : p.rows * per_row;
    chol_fwd_large_kernel<T, kStats><<<grid_for(units), kThreads, 0, stream>>>(p, x, src);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class T, bool kStats>
void launch_backward_as(const CholProblem& p, const CholStats& x, const StreamSource& src,
                        bool need_grad_eps) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (p.d <= kSmallMaxD) {
    // w lanes (the power of two >= D, at most 32) write one row of grad_L.
    const int tile_rows = small_tile_rows(p.d);
    const int log_w = std::min(5, ceil_log2(p.d));
    const int64_t tiles = (p.rows + tile_rows - 1) / tile_rows;
    chol_bwd_small_kernel<T, kStats><<<grid_for(tiles), kThreads, 0, stream>>>(
        p, x, src, tile_rows, log_w, need_grad_eps);
  } else {
    const int64_t units = p.rows * ((p.d + kBwdUnitCols - 1) / kBwdUnitCols);
    chol_bwd_large_kernel<T, kStats>
        <<<grid_for(units), kThreads, 0, stream>>>(p, x, src, need_grad_eps);
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
  CholProblem p;
  std::array<at::Tensor, 3> keep;
  if (z.numel() != 0) {
    p = make_chol_problem(shape, mu, scale_tril, eps, keep);
    p.out[0] = z.mutable_data_ptr();
  }
  launch_chol_forward(p, nullptr, mu.scalar_type(), src);
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
  std::array<at::Tensor, 3> keep;
  CholProblem p = make_chol_problem(shape, grad_z, scale_tril, eps, keep);
  p.out[0] = grad_l.mutable_data_ptr();
  p.out[1] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  at::Tensor so_in;
  const StreamSource src = stream_source(eps.has_value(), seed_offset, std::nullopt,
                                         grad_z.device(), so_in);
  launch_chol_backward(p, nullptr, grad_z.scalar_type(), src, need_grad_eps);
  return {grad_l, grad_eps};
}

}  // namespace

void launch_chol_forward(const CholProblem& p, const CholStats* stats, at::ScalarType dtype,
                         const StreamSource& src) {
  const CholStats x = stats != nullptr ? *stats : CholStats{};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "chol_rsample_cuda", [&] {
    if (stats != nullptr) {
      launch_forward_as<scalar_t, true>(p, x, src);
    } else {
      launch_forward_as<scalar_t, false>(p, x, src);
    }
  });
}

void launch_chol_backward(const CholProblem& p, const CholStats* stats, at::ScalarType dtype,
                          const StreamSource& src, bool need_grad_eps) {
  const CholStats x = stats != nullptr ? *stats : CholStats{};
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, dtype, "chol_rsample_backward_cuda", [&] {
        if (stats != nullptr) {
          launch_backward_as<scalar_t, true>(p, x, src, need_grad_eps);
        } else {
          launch_backward_as<scalar_t, false>(p, x, src, need_grad_eps);
        }
      });
}

}  // namespace cuda
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CUDA, m) {
  m.impl("chol_rsample", &fused_reparam::cuda::chol_rsample_cuda);
  m.impl("chol_rsample_backward", &fused_reparam::cuda::chol_rsample_backward_cuda);
}
