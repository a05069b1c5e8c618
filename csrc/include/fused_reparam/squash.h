// The tanh squash of the diagonal op with the extras (docs/design.md, "Squashed samples"):
// the action a = low + half * (tanh(u) + 1), half = (high - low) / 2, of the Gaussian sample u,
// and the log-determinant its log-density loses, per element
//   log |da/du| = log(half) + log(1 - tanh(u)^2) = log(half) + log 4 - 2|u| - 2 log(1 + e^-2|u|),
// written so it stays exact where tanh(u) rounds to +-1 (|u| > 9 in float32): no atanh of the
// action and no epsilon. Shared by the C++ and CUDA kernels; F is the compute
// type or a SIMD vector of it, S its scalar.
#pragma once

#include "fused_reparam/elementary.h"
#include "fused_reparam/macros.h"
#include "fused_reparam/normal.h"

namespace fused_reparam {
namespace squash {

template <class S>
struct SquashConstants {
  static constexpr S kLog2 = S(0.69314718055994530942);
};

// The squash of one launch: a = low + half * (tanh(u) + 1), log_half = log(half).
template <class S>
struct Squash {
  bool on = false;
  S low = S(-1), half = S(1), log_half = S(0);
};

// tanh(u) and log(1 - tanh(u)^2) from e = e^(-2|u|) and m = expm1(-2|u|) (one exp and a fit
// in float: elementary.h):
//   |tanh(u)| = -m / (2 + m),  1 - tanh(u)^2 = 4 e / (2 + m)^2,
//   log(1 - tanh(u)^2) = log 4 - 2|u| - 2 log1p(e)  (2 + m = 1 + e, e in (0, 1]):
// exact for every u (no cancellation near 0, where m is small, nor where tanh(u) rounds to
// +-1), and cheaper than tanh, exp and log1p apart (log1p on [0, 1] is a fit in float).
template <class F>
struct TanhTerms {
  F tanh, dtanh, log_dtanh;  // tanh(u), 1 - tanh(u)^2, log(1 - tanh(u)^2) (with kWithLog)
  F tanh_plus_one;           // 1 + tanh(u), exact also where tanh(u) is near -1 (kWithLog)
};

template <class F, class S, bool kWithLog>
FR_HOST_DEVICE TanhTerms<F> tanh_terms(F u) {
  const F zero(S(0)), one(S(1)), two(S(2));
  const F a = MathOps<F>::select_gt(u, zero, u, zero - u);  // |u|
  F e, m;  // e^(-2|u|) and expm1(-2|u|)
  elementary::exp_expm1_nonpos<F, S>(zero - two * a, e, m);
  const F q = one / (two + m);
  const F th = (zero - m) * q;
  TanhTerms<F> t;
  t.tanh = MathOps<F>::select_gt(u, zero, th, zero - th);
  // With e itself (not 1 + m, which underflows to 0 first) 1 - tanh(u)^2 and, for u < 0,
  // 1 + tanh(u) = 2 e / (2 + m) keep their relative precision as tanh(u) nears +-1.
  t.dtanh = F(S(4)) * e * q * q;
  if constexpr (kWithLog) {
    t.log_dtanh = two * (F(SquashConstants<S>::kLog2) - a - elementary::log1p_unit<F, S>(e));
    t.tanh_plus_one = MathOps<F>::select_gt(u, zero, one + th, two * e * q);
  }
  return t;
}

// The action and the element's share of the row's log-determinant in the log q sum (which
// the row's finish scales by -1/2): 2 log |da/du| = 2 (log(1 - tanh(u)^2) + log(half)).
template <class F, class S>
FR_HOST_DEVICE void action_and_log_q_extra(F u, const Squash<S>& sq, F& action, F& extra) {
  const TanhTerms<F> t = tanh_terms<F, S, true>(u);
  action = F(sq.low) + F(sq.half) * t.tanh_plus_one;
  extra = F(S(2)) * (t.log_dtanh + F(sq.log_half));
}

// The gradient reaching u: dz through the action (da/du = half (1 - tanh(u)^2)), and gq
// through the log-determinant, whose derivative is d log(1 - tanh(u)^2) / du = -2 tanh(u)
// (log_prob subtracts it).
template <class F, class S>
FR_HOST_DEVICE F grad_u(F dz, F gq, F u, const Squash<S>& sq) {
  const TanhTerms<F> t = tanh_terms<F, S, false>(u);
  return dz * F(sq.half) * t.dtanh + F(S(2)) * gq * t.tanh;
}

}  // namespace squash
}  // namespace fused_reparam
