// The CPU row kernels of the diagonal ops with VAE extras (diag_rsample_stats and its backward
// op; the Cholesky ones are in chol_stats_cpu_kernels_impl.h), written once and compiled per
// instruction set (isa/*.cpp, after the diag and chol kernels, whose noise, partial loads and
// row helpers they use). A task takes a range of sample rows, in chunks whose elements are
// contiguous (so the math runs over whole vectors even when D is a few lanes); each row's
// operands are read once, its KL and log q terms summed in vectors, and the per-element math
// comes from the shared headers (scale.h, squash.h, stats_math.h).
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "common/problem.h"
#include "cpu/chol_cpu_backward_impl.h"
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

// Per-task buffers of n elements (a row, or a chunk of rows) in the compute type.
template <class S>
struct RowBuffers {
  std::vector<S> a, b, c, e, k, q, o0, o1, o2;
  explicit RowBuffers(int64_t n)
      : a(n), b(n), c(n), e(n), k(n), q(n), o0(n), o1(n), o2(n) {}
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

// ---- diagonal op

// sum_{j < d} t[j], accumulated as vector lanes (partial loads: nothing past d is read).
template <class S>
S row_sum(const S* t, int64_t d) {
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  C acc(S(0));
  for (int64_t j = 0; j < d; j += kW) acc = acc + C::loadu(t + j, std::min(kW, d - j));
  return hsum(acc);
}

// Where a chunk's outputs are written: straight into the (contiguous) output when it holds
// the compute type, else into buf, which finish_chunk converts into the output.
template <class T, class S>
S* chunk_out(T* out, int64_t at, S* buf) {
  if constexpr (std::is_same_v<T, S>) {
    return out + at;
  } else {
    return buf;
  }
}

template <class T, class S>
void finish_chunk(T* out, int64_t at, const S* buf, int64_t n) {
  if constexpr (!std::is_same_v<T, S>) chol_rows::store_row(out + at, buf, n);
}

// Runs body(c0, n, in, eps) for the chunks of rows [r0, r1), in[i] the chunk's rows of operand
// ks[i] as n = rows * d contiguous elements (row k at k * d), so the per-element math runs
// over whole vectors even when D is a few lanes: the operand itself where its rows are
// contiguous in the compute type, else gathered into buffers[i]. eps is the chunk's noise,
// or the given eps gathered into eps_buf.
template <class T, class S, int N, class Body>
void for_chunks(const Problem& p, int64_t r0, int64_t r1, const int (&ks)[N],
                S* const (&buffers)[N], S* eps_buf, Body&& body) {
  ChunkNoise<S> noise;
  RowCursor<kOperands> at(p, r0);
  const int64_t d = p.d;
  bool dense[N];
  for (int i = 0; i < N; ++i) {
    dense[i] = p.bdim == 1 && p.bstrides[ks[i]][0] == d && p.dstride[ks[i]] == 1;
  }
  const S* in[N];
  for (int64_t c0 = r0; c0 < r1; c0 += chunk_rows(p)) {
    const int64_t c1 = std::min(r1, c0 + chunk_rows(p));
    const int64_t n = (c1 - c0) * d;
    if (p.in[kEps] == nullptr) noise.fill(p, c0, c1);
    for (int i = 0; i < N; ++i) {
      in[i] = buffers[i];
      if (!dense[i]) continue;
      if constexpr (std::is_same_v<T, S>) {
        in[i] = operand<T>(p, ks[i], at);
      } else {
        gather_row<T, S>(buffers[i], operand<T>(p, ks[i], at), 1, n);
      }
    }
    for (int64_t r = c0; r < c1; ++r, at.next(p)) {
      const int64_t k = r - c0;
      for (int i = 0; i < N; ++i) {
        if (dense[i]) continue;
        gather_row<T, S>(buffers[i] + k * d, operand<T>(p, ks[i], at), p.dstride[ks[i]], d);
      }
      if (p.in[kEps] != nullptr) {
        gather_row<T, S>(eps_buf + k * d, operand<T>(p, kEps, at), p.dstride[kEps], d);
      }
    }
    body(c0, n, in, p.in[kEps] != nullptr ? static_cast<const S*>(eps_buf) : noise.rows);
  }
}

// The scale's kind a compile-time constant of each instantiation (kKind): its branches fold
// away in the per-element loops (a run-time kind costs these kernels about 10% at 2^20).
template <class T, int kKind>
void diag_forward_rows_of(const Problem& p, int64_t r0, int64_t r1) {
  using S = typename ComputeType<T>::type;
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  const int64_t d = p.d;
  RowBuffers<S> buf(chunk_rows(p) * d);
  T* z = static_cast<T*>(p.out[kZ]);
  T* kl = static_cast<T*>(p.out[kKl]);
  T* log_q = static_cast<T*>(p.out[kLogQ]);
  const scale::Scale<S> sc{kKind, static_cast<S>(p.min_scale)};
  const squash::Squash<S> sq = squash_of<S>(p);
  // sc and sq copied in: as references their fields could alias the float buffers' stores,
  // and would be loaded again for every vector.
  for_chunks<T, S, 2>(p, r0, r1, {kFirst, kSecond}, {buf.a.data(), buf.b.data()},
                      buf.e.data(),
                      [&, sc, sq](int64_t c0, int64_t n, const S* const* in, const S* eps) {
    S* const z_out = chunk_out(z, c0 * d, buf.o0.data());
    for (int64_t j = 0; j < n; j += kW) {
      const int64_t c = std::min(kW, n - j);
      const C mu = C::loadu(in[0] + j, c);
      const C s = C::loadu(in[1] + j, c);
      const C e = C::loadu(eps + j, c);
      const C sigma = scale::sigma<C, S>(s, sc);
      const C lv = scale::log_var<C, S>(s, sigma, sc);
      const C u = diag::sample<C>(mu, sigma, e);
      C out = u, lqt = stats::diag_log_q_term<C>(e, lv);
      if (sq.on) {
        C extra;
        squash::action_and_log_q_extra<C, S>(u, sq, out, extra);
        lqt = lqt + extra;
      }
      out.store(z_out + j, c);
      stats::diag_kl_term<C>(mu, sigma, lv).store(buf.o1.data() + j, c);
      lqt.store(buf.o2.data() + j, c);
    }
    finish_chunk(z, c0 * d, z_out, n);
    for (int64_t k = 0; k < n / d; ++k) {
      kl[c0 + k] = static_cast<T>(stats::diag_kl_finish<S>(row_sum(buf.o1.data() + k * d, d)));
      log_q[c0 + k] =
          static_cast<T>(stats::diag_log_q_finish<S>(row_sum(buf.o2.data() + k * d, d), d));
    }
  });
}

template <class T, int kKind>
void diag_backward_rows_of(const Problem& p, int64_t r0, int64_t r1) {
  using S = typename ComputeType<T>::type;
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  const int64_t d = p.d;
  RowBuffers<S> buf(chunk_rows(p) * d);
  T* g_mu = static_cast<T*>(p.out[kGradMu]);
  T* g_s = static_cast<T*>(p.out[kGradSecond]);
  T* g_eps = static_cast<T*>(p.out[kGradEps]);
  const scale::Scale<S> sc{kKind, static_cast<S>(p.min_scale)};
  const squash::Squash<S> sq = squash_of<S>(p);
  // Each element's row gradients gk and gq, spread over the row (stride 0 along D).
  for_chunks<T, S, 5>(p, r0, r1, {kFirst, kSecond, kMu, kGradKl, kGradLogQ},
                      {buf.a.data(), buf.b.data(), buf.c.data(), buf.k.data(), buf.q.data()},
                      buf.e.data(),
                      [&, sc, sq](int64_t c0, int64_t n, const S* const* in, const S* eps) {
    S* const o_mu = chunk_out(g_mu, c0 * d, buf.o0.data());
    S* const o_s = chunk_out(g_s, c0 * d, buf.o1.data());
    S* const o_eps = g_eps != nullptr ? chunk_out(g_eps, c0 * d, buf.o2.data()) : nullptr;
    for (int64_t j = 0; j < n; j += kW) {
      const int64_t c = std::min(kW, n - j);
      C dz = C::loadu(in[0] + j, c);
      const C s = C::loadu(in[1] + j, c);
      const C mu = C::loadu(in[2] + j, c);
      const C gk = C::loadu(in[3] + j, c);
      const C gq = C::loadu(in[4] + j, c);
      const C e = C::loadu(eps + j, c);
      const C base = scale::sigma_base<C, S>(s, sc);
      const C sigma = base + C(sc.min);
      // Squashed: the gradient reaching u through the action and the log-determinant.
      if (sq.on) dz = squash::grad_u<C, S>(dz, gq, diag::sample<C>(mu, sigma, e), sq);
      const C dsig = scale::dsigma<C, S>(s, base, sc);
      const C dlog = scale::dlog_sigma<C, S>(s, sigma, dsig, sc);
      stats::diag_grad_mu<C>(dz, gk, mu).store(o_mu + j, c);
      stats::diag_grad_scale<C>(dz, gk, gq, sigma, dsig, dlog, e).store(o_s + j, c);
      if (g_eps != nullptr) stats::diag_grad_eps<C>(dz, gq, sigma, e).store(o_eps + j, c);
    }
    finish_chunk(g_mu, c0 * d, o_mu, n);
    finish_chunk(g_s, c0 * d, o_s, n);
    if (g_eps != nullptr) finish_chunk(g_eps, c0 * d, o_eps, n);
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

}  // namespace stats_rows
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fused_reparam
