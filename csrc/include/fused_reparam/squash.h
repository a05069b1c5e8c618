// The tanh squash of the diagonal op with the extras (docs/design.md, "Squashed samples"):
// the action a = low + half * (tanh(u) + 1), half = (high - low) / 2, of the Gaussian sample u,
// and the log-determinant its log-density loses, per element
//   log |da/du| = log(half) + log(1 - tanh(u)^2) = log(half) + 2 (log 2 - u - softplus(-2u)),
// written without tanh so it stays exact where tanh(u) rounds to +-1 (|u| > 9 in float32): no
// atanh of the action and no epsilon. Shared by the C++ and CUDA kernels; F is the compute
// type or a SIMD vector of it, S its scalar.
#pragma once

#include "fused_reparam/macros.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/scale.h"

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

// a = low + half * (tanh(u) + 1)
template <class F, class S>
FR_HOST_DEVICE F action(F u, const Squash<S>& sq) {
  return F(sq.low) + F(sq.half) * (MathOps<F>::tanh(u) + F(S(1)));
}

// log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact for every u.
template <class F, class S>
FR_HOST_DEVICE F log_dtanh(F u) {
  const F two(S(2));
  return two * (F(SquashConstants<S>::kLog2) - u - scale::softplus<F, S>(F(S(0)) - two * u));
}

// da/du = half * (1 - tanh(u)^2), from log_dtanh (no cancellation where tanh(u) is near 1).
template <class F, class S>
FR_HOST_DEVICE F daction(F log_dt, const Squash<S>& sq) {
  return F(sq.half) * MathOps<F>::exp(log_dt);
}

// The element's share of the row's log-determinant in the log q sum, which the row's finish
// scales by -1/2: 2 log |da/du|.
template <class F, class S>
FR_HOST_DEVICE F log_q_extra(F u, const Squash<S>& sq) {
  return F(S(2)) * (log_dtanh<F, S>(u) + F(sq.log_half));
}

// The gradient reaching u: dz through the action, and gq through the log-determinant, whose
// derivative is d log(1 - tanh(u)^2) / du = -2 tanh(u) (log_prob subtracts it).
template <class F, class S>
FR_HOST_DEVICE F grad_u(F dz, F gq, F u, const Squash<S>& sq) {
  return dz * daction<F, S>(log_dtanh<F, S>(u), sq) + F(S(2)) * gq * MathOps<F>::tanh(u);
}

}  // namespace squash
}  // namespace fused_reparam
