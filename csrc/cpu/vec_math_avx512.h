// Inline AVX-512 float32 exp, log and sincos for the CPU kernels. The Sleef functions they
// replace are out-of-line calls, and every zmm register is caller-saved, so each call spills
// the kernel's live vectors; these inline into it. Precision, measured over every float of the
// ranges (tests/cpp/test_elementary.cpp checks dense grids): exp within 0.91 ulp and log within
// 0.95 (Sleef's u10: 1.0); sin and cos within 1.51 (Sleef's u35: 3.5) for |x| <= kSinCosMax.
// Raw __m512 in and out, and no torch, so the host tests include it too.
#pragma once

#include <immintrin.h>

// Built with the AVX-512 flags (the kernels), plain inline; elsewhere (the host tests) the
// functions carry the ISA themselves and run only where the CPU has it.
#if defined(__AVX512F__) && defined(__FMA__)
#define FR_VM_INLINE inline
#else
#define FR_VM_INLINE inline __attribute__((target("avx512f,fma")))
#endif

namespace fused_reparam {
namespace vec_math_avx512 {

// 1.5 * 2^23: fma(x, c, kRoundShift) rounds x c to an integer, held in the low mantissa bits
// (two's complement for negative ones), for |x c| < 2^22; subtracting it gives the integer.
constexpr float kRoundShift = 0x1.8p23f;

// exp(x) for every x: x = n ln2 + r, |r| <= ln2 / 2, exp(r) = 1 + r + r^2 P(r) (P a degree-4
// fit, relative error 4e-9), then scalef multiplies by 2^n with one rounding, through the
// subnormals to 0 and up to inf. The clamp keeps n small; min / max return their second
// operand when either is NaN, so a NaN x passes through.
FR_VM_INLINE __m512 exp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), x));
  const __m512 shift = _mm512_set1_ps(kRoundShift);
  const __m512 n =
      _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504089f), shift), shift);
  // ln2 = H + L, H = float(ln2) has 21 bits, so x - n H is exact for |n| <= 150.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e43p-1f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-0x1.05c610p-29f), r);
  __m512 p = _mm512_set1_ps(1.381459995e-03f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.368715644e-03f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166838899e-02f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666652113e-01f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.999999404e-01f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// log(x) for every x: x = m 2^e with m in [0.75, 1.5) (subnormals included), t = m - 1
// exact, log(x) = e ln2 + t + t^2 P(t) (P a degree-8 fit, relative error 8e-9). fixupimm
// maps 0 to -inf, x < 0 and -inf to NaN, and passes +inf and NaN through.
FR_VM_INLINE __m512 log(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_zero);
  __m512 e = _mm512_getexp_ps(x);
  e = _mm512_mask_add_ps(e, _mm512_cmp_ps_mask(m, one, _CMP_LT_OQ), e, one);
  const __m512 t = _mm512_sub_ps(m, one);
  __m512 p = _mm512_set1_ps(-4.490918294e-02f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.044829860e-01f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.316223592e-01f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.448206902e-01f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.664776802e-01f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.999060661e-01f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-2.500005364e-01f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(3.333345354e-01f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.5f));
  // ln2 = L1 + L2, L1 with 13 bits: e L1 is exact, hi = e L1 + t rounds once and err, its
  // rounding error, is exact (Fast2Sum: |e L1| >= |t| unless e = 0), so the only rounding at
  // the result's scale is the last add (e ln2 and t cancel for e = +-1).
  const __m512 l1 = _mm512_set1_ps(0x1.62ep-1f);
  const __m512 hi = _mm512_fmadd_ps(e, l1, t);
  const __m512 err = _mm512_sub_ps(t, _mm512_fnmadd_ps(e, l1, hi));
  const __m512 lo = _mm512_fmadd_ps(_mm512_mul_ps(t, t), p,
                                    _mm512_fmadd_ps(e, _mm512_set1_ps(0x1.0bfbe8p-15f), err));
  // fixupimm tokens by input class (QNaN, SNaN, 0, 1, -inf, +inf, < 0, > 0): QNaN(x),
  // QNaN(x), -inf, keep, NaN, +inf, NaN, keep.
  return _mm512_fixupimm_ps(_mm512_add_ps(hi, lo), x, _mm512_set1_epi32(0x03530422), 0);
}

// sincos takes this path for |x| <= kSinCosMax (the caller falls back beyond).
constexpr float kSinCosMax = 256.0f;

// sin and cos of x, |x| <= kSinCosMax: x = q pi/2 + r, |r| <= pi/4, r by a three-part
// Cody-Waite reduction (x - q P1 exact in one fused multiply-add, the rest rounding once each);
// sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 + r^4 C(r^2) (fits within 0.15 and 0.002 ulp), then
// the quadrant q mod 4 swaps them and sets the signs.
FR_VM_INLINE void sincos(__m512 x, __m512& s, __m512& c) {
  const __m512 shift = _mm512_set1_ps(kRoundShift);
  const __m512 qs = _mm512_fmadd_ps(x, _mm512_set1_ps(0.636619772368f), shift);
  const __m512 q = _mm512_sub_ps(qs, shift);
  // pi/2 = P1 + P2 + P3, each part rounded down so all are positive: x - q P_k then keeps
  // the sign of x = -0 (q = +0).
  __m512 r = _mm512_fnmadd_ps(q, _mm512_set1_ps(0x1.921fb4p+0f), x);
  r = _mm512_fnmadd_ps(q, _mm512_set1_ps(0x1.4442d0p-24f), r);
  r = _mm512_fnmadd_ps(q, _mm512_set1_ps(0x1.84698ap-48f), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 ps = _mm512_set1_ps(-1.951463055e-04f);
  ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(8.332155645e-03f));
  ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(-1.666665524e-01f));
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  // r^3 S is +0 for r = -0: or-ing in the sign of r (sin r's own) keeps sin(-0) = -0.
  const __m512 sr = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
      _mm512_castps_si512(_mm512_fmadd_ps(_mm512_mul_ps(r2, r), ps, r)),
      _mm512_castps_si512(r), sign, 0xF8));
  __m512 pc = _mm512_set1_ps(2.443240919e-05f);
  pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(-1.388730947e-03f));
  pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(4.166664556e-02f));
  pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(-0.5f));
  const __m512 cr = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(1.0f));
  const __m512i qi = _mm512_castps_si512(qs);  // q mod 4 in the low bits
  const __mmask16 odd = _mm512_test_epi32_mask(qi, _mm512_set1_epi32(1));
  // Bit 1 of q (of q + 1) is the sign of sin (of cos): shifted up to the sign bit, it flips
  // the swapped polynomials with one ternary-logic op each (a ^ (b & sign)).
  const __m512i sin_sign = _mm512_slli_epi32(qi, 30);
  const __m512i cos_sign = _mm512_add_epi32(sin_sign, _mm512_set1_epi32(1 << 30));
  s = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
      _mm512_castps_si512(_mm512_mask_blend_ps(odd, sr, cr)), sin_sign, sign, 0x78));
  c = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
      _mm512_castps_si512(_mm512_mask_blend_ps(odd, cr, sr)), cos_sign, sign, 0x78));
}

}  // namespace vec_math_avx512
}  // namespace fused_reparam

#undef FR_VM_INLINE
