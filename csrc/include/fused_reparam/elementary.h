// Elementary functions on the restricted ranges the scale and squash formulas use, cheaper
// than the general vector library calls on the CPU (a vector log1p costs three exps there,
// an expm1 four). float uses fits evaluated with fused multiply-adds; double keeps the
// library functions. F is the compute type or a CPU SIMD vector of it, S its scalar.
#pragma once

#include "fused_reparam/macros.h"
#include "fused_reparam/normal.h"

namespace fused_reparam {
namespace elementary {

template <class S>
constexpr bool kFitted = sizeof(S) == sizeof(float);

// log1p(t) for t in [0, 1]. float: t + t^2 R(t), R a degree-8 fit of (log1p(t) - t) / t^2,
// within 1.6 ulp of log1p over [0, 1].
template <class F, class S>
FR_HOST_DEVICE F log1p_unit(F t) {
  if constexpr (kFitted<S>) {
    constexpr float kR[] = {-4.449478816e-03f, 2.515632287e-02f, -6.664612889e-02f,
                            1.155224741e-01f,  -1.584297866e-01f, 1.985291094e-01f,
                            -2.498637289e-01f, 3.333283365e-01f, -4.999999702e-01f};
    F r = F(S(kR[0]));
    for (int k = 1; k < 9; ++k) r = MathOps<F>::fma(r, t, F(S(kR[k])));
    return MathOps<F>::fma(t * t, r, t);
  } else {
    return MathOps<F>::log1p(t);
  }
}

// e = exp(x) and m = expm1(x) for x <= 0. float: above -0.7, m = x + x^2 R(x), R a degree-5
// fit of (expm1(x) - x) / x^2 (within 1.1 ulp); below, e - 1 (e <= 1/2 there, so within
// 1.25 ulp for an exp within 1).
template <class F, class S>
FR_HOST_DEVICE void exp_expm1_nonpos(F x, F& e, F& m) {
  e = MathOps<F>::exp(x);
  if constexpr (kFitted<S>) {
    constexpr float kR[] = {1.527030254e-04f, 1.354079344e-03f, 8.320753463e-03f,
                            4.166457802e-02f, 1.666665375e-01f, 5.000000000e-01f};
    F r = F(S(kR[0]));
    for (int k = 1; k < 6; ++k) r = MathOps<F>::fma(r, x, F(S(kR[k])));
    m = MathOps<F>::select_gt(x, F(S(-0.7f)), MathOps<F>::fma(x * x, r, x), e - F(S(1)));
  } else {
    m = MathOps<F>::expm1(x);
  }
}

}  // namespace elementary
}  // namespace fused_reparam
