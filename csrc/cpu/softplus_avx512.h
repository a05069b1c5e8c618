// Inline AVX-512 float32 softplus, log1p(exp(x)), for the CPU kernels' softplus scale. The
// generic formula (fused_reparam/scale.h) chains an exp and a degree-8 log1p fit, about 30
// dependent vector operations; this takes g(a) = log1p(exp(a)), a = -|x| in [-8, 0], from a
// table of 32 degree-4 polynomials, each interval's coefficients fetched by one two-table
// permute: 19 operations. softplus(x) = max(x, 0) + g(-|x|). Below -8, g(a) = e - e^2/2 + e^3/3
// with e = exp(a), taken only when some lane needs it. Within 1.4 ulp everywhere
// (tests/cpp/test_elementary.cpp); scripts/fit_softplus_table.py makes the table.
#pragma once

#include <immintrin.h>

#include "cpu/vec_math_avx512.h"

#if defined(__AVX512F__) && defined(__FMA__)
#define FR_SP_INLINE inline
#else
#define FR_SP_INLINE inline __attribute__((target("avx512f,fma")))
#endif

namespace fused_reparam {
namespace vec_math_avx512 {

// Row j: the coefficient of u^j on each interval [-8 + i / 4, -8 + (i + 1) / 4], u = a minus
// the interval's center. Worst error over a dense grid of [-8, 8]: 1.34 ulp.
alignas(64) inline constexpr float kSoftplusTable[5][32] = {
    {0x1.8e84b4p-12f, 0x1.ffae1ap-12f, 0x1.487b7cp-11f, 0x1.a5bep-11f,
     0x1.0ebba2p-10f, 0x1.5b93b6p-10f, 0x1.be36b6p-10f, 0x1.1e67dcp-9f,
     0x1.6fa362p-9f, 0x1.d7de7ap-9f, 0x1.2eca94p-8f, 0x1.84898cp-8f,
     0x1.f27916p-8f, 0x1.3fae84p-7f, 0x1.99e9e2p-7f, 0x1.06b48cp-6f,
     0x1.508efap-6f, 0x1.aee704p-6f, 0x1.13a026p-5f, 0x1.603f9ap-5f,
     0x1.c19846p-5f, 0x1.1e756cp-4f, 0x1.6c4bcap-4f, 0x1.ce1ebcp-4f,
     0x1.2432d2p-3f, 0x1.701df4p-3f, 0x1.cda526p-3f, 0x1.1fe5d2p-2f,
     0x1.64cea8p-2f, 0x1.b6fd5p-2f, 0x1.0bd6dp-1f, 0x1.43e406p-1f},  // u^0
    {0x1.8e714p-12f, 0x1.ff8e12p-12f, 0x1.486118p-11f, 0x1.a59286p-11f,
     0x1.0e97dp-10f, 0x1.5b58b2p-10f, 0x1.bdd57ap-10f, 0x1.1e17c4p-9f,
     0x1.6f1f74p-9f, 0x1.d70538p-9f, 0x1.2e17bep-8f, 0x1.836338p-8f,
     0x1.f094f2p-8f, 0x1.3e209p-7f, 0x1.975c3p-7f, 0x1.049c36p-6f,
     0x1.4d2008p-6f, 0x1.a949p-6f, 0x1.0f0a4ep-5f, 0x1.58c856p-5f,
     0x1.b57aep-5f, 0x1.14abd4p-4f, 0x1.5c90dp-4f, 0x1.b50134p-4f,
     0x1.104f9p-3f, 0x1.50ee06p-3f, 0x1.9d5048p-3f, 0x1.f5ef2cp-3f,
     0x1.2d46b6p-2f, 0x1.65034p-2f, 0x1.a11c06p-2f, 0x1.e00aa8p-2f},  // u^1
    {0x1.8e497ap-13f, 0x1.ff4f9ep-13f, 0x1.482ceep-12f, 0x1.a53bfcp-12f,
     0x1.0e4e8ap-11f, 0x1.5ae3acp-11f, 0x1.bd150cp-11f, 0x1.1d7742p-10f,
     0x1.6e1706p-10f, 0x1.d55308p-10f, 0x1.2cb46cp-9f, 0x1.811752p-9f,
     0x1.ecd344p-9f, 0x1.3b08bp-8f, 0x1.924b1ep-8f, 0x1.0075dp-7f,
     0x1.465a76p-7f, 0x1.9e3e28p-7f, 0x1.0611ecp-6f, 0x1.4a475p-6f,
     0x1.9e1d34p-6f, 0x1.01faf6p-5f, 0x1.3ee726p-5f, 0x1.866118p-5f,
     0x1.d8351ep-5f, 0x1.1980f4p-4f, 0x1.49e6a4p-4f, 0x1.7aebe2p-4f,
     0x1.a945aap-4f, 0x1.d11376p-4f, 0x1.ee69c6p-4f, 0x1.fdfbdp-4f},  // u^2
    {0x1.099576p-14f, 0x1.54de68p-14f, 0x1.b570dep-14f, 0x1.18a466p-13f,
     0x1.680582p-13f, 0x1.cdbbb6p-13f, 0x1.27fdbep-12f, 0x1.7b52e6p-12f,
     0x1.e5d9b6p-12f, 0x1.36ed56p-11f, 0x1.8d9acp-11f, 0x1.fbdacp-11f,
     0x1.43daep-10f, 0x1.9c406ep-10f, 0x1.05bf4p-9f, 0x1.4b5664p-9f,
     0x1.a1c074p-9f, 0x1.060156p-8f, 0x1.46810ep-8f, 0x1.937f6ap-8f,
     0x1.ed5f22p-8f, 0x1.29944p-7f, 0x1.60db8ep-7f, 0x1.99620ep-7f,
     0x1.ce0118p-7f, 0x1.f75ap-7f, 0x1.061638p-6f, 0x1.014566p-6f,
     0x1.d210a8p-7f, 0x1.76cb9cp-7f, 0x1.e7cb8ap-8f, 0x1.52e6dcp-9f},  // u^3
    {0x1.0ab408p-16f, 0x1.51c8e4p-16f, 0x1.b2a40ep-16f, 0x1.174138p-15f,
     0x1.6c0998p-15f, 0x1.c89038p-15f, 0x1.233148p-14f, 0x1.79f08ep-14f,
     0x1.e408fap-14f, 0x1.33ba9ep-13f, 0x1.826598p-13f, 0x1.f5067ap-13f,
     0x1.375bf4p-12f, 0x1.8fdc54p-12f, 0x1.f32ef6p-12f, 0x1.39b8a4p-11f,
     0x1.7e13b4p-11f, 0x1.d72c6ap-11f, 0x1.1c87cap-10f, 0x1.480d8ap-10f,
     0x1.831a62p-10f, 0x1.b02b4ap-10f, 0x1.c5179p-10f, 0x1.bf269cp-10f,
     0x1.81d776p-10f, 0x1.f01014p-11f, 0x1.deaff4p-13f, -0x1.d66704p-11f,
     -0x1.16543ap-9f, -0x1.b47cdp-9f, -0x1.26f738p-8f, -0x1.3e0b4p-8f},  // u^4
};

// Row j's coefficients of the intervals i (one permute of the row's two halves).
FR_SP_INLINE __m512 softplus_coef(int j, __m512i i) {
  return _mm512_permutex2var_ps(_mm512_load_ps(kSoftplusTable[j]), i,
                                _mm512_load_ps(kSoftplusTable[j] + 16));
}

FR_SP_INLINE __m512 softplus(__m512 x) {
  const __m512 a = _mm512_castsi512_ps(  // -|x|; a NaN stays one
      _mm512_or_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  // max returns its second operand for a NaN x: 0, and g(NaN) is NaN.
  const __m512 pos = _mm512_max_ps(x, _mm512_setzero_ps());
  // Interval i = trunc(4 a + 32), 31 for a = 0; below -8 the index is anything (the tail
  // replaces it). The center (i + 1/2) / 4 - 8 is exact, and so is u = a - center, by
  // Sterbenz's lemma, but on the last interval, where its rounding costs 0.05 ulp.
  const __m512i i = _mm512_min_epi32(
      _mm512_cvttps_epi32(_mm512_fmadd_ps(a, _mm512_set1_ps(4.0f), _mm512_set1_ps(32.0f))),
      _mm512_set1_epi32(31));
  const __m512 center =
      _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_set1_ps(0.25f), _mm512_set1_ps(-7.875f));
  const __m512 u = _mm512_sub_ps(a, center);
  __m512 g = _mm512_fmadd_ps(softplus_coef(4, i), u, softplus_coef(3, i));
  g = _mm512_fmadd_ps(g, u, softplus_coef(2, i));
  g = _mm512_fmadd_ps(g, u, softplus_coef(1, i));
  g = _mm512_fmadd_ps(g, u, softplus_coef(0, i));
  const __mmask16 tail = _mm512_cmp_ps_mask(a, _mm512_set1_ps(-8.0f), _CMP_LT_OQ);
  if (__builtin_expect(tail != 0, 0)) {
    const __m512 e = exp(a);  // <= exp(-8)
    const __m512 q = _mm512_fmadd_ps(e, _mm512_set1_ps(-1.0f / 3.0f), _mm512_set1_ps(0.5f));
    g = _mm512_mask_blend_ps(tail, g, _mm512_fnmadd_ps(_mm512_mul_ps(e, e), q, e));
  }
  return _mm512_add_ps(pos, g);
}

}  // namespace vec_math_avx512
}  // namespace fused_reparam

#undef FR_SP_INLINE
