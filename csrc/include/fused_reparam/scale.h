// The scale parametrizations of the diagonal op (docs/design.md, "Scales"): sigma from the
// op's second input s, its derivative, and the log-variance terms of the VAE extras, shared by
// every C++ and CUDA kernel. F is the compute type (float for half types, double) or a CPU SIMD
// vector of it; S its scalar type.
//
//   kind      sigma            d sigma / ds
//   logvar    exp(s / 2)       sigma / 2
//   log_std   exp(s)           sigma
//   std       s                1
//   softplus  log1p(exp(s))    sigmoid(s)
//
// then sigma += min_scale (a lower bound, 0 by default). The kind is one value for a whole
// launch: the branches below are uniform, so no vector or warp diverges.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "fused_reparam/elementary.h"
#include "fused_reparam/macros.h"
#include "fused_reparam/normal.h"

namespace fused_reparam {
namespace scale {

enum Kind : int { kLogvar = 0, kLogStd = 1, kStd = 2, kSoftplus = 3 };
constexpr int kNumKinds = 4;

// Below -kSoftplusTail, log(softplus(s)) = s - exp(s) / 2 to within exp(2s), where
// softplus(s) itself underflows first.
constexpr double kSoftplusTail = 20.0;

// The scale of one launch: its kind and lower bound (in the compute type's scalar).
template <class S>
struct Scale {
  int kind = kLogvar;
  S min = S(0);
};

// Whether MathOps<F> has its own softplus (the AVX-512 float vector's).
template <class F, class = void>
struct HasOwnSoftplus : std::false_type {};
template <class F>
struct HasOwnSoftplus<F, std::void_t<decltype(MathOps<F>::softplus(std::declval<F>()))>>
    : std::true_type {};

// softplus(s) = max(s, 0) + log1p(exp(-|s|)): exact for every s (+inf included), one exp
// (and in float no library log1p: elementary.h), unless F has its own.
template <class F, class S>
FR_HOST_DEVICE F softplus(F s) {
  if constexpr (HasOwnSoftplus<F>::value) {
    return MathOps<F>::softplus(s);
  } else {
    const F zero(S(0));
    const F neg_abs = MathOps<F>::select_gt(s, zero, zero - s, s);
    return MathOps<F>::select_gt(s, zero, s, zero) +
           elementary::log1p_unit<F, S>(MathOps<F>::exp(neg_abs));
  }
}

template <class F, class S>
FR_HOST_DEVICE F sigmoid(F s) {
  return F(S(1)) / (F(S(1)) + MathOps<F>::exp(F(S(0)) - s));
}

// f(s): sigma before the lower bound.
template <class F, class S>
FR_HOST_DEVICE F sigma_base(F s, const Scale<S>& sc) {
  switch (sc.kind) {
    case kLogStd: return MathOps<F>::exp(s);
    case kStd: return s;
    case kSoftplus: return softplus<F, S>(s);
    default: return MathOps<F>::exp(F(NoiseConstants<S>::kHalf) * s);
  }
}

// sigma of s (min included).
template <class F, class S>
FR_HOST_DEVICE F sigma(F s, const Scale<S>& sc) {
  return sigma_base<F, S>(s, sc) + F(sc.min);
}

// d sigma / ds, given f(s) (exact: the bound is not subtracted back out of sigma).
template <class F, class S>
FR_HOST_DEVICE F dsigma(F s, F base, const Scale<S>& sc) {
  switch (sc.kind) {
    case kLogStd: return base;
    case kStd: return F(S(1));
    case kSoftplus: return sigmoid<F, S>(s);
    default: return F(NoiseConstants<S>::kHalf) * base;
  }
}

// d sigma / ds alone (the backward without sigma): softplus needs no softplus for it.
template <class F, class S>
FR_HOST_DEVICE F dsigma(F s, const Scale<S>& sc) {
  if (sc.kind == kSoftplus || sc.kind == kStd) return dsigma<F, S>(s, F(S(0)), sc);
  return dsigma<F, S>(s, sigma_base<F, S>(s, sc), sc);
}

// 2 log sigma (the log-variance the KL and log q terms take), exact in s where it can be.
template <class F, class S>
FR_HOST_DEVICE F log_var(F s, F sigma, const Scale<S>& sc) {
  const F two(S(2));
  if (sc.min == S(0)) {
    switch (sc.kind) {
      case kLogvar: return s;
      case kLogStd: return two * s;
      case kSoftplus:
        return MathOps<F>::select_gt(F(S(-kSoftplusTail)), s,
                                     two * (s - F(NoiseConstants<S>::kHalf) * MathOps<F>::exp(s)),
                                     two * MathOps<F>::log(sigma));
      default: break;
    }
  }
  return two * MathOps<F>::log(sigma);
}

// d log sigma / ds, given sigma and d sigma / ds; stable where sigma underflows.
template <class F, class S>
FR_HOST_DEVICE F dlog_sigma(F s, F sigma, F dsig, const Scale<S>& sc) {
  if (sc.min == S(0)) {
    switch (sc.kind) {
      case kLogvar: return F(NoiseConstants<S>::kHalf);
      case kLogStd: return F(S(1));
      case kSoftplus:
        return MathOps<F>::select_gt(F(S(-kSoftplusTail)), s,
                                     F(S(1)) - F(NoiseConstants<S>::kHalf) * MathOps<F>::exp(s),
                                     dsig / sigma);
      default: break;
    }
  }
  return dsig / sigma;
}

}  // namespace scale
}  // namespace fused_reparam
