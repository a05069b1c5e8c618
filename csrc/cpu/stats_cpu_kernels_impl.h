// The CPU row kernels of the ops with VAE extras (diag_rsample_stats, chol_rsample_stats and
// their backward ops), written once and compiled per instruction set (isa/*.cpp, after the
// diag and chol kernels, whose noise, partial loads and row helpers they use). A task takes a
// range of sample rows; each row's operands are read once, its KL and log q terms summed in
// vectors, and the per-element math comes from the shared fused_reparam/stats_math.h.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "common/problem.h"
#include "cpu/chol_cpu_kernels_impl.h"
#include "cpu/diag_cpu_kernels_impl.h"
#include "fused_reparam/diag_math.h"
#include "fused_reparam/squash.h"
#include "fused_reparam/stats_math.h"

namespace fused_reparam {
namespace cpu {
inline namespace CPU_CAPABILITY {
namespace stats_rows {

using chol_rows::chunk_rows;
using chol_rows::ChunkNoise;
using chol_rows::gather_row;
using chol_rows::hsum;
using chol_rows::row_eps;

// Per-task buffers of one row in the compute type.
template <class S>
struct RowBuffers {
  std::vector<S> a, b, c, e, o0, o1, o2;
  explicit RowBuffers(int64_t d)
      : a(d), b(d), c(d), e(d), o0(d), o1(d), o2(d) {}
};

template <class T>
const T* operand(const Problem& p, int k, const RowCursor<kOperands>& at) {
  return static_cast<const T*>(p.in[k]) + at.off[k];
}

// The launch's tanh squash in the compute type (the half range and its log taken in double).
template <class S>
squash::Squash<S> squash_of(const Problem& p) {
  const double half = 0.5 * (p.high - p.low);
  return {p.squash, static_cast<S>(p.low), static_cast<S>(half), static_cast<S>(std::log(half))};
}

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

// ---- diagonal op

// The scale's kind a compile-time constant of each instantiation (kKind): its branches fold
// away in the per-element loops (a run-time kind costs these kernels about 10% at 2^20).
template <class T, int kKind>
void diag_forward_rows_of(const Problem& p, int64_t r0, int64_t r1) {
  using S = typename ComputeType<T>::type;
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  const int64_t d = p.d;
  RowBuffers<S> buf(d);
  T* z = static_cast<T*>(p.out[kZ]);
  T* kl = static_cast<T*>(p.out[kKl]);
  T* log_q = static_cast<T*>(p.out[kLogQ]);
  const scale::Scale<S> sc{kKind, static_cast<S>(p.min_scale)};
  const squash::Squash<S> sq = squash_of<S>(p);
  // sc and sq copied in: as references their fields could alias the float buffers' stores,
  // and would be loaded again for every vector.
  for_rows<T, S>(p, r0, r1, buf.e.data(), [&, sc, sq](int64_t r, const RowCursor<kOperands>& at, const S* eps) {
    gather_row<T, S>(buf.a.data(), operand<T>(p, kFirst, at), p.dstride[kFirst], d);
    gather_row<T, S>(buf.b.data(), operand<T>(p, kSecond, at), p.dstride[kSecond], d);
    C kl_acc(S(0)), lq_acc(S(0));
    for (int64_t j = 0; j < d; j += kW) {
      const int64_t c = std::min(kW, d - j);
      const C mu = C::loadu(buf.a.data() + j, c);
      const C s = C::loadu(buf.b.data() + j, c);
      const C e = C::loadu(eps + j, c);
      const C sigma = scale::sigma<C, S>(s, sc);
      const C lv = scale::log_var<C, S>(s, sigma, sc);
      const C u = diag::sample<C>(mu, sigma, e);
      (sq.on ? squash::action<C, S>(u, sq) : u).store(buf.o0.data() + j, c);
      // Lanes past the row's end hold zeros; their terms are masked out of the sums.
      C klt = stats::diag_kl_term<C>(mu, sigma, lv);
      C lqt = stats::diag_log_q_term<C>(e, lv);
      if (sq.on) lqt = lqt + squash::log_q_extra<C, S>(u, sq);
      if (c < kW) {
        klt = C::set(C(S(0)), klt, c);
        lqt = C::set(C(S(0)), lqt, c);
      }
      kl_acc = kl_acc + klt;
      lq_acc = lq_acc + lqt;
    }
    chol_rows::store_row(z + r * d, buf.o0.data(), d);
    kl[r] = static_cast<T>(stats::diag_kl_finish<S>(hsum(kl_acc)));
    log_q[r] = static_cast<T>(stats::diag_log_q_finish<S>(hsum(lq_acc), d));
  });
}

template <class T, int kKind>
void diag_backward_rows_of(const Problem& p, int64_t r0, int64_t r1) {
  using S = typename ComputeType<T>::type;
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  const int64_t d = p.d;
  RowBuffers<S> buf(d);
  T* g_mu = static_cast<T*>(p.out[kGradMu]);
  T* g_s = static_cast<T*>(p.out[kGradSecond]);
  T* g_eps = static_cast<T*>(p.out[kGradEps]);
  const scale::Scale<S> sc{kKind, static_cast<S>(p.min_scale)};
  const squash::Squash<S> sq = squash_of<S>(p);
  // sc and sq copied in: as references their fields could alias the float buffers' stores,
  // and would be loaded again for every vector.
  for_rows<T, S>(p, r0, r1, buf.e.data(), [&, sc, sq](int64_t r, const RowCursor<kOperands>& at, const S* eps) {
    gather_row<T, S>(buf.a.data(), operand<T>(p, kFirst, at), p.dstride[kFirst], d);
    gather_row<T, S>(buf.b.data(), operand<T>(p, kSecond, at), p.dstride[kSecond], d);
    gather_row<T, S>(buf.c.data(), operand<T>(p, kMu, at), p.dstride[kMu], d);
    const C gk(static_cast<S>(*operand<T>(p, kGradKl, at)));
    const C gq(static_cast<S>(*operand<T>(p, kGradLogQ, at)));
    for (int64_t j = 0; j < d; j += kW) {
      const int64_t c = std::min(kW, d - j);
      C dz = C::loadu(buf.a.data() + j, c);
      const C s = C::loadu(buf.b.data() + j, c);
      const C mu = C::loadu(buf.c.data() + j, c);
      const C e = C::loadu(eps + j, c);
      const C sigma = scale::sigma<C, S>(s, sc);
      // Squashed: the gradient reaching u through the action and the log-determinant.
      if (sq.on) dz = squash::grad_u<C, S>(dz, gq, diag::sample<C>(mu, sigma, e), sq);
      const C dsig = scale::dsigma<C, S>(s, sigma, sc);
      const C dlog = scale::dlog_sigma<C, S>(s, sigma, dsig, sc);
      stats::diag_grad_mu<C>(dz, gk, mu).store(buf.o0.data() + j, c);
      stats::diag_grad_scale<C>(dz, gk, gq, sigma, dsig, dlog, e).store(buf.o1.data() + j, c);
      if (g_eps != nullptr) stats::diag_grad_eps<C>(dz, gq, sigma, e).store(buf.o2.data() + j, c);
    }
    chol_rows::store_row(g_mu + r * d, buf.o0.data(), d);
    chol_rows::store_row(g_s + r * d, buf.o1.data(), d);
    if (g_eps != nullptr) chol_rows::store_row(g_eps + r * d, buf.o2.data(), d);
  });
}

// The row kernels of the launch's scale kind.
template <class T>
void diag_forward_rows(const Problem& p, int64_t r0, int64_t r1) {
  switch (p.scale) {
    case scale::kLogStd: return diag_forward_rows_of<T, scale::kLogStd>(p, r0, r1);
    case scale::kStd: return diag_forward_rows_of<T, scale::kStd>(p, r0, r1);
    case scale::kSoftplus: return diag_forward_rows_of<T, scale::kSoftplus>(p, r0, r1);
    default: return diag_forward_rows_of<T, scale::kLogvar>(p, r0, r1);
  }
}

template <class T>
void diag_backward_rows(const Problem& p, int64_t r0, int64_t r1) {
  switch (p.scale) {
    case scale::kLogStd: return diag_backward_rows_of<T, scale::kLogStd>(p, r0, r1);
    case scale::kStd: return diag_backward_rows_of<T, scale::kStd>(p, r0, r1);
    case scale::kSoftplus: return diag_backward_rows_of<T, scale::kSoftplus>(p, r0, r1);
    default: return diag_backward_rows_of<T, scale::kLogvar>(p, r0, r1);
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
    chol_rows::lower_matvec_row<T, S>(z + r * d, mu, l, ls, eps, d);
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
