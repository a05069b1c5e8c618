// SIMD plumbing for the noise contract on the CPU: a vector of uint32 Philox words with as
// many lanes as at::vec::Vectorized<float>, its 32x32->64 multiply, the exact uint32 -> float
// conversion, and MathOps for Vectorized<float/double>, so philox.h and normal.h run
// unchanged on vectors. Include only from a translation unit that defines CPU_CAPABILITY.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <cstdint>

#include "fused_reparam/normal.h"

#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif
#if defined(CPU_CAPABILITY_AVX512)
#include "cpu/softplus_avx512.h"
#include "cpu/vec_math_avx512.h"
#endif

namespace fused_reparam {
namespace cpu {
inline namespace CPU_CAPABILITY {

using at::vec::Vectorized;
constexpr int kLanes = Vectorized<float>::size();

#if defined(CPU_CAPABILITY_AVX512)

struct WordVec {
  __m512i v;
  WordVec() = default;
  explicit WordVec(__m512i x) : v(x) {}
  WordVec(uint32_t s) : v(_mm512_set1_epi32(static_cast<int>(s))) {}  // NOLINT: broadcast
  static WordVec loadu(const uint32_t* p) { return WordVec(_mm512_loadu_si512(p)); }
};
inline WordVec operator^(WordVec a, WordVec b) { return WordVec(_mm512_xor_si512(a.v, b.v)); }
// Even lanes multiply in place; odd lanes are shifted down first; halves blended back.
inline WordVec mulhilo(WordVec a, uint32_t m, WordVec& hi) {
  const __m512i mm = _mm512_set1_epi32(static_cast<int>(m));
  const __m512i even = _mm512_mul_epu32(a.v, mm);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a.v, 32), mm);
  hi = WordVec(_mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd));
  return WordVec(_mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32)));
}
inline Vectorized<float> words_to_float(WordVec w) { return _mm512_cvtepu32_ps(w.v); }

#elif defined(CPU_CAPABILITY_AVX2)

struct WordVec {
  __m256i v;
  WordVec() = default;
  explicit WordVec(__m256i x) : v(x) {}
  WordVec(uint32_t s) : v(_mm256_set1_epi32(static_cast<int>(s))) {}  // NOLINT: broadcast
  static WordVec loadu(const uint32_t* p) {
    return WordVec(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};
inline WordVec operator^(WordVec a, WordVec b) { return WordVec(_mm256_xor_si256(a.v, b.v)); }
inline WordVec mulhilo(WordVec a, uint32_t m, WordVec& hi) {
  const __m256i mm = _mm256_set1_epi32(static_cast<int>(m));
  const __m256i even = _mm256_mul_epu32(a.v, mm);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a.v, 32), mm);
  hi = WordVec(_mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA));
  return WordVec(_mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA));
}
// AVX2 has no unsigned conversion: hi16 * 2^16 + lo16 are both exact, and the one fused
// multiply-add rounds once, so this is the correctly rounded conversion.
inline Vectorized<float> words_to_float(WordVec w) {
  const __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(w.v, 16));
  const __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(w.v, _mm256_set1_epi32(0xFFFF)));
  return _mm256_fmadd_ps(hi, _mm256_set1_ps(65536.0f), lo);
}

#else  // DEFAULT: portable lanes the compiler may vectorize

struct WordVec {
  uint32_t v[kLanes];
  WordVec() = default;
  WordVec(uint32_t s) {  // NOLINT: broadcast
    for (int j = 0; j < kLanes; ++j) v[j] = s;
  }
  static WordVec loadu(const uint32_t* p) {
    WordVec w;
    for (int j = 0; j < kLanes; ++j) w.v[j] = p[j];
    return w;
  }
};
inline WordVec operator^(WordVec a, WordVec b) {
  for (int j = 0; j < kLanes; ++j) a.v[j] ^= b.v[j];
  return a;
}
inline WordVec mulhilo(WordVec a, uint32_t m, WordVec& hi) {
  WordVec lo;
  for (int j = 0; j < kLanes; ++j) lo.v[j] = philox::mulhilo(a.v[j], m, hi.v[j]);
  return lo;
}
inline Vectorized<float> words_to_float(WordVec w) {
  float f[kLanes];
  for (int j = 0; j < kLanes; ++j) f[j] = static_cast<float>(w.v[j]);
  return Vectorized<float>::loadu(f);
}

#endif

}  // namespace CPU_CAPABILITY
}  // namespace cpu

template <>
struct MathOps<cpu::Vectorized<float>> {
  using V = cpu::Vectorized<float>;
#if defined(CPU_CAPABILITY_AVX512)
  // Inline, so no call spills the kernel's vectors; as precise as Sleef's u10 (within 1 ulp).
  static V log(const V& x) { return vec_math_avx512::log(x); }
  static V exp(const V& x) { return vec_math_avx512::exp(x); }
  // A table of short polynomials: fewer dependent operations than exp and log1p chained.
  static V softplus(const V& x) { return vec_math_avx512::softplus(x); }
#else
  static V log(const V& x) { return x.log(); }
  static V exp(const V& x) { return x.exp(); }
#endif
  static V sqrt(const V& x) { return x.sqrt(); }
  static V log1p(const V& x) { return x.log1p(); }
  static V fma(const V& a, const V& b, const V& c) { return at::vec::fmadd(a, b, c); }
  static V tanh(const V& x) { return x.tanh(); }
  static V expm1(const V& x) { return x.expm1(); }
  // One compare into a mask and one masked blend: Vectorized's a > b materializes the mask as
  // a vector and blendv compares it back, several times slower on AVX-512.
  static V select_gt(const V& a, const V& b, const V& x, const V& y) {
#if defined(CPU_CAPABILITY_AVX512)
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x);
#elif defined(CPU_CAPABILITY_AVX2)
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ));
#else
    return V::blendv(y, x, a > b);
#endif
  }
  // One Sleef call shares the range reduction of sin and cos (3.5 ulp, as Vectorized::sin).
  // AVX-512 computes them inline (within 2 ulp); a lane beyond kSinCosMax (or NaN) takes
  // Sleef's, that lane only, so a lane's result never depends on its neighbours.
  static void sincos(const V& x, V& s, V& c) {
#if defined(CPU_CAPABILITY_AVX512)
    const __m512 big = _mm512_set1_ps(vec_math_avx512::kSinCosMax);
    const __mmask16 far = _mm512_cmp_ps_mask(_mm512_abs_ps(x), big, _CMP_NLE_UQ);
    __m512 vs, vc;
    vec_math_avx512::sincos(x, vs, vc);
    if (far != 0) [[unlikely]] {
      const Sleef___m512_2 sc = Sleef_sincosf16_u35(x);
      vs = _mm512_mask_blend_ps(far, vs, sc.x);
      vc = _mm512_mask_blend_ps(far, vc, sc.y);
    }
    s = vs;
    c = vc;
#elif defined(CPU_CAPABILITY_AVX2)
    const Sleef___m256_2 sc = Sleef_sincosf8_u35(x);
    s = sc.x;
    c = sc.y;
#else
    s = x.sin();
    c = x.cos();
#endif
  }
  static V from_word(const cpu::WordVec& w) { return cpu::words_to_float(w); }
};

template <>
struct MathOps<cpu::Vectorized<double>> {
  using V = cpu::Vectorized<double>;
  static V exp(const V& x) { return x.exp(); }
  static V log(const V& x) { return x.log(); }
  static V log1p(const V& x) { return x.log1p(); }
  static V fma(const V& a, const V& b, const V& c) { return at::vec::fmadd(a, b, c); }
  static V tanh(const V& x) { return x.tanh(); }
  static V expm1(const V& x) { return x.expm1(); }
  static V select_gt(const V& a, const V& b, const V& x, const V& y) {
#if defined(CPU_CAPABILITY_AVX512)
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, b, _CMP_GT_OQ), y, x);
#elif defined(CPU_CAPABILITY_AVX2)
    return _mm256_blendv_pd(y, x, _mm256_cmp_pd(a, b, _CMP_GT_OQ));
#else
    return V::blendv(y, x, a > b);
#endif
  }
};

}  // namespace fused_reparam
