// The CPU row kernels of the Cholesky op with the VAE extras (chol_rsample_stats and its
// backward op), written once and compiled per instruction set (isa/*.cpp), on the helpers of
// stats_cpu_kernels_impl.h and the Cholesky kernels' row helpers.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "cpu/stats_cpu_kernels_impl.h"

namespace fused_reparam {
namespace cpu {
inline namespace CPU_CAPABILITY {
namespace stats_rows {

using chol_rows::row_eps;

// Runs body(r, k, at, eps) for rows [r0, r1), noise made a chunk of rows at a time.
template <class T, class S, class Body>
void for_rows(const Problem& p, int64_t r0, int64_t r1, S* eps_scratch, Body&& body) {
  ChunkNoise<S> noise;
  RowCursor<kOperands> at(p, r0);
  for (int64_t c0 = r0; c0 < r1; c0 += chunk_rows(p)) {
    const int64_t c1 = std::min(r1, c0 + chunk_rows(p));
    if (p.in[kEps] == nullptr) noise.fill(p, c0, c1);
    for (int64_t r = c0; r < c1; ++r, at.next(p)) {
      body(r, at, row_eps<T, S>(p, at.off[kEps], noise, r - c0, eps_scratch));
    }
  }
}

// ---- Cholesky op

// sum_{j < n} l[j]^2 as a vector of partial sums (partial loads: nothing past n is read).
template <class T, class S>
Vectorized<S> square_lanes(const T* l, int64_t n) {
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  C acc(S(0));
  for (int64_t j = 0; j < n; j += kW) {
    const C v = chol_rows::load<T, C>(l + j, std::min(kW, n - j));
    acc = at::vec::fmadd(v, v, acc);
  }
  return acc;
}

template <class T>
void chol_forward_rows(const Problem& p, int64_t r0, int64_t r1) {
  using S = typename ComputeType<T>::type;
  const int64_t d = p.d;
  const int64_t ls = p.l_row_stride;
  RowBuffers<S> buf(d);
  std::vector<T> mu_t(p.dstride[kFirst] == 1 ? 0 : d);
  T* z = static_cast<T*>(p.out[kZ]);
  T* kl = static_cast<T*>(p.out[kKl]);
  T* log_q = static_cast<T*>(p.out[kLogQ]);
  for_rows<T, S>(p, r0, r1, buf.e.data(), [&](int64_t r, const RowCursor<kOperands>& at, const S* eps) {
    const T* mu = operand<T>(p, kFirst, at);
    if (p.dstride[kFirst] != 1) {  // the matvec reads mu with unit stride
      gather_row<T, T>(mu_t.data(), mu, p.dstride[kFirst], d);
      mu = mu_t.data();
    }
    const T* l = operand<T>(p, kSecond, at);
    chol_rows::matvec_row<T, S>(z + r * d, mu, l, ls, eps, d);
    Vectorized<S> l_sq(S(0));
    S mu_sq = S(0), eps_sq = S(0), log_det = S(0);
    for (int64_t i = 0; i < d; ++i) {
      l_sq = l_sq + square_lanes<T, S>(l + i * ls, i + 1);
      const S m = static_cast<S>(mu[i]);
      mu_sq += m * m;
      eps_sq += eps[i] * eps[i];
      log_det += stats::log_abs<S>(static_cast<S>(l[i * ls + i]));
    }
    kl[r] = static_cast<T>(stats::chol_kl_finish<S>(hsum(l_sq), mu_sq, log_det, d));
    log_q[r] = static_cast<T>(stats::chol_log_q_finish<S>(eps_sq, log_det, d));
  });
}

// Row i of grad_L into out[0, d): dz_i eps_j + gk L_ij for j < i, the diagonal term at j = i,
// zeros above it (whose L is never read).
template <class T, class S>
void grad_l_row(S* out, S g_i, const S* eps, const T* l_i, S gk, S gq, int64_t i, int64_t d,
                const chol_rows::LaneMasks<S>& masks) {
  using C = Vectorized<S>;
  const C g(g_i), k(gk);
  chol_rows::store_lower_row<S>(out, i, d, masks, [&](int64_t j, int64_t n) {
    const C e = n == C::size() ? C::loadu(eps + j) : C::loadu(eps + j, n);
    return stats::chol_grad_l_lower<C>(g, e, k, chol_rows::load<T, C>(l_i + j, n));
  });
  out[i] = stats::chol_grad_l_diag<S>(g_i, eps[i], gk, gq, static_cast<S>(l_i[i]));
}

template <class T>
void chol_backward_rows(const Problem& p, int64_t r0, int64_t r1) {
  using S = typename ComputeType<T>::type;
  const int64_t d = p.d;
  const int64_t ls = p.l_row_stride;
  RowBuffers<S> buf(d);
  std::vector<S> row(d);
  const chol_rows::LaneMasks<S> masks;
  T* g_mu = static_cast<T*>(p.out[kGradMu]);
  T* g_l = static_cast<T*>(p.out[kGradSecond]);
  T* g_eps = static_cast<T*>(p.out[kGradEps]);
  for_rows<T, S>(p, r0, r1, buf.e.data(), [&](int64_t r, const RowCursor<kOperands>& at, const S* eps) {
    S* g = buf.a.data();
    gather_row<T, S>(g, operand<T>(p, kFirst, at), p.dstride[kFirst], d);
    gather_row<T, S>(buf.c.data(), operand<T>(p, kMu, at), p.dstride[kMu], d);
    const S gk = static_cast<S>(*operand<T>(p, kGradKl, at));
    const S gq = static_cast<S>(*operand<T>(p, kGradLogQ, at));
    const T* l = operand<T>(p, kSecond, at);
    for (int64_t j = 0; j < d; ++j) buf.o0[j] = stats::diag_grad_mu<S>(g[j], gk, buf.c[j]);
    chol_rows::store_row(g_mu + r * d, buf.o0.data(), d);
    T* gl_r = g_l + r * d * d;
    for (int64_t i = 0; i < d; ++i) {
      if constexpr (std::is_same_v<T, S>) {
        grad_l_row<T, S>(gl_r + i * d, g[i], eps, l + i * ls, gk, gq, i, d, masks);
      } else {
        grad_l_row<T, S>(row.data(), g[i], eps, l + i * ls, gk, gq, i, d, masks);
        chol_rows::store_row(gl_r + i * d, row.data(), d);
      }
    }
    if (g_eps != nullptr) {
      S* deps = buf.o2.data();
      std::fill(deps, deps + d, S(0));
      for (int64_t i = 0; i < d; ++i) chol_rows::axpy_row<T, S>(deps, l + i * ls, g[i], i + 1);
      for (int64_t j = 0; j < d; ++j) deps[j] = stats::chol_grad_eps_finish<S>(deps[j], gq, eps[j]);
      chol_rows::store_row(g_eps + r * d, deps, d);
    }
  });
}

}  // namespace stats_rows
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fused_reparam
