// Uniforms and Box-Muller of the noise contract (docs/design.md), generic over the
// compute type F: float or double on host and device, or a CPU SIMD vector of them.
//
// A type F plugs in by specializing MathOps<F> (log, sqrt, sin, cos, exp, expm1, log1p, tanh,
// fma, a select, and the exact uint32 -> F conversion of a word type). Every backend's
// arithmetic then has one source.
#pragma once

#include <cmath>
#include <cstdint>

#include "fused_reparam/macros.h"
#include "fused_reparam/philox.h"

namespace fused_reparam {

template <class F>
struct MathOps;

template <>
struct MathOps<float> {
  FR_HOST_DEVICE static float log(float x) { return ::logf(x); }
  FR_HOST_DEVICE static float sqrt(float x) { return ::sqrtf(x); }
  FR_HOST_DEVICE static float exp(float x) { return ::expf(x); }
  FR_HOST_DEVICE static float log1p(float x) { return ::log1pf(x); }
  FR_HOST_DEVICE static float fma(float a, float b, float c) { return ::fmaf(a, b, c); }
  FR_HOST_DEVICE static float tanh(float x) { return ::tanhf(x); }
  FR_HOST_DEVICE static float expm1(float x) { return ::expm1f(x); }
  // a > b ? x : y (a SIMD type selects per lane).
  FR_HOST_DEVICE static float select_gt(float a, float b, float x, float y) {
    return a > b ? x : y;
  }
  FR_HOST_DEVICE static void sincos(float x, float& s, float& c) {
#if FR_DEVICE_PASS
    ::sincosf(x, &s, &c);
#else
    s = ::sinf(x);
    c = ::cosf(x);
#endif
  }
  // Correctly rounded (round-to-nearest-even) conversion of a uint32 word.
  FR_HOST_DEVICE static float from_word(uint32_t w) { return static_cast<float>(w); }
};

template <>
struct MathOps<double> {
  FR_HOST_DEVICE static double log(double x) { return ::log(x); }
  FR_HOST_DEVICE static double sqrt(double x) { return ::sqrt(x); }
  FR_HOST_DEVICE static double exp(double x) { return ::exp(x); }
  FR_HOST_DEVICE static double log1p(double x) { return ::log1p(x); }
  FR_HOST_DEVICE static double fma(double a, double b, double c) { return ::fma(a, b, c); }
  FR_HOST_DEVICE static double tanh(double x) { return ::tanh(x); }
  FR_HOST_DEVICE static double expm1(double x) { return ::expm1(x); }
  FR_HOST_DEVICE static double select_gt(double a, double b, double x, double y) {
    return a > b ? x : y;
  }
  FR_HOST_DEVICE static void sincos(double x, double& s, double& c) {
#if FR_DEVICE_PASS
    ::sincos(x, &s, &c);
#else
    s = ::sin(x);
    c = ::cos(x);
#endif
  }
  FR_HOST_DEVICE static double from_word(uint32_t w) { return static_cast<double>(w); }
};

// Scalar constants of a compute type; SIMD types broadcast them through their constructor.
template <class S>
struct NoiseConstants;
template <>
struct NoiseConstants<float> {
  static constexpr float kHalf = 0.5f;
  static constexpr float kTwoPow32Inv = 0x1p-32f;
  static constexpr float kTwoPi = 6.28318530717958647692f;  // rounds to 6.2831855f
};
template <>
struct NoiseConstants<double> {
  static constexpr double kHalf = 0.5;
  static constexpr double kTwoPow32Inv = 0x1p-32;
  static constexpr double kTwoPi = 6.28318530717958647692;
};

// u = (x + 0.5) * 2^-32, in (0, 1]: never 0, so log(u) is finite. F(x) is the exact
// conversion; the add and the multiply round in F.
template <class F, class S, class W>
FR_HOST_DEVICE F uniform_from_word(W word) {
  return (MathOps<F>::from_word(word) + F(NoiseConstants<S>::kHalf)) *
         F(NoiseConstants<S>::kTwoPow32Inv);
}

// Box-Muller on one pair of uniforms: r = sqrt(-2 ln u0), t = 2 pi u1, (r cos t, r sin t).
template <class F, class S>
FR_HOST_DEVICE void box_muller(F u0, F u1, F& n0, F& n1) {
  const F r = MathOps<F>::sqrt(F(S(-2)) * MathOps<F>::log(u0));
  const F t = F(NoiseConstants<S>::kTwoPi) * u1;
  F s, c;
  MathOps<F>::sincos(t, s, c);
  n0 = r * c;
  n1 = r * s;
}

// The four normals fed by one Philox call: words (x0..x3) -> (n0..n3).
template <class F, class S, class W>
FR_HOST_DEVICE void normals_from_words(const philox::Words4<W>& w, F& n0, F& n1, F& n2, F& n3) {
  box_muller<F, S>(uniform_from_word<F, S>(w.x0), uniform_from_word<F, S>(w.x1), n0, n1);
  box_muller<F, S>(uniform_from_word<F, S>(w.x2), uniform_from_word<F, S>(w.x3), n2, n3);
}

// Scalar normals of group q of stream (seed, offset): elements 4q .. 4q+3.
template <class S>
FR_HOST_DEVICE void stream_normals4(uint64_t seed, uint64_t offset, uint64_t group, S out[4]) {
  const philox::Words4<uint32_t> w = philox::stream_words(seed, offset, group);
  normals_from_words<S, S>(w, out[0], out[1], out[2], out[3]);
}

// eps_i of the stream for one element (costs a full Philox call: for tests and tails).
template <class S>
FR_HOST_DEVICE S stream_normal_at(uint64_t seed, uint64_t offset, uint64_t index) {
  S n[4];
  stream_normals4<S>(seed, offset, index >> 2, n);
  return n[index & 3];
}

}  // namespace fused_reparam
