// The VAE extras of both ops (docs/design.md), shared by every C++ and CUDA kernel: per
// element terms that a kernel sums over a row, the row's finish, and the gradient terms of
// the fused backward. F is the compute type (float for half types, double for double) or a
// SIMD vector of it; S its scalar type.
#pragma once

#include "fused_reparam/macros.h"
#include "fused_reparam/normal.h"

namespace fused_reparam {
namespace stats {

template <class S>
struct StatsConstants {
  static constexpr S kLog2Pi = S(1.83787706640934548356);  // log(2 pi)
};

// ---- diagonal op, with lv = 2 log sigma (scale::log_var; the input itself for logvar):
//      kl = 0.5 * sum(mu^2 + sigma^2 - 1 - lv), log_q = -0.5 * sum(eps^2 + lv + log 2pi)

// The KL term of one element: mu^2 + sigma^2 - 1 - lv (the row sum is halved at the end).
template <class F>
FR_HOST_DEVICE F diag_kl_term(F mu, F sigma, F lv) {
  return mu * mu + sigma * sigma - F(1) - lv;
}

// The log q term of one element: eps^2 + lv (the row adds D log 2pi and scales by -0.5).
template <class F>
FR_HOST_DEVICE F diag_log_q_term(F eps, F lv) {
  return eps * eps + lv;
}

template <class S>
FR_HOST_DEVICE S diag_kl_finish(S kl_sum) {
  return S(0.5) * kl_sum;
}

template <class S>
FR_HOST_DEVICE S diag_log_q_finish(S log_q_sum, int64_t d) {
  return S(-0.5) * (log_q_sum + S(d) * StatsConstants<S>::kLog2Pi);
}

// grad_mu = dz + gk * mu
template <class F>
FR_HOST_DEVICE F diag_grad_mu(F dz, F gk, F mu) {
  return dz + gk * mu;
}

// The scale input's gradient, with sigma' = d sigma / ds and dlog = d log sigma / ds:
//   ds = sigma' * (dz * eps + gk * sigma) - dlog * (gk + gq)
// (for logvar: 0.5 * (dz * sigma * eps + gk * (sigma^2 - 1) - gq)).
template <class F>
FR_HOST_DEVICE F diag_grad_scale(F dz, F gk, F gq, F sigma, F dsigma, F dlog, F eps) {
  return dsigma * (dz * eps + gk * sigma) - dlog * (gk + gq);
}

// grad_eps = dz * sigma - gq * eps
template <class F>
FR_HOST_DEVICE F diag_grad_eps(F dz, F gq, F sigma, F eps) {
  return dz * sigma - gq * eps;
}

// ---- Cholesky op, with ld = sum_i log|L_ii|:
//      kl = 0.5 * (sum_{j <= i} L_ij^2 + sum_i mu_i^2 - D) - ld
//      log_q = -0.5 * sum_i eps_i^2 - ld - 0.5 * D * log 2pi

template <class S>
FR_HOST_DEVICE S log_abs(S x) {
  return MathOps<S>::log(x < S(0) ? -x : x);
}

template <class S>
FR_HOST_DEVICE S chol_kl_finish(S l_sq_sum, S mu_sq_sum, S log_det, int64_t d) {
  return S(0.5) * (l_sq_sum + mu_sq_sum - S(d)) - log_det;
}

template <class S>
FR_HOST_DEVICE S chol_log_q_finish(S eps_sq_sum, S log_det, int64_t d) {
  return S(-0.5) * eps_sq_sum - log_det - S(0.5) * S(d) * StatsConstants<S>::kLog2Pi;
}

// grad_L[i, j] for j <= i: dz_i * eps_j + gk * L_ij, and on the diagonal also
// - (gk + gq) / L_ii. (Zero above the diagonal.)
template <class F>
FR_HOST_DEVICE F chol_grad_l_lower(F dz_i, F eps_j, F gk, F l_ij) {
  return dz_i * eps_j + gk * l_ij;
}

template <class F>
FR_HOST_DEVICE F chol_grad_l_diag(F dz_i, F eps_i, F gk, F gq, F l_ii) {
  return dz_i * eps_i + gk * l_ii - (gk + gq) / l_ii;
}

// grad_eps = L^T dz - gq * eps: the kernels add -gq * eps_j to the L^T dz they sum.
template <class F>
FR_HOST_DEVICE F chol_grad_eps_finish(F lt_dz_j, F gq, F eps_j) {
  return lt_dz_j - gq * eps_j;
}

// grad_mu = dz + gk * mu (the same formula as the diagonal op's).
template <class F>
FR_HOST_DEVICE F chol_grad_mu(F dz, F gk, F mu) {
  return diag_grad_mu<F>(dz, gk, mu);
}

// grad_L[i, j] of any (i, j): the two formulas above, 0 above the diagonal. `l_row` is row i
// of L (unit column stride); only l_row[j] with j <= i is read.
template <class F, class T, class I>
FR_HOST_DEVICE F chol_grad_l(F dz_i, F eps_j, F gk, F gq, const T* l_row, I i, I j) {
  if (j > i) return F(0);
  const F l_ij = static_cast<F>(l_row[j]);
  return j < i ? chol_grad_l_lower<F>(dz_i, eps_j, gk, l_ij)
               : chol_grad_l_diag<F>(dz_i, eps_j, gk, gq, l_ij);
}

// Adds a strided share of row i's dot product with eps (chol::lower_row_dot_strided, summed
// from zero first) to `dot`, and of its squared entries (the KL's |tril L|^2) to `sq`, from one
// read of L: j = first, first + step, ... while j <= last.
template <class F, class T, class I>
FR_HOST_DEVICE void lower_row_dot_sq_strided(const T* l_row, I last, const F* eps, I first,
                                             I step, F& dot, F& sq) {
  F a = F(0), b = F(0);
  for (I j = first; j <= last; j += step) {
    const F l = static_cast<F>(l_row[j]);
    a += l * eps[j];
    b += l * l;
  }
  dot += a;
  sq += b;
}

}  // namespace stats
}  // namespace fused_reparam
