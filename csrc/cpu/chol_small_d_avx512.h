// The Cholesky row kernels for D <= 8 in float32 on AVX-512: two rows of L per 16-lane vector.
// The generic kernels give a row of L a vector of its own, half empty at D = 8, and pay a
// horizontal sum per row of L; here the 8 dot products of a sample row are reduced together
// (three shuffle-and-add steps for all of them). Lanes above the diagonal are neither loaded
// nor multiplied (masked loads and products), so NaN in L there and inf in eps or grad_z give
// what the generic kernels give.
#pragma once

#if defined(CPU_CAPABILITY_AVX512)
#include <immintrin.h>

#include <cstdint>

namespace fused_reparam {
namespace cpu {
inline namespace CPU_CAPABILITY {
namespace chol_small_d {

constexpr int64_t kMaxD = 8;

// Lanes j <= i of row i of L (zero lanes past them, and a zero row for i >= d).
C10_ALWAYS_INLINE __m256 lower_row(const float* l_r, int64_t ls, int64_t i, int64_t d) {
  if (i >= d) return _mm256_setzero_ps();
  return _mm256_maskz_loadu_ps(static_cast<__mmask8>((2u << i) - 1), l_r + i * ls);
}

// The lanes of rows 2k and 2k + 1 (low and high halves) on or below the diagonal, rows < d.
C10_ALWAYS_INLINE __mmask16 pair_mask(int64_t k, int64_t d) {
  const int64_t i = 2 * k;
  const unsigned lo = i < d ? (2u << i) - 1 : 0u;
  const unsigned hi = i + 1 < d ? (4u << i) - 1 : 0u;
  return static_cast<__mmask16>(lo | (hi << 8));
}

// Rows 2k and 2k + 1 of L, lanes j <= i, in the low and high halves.
C10_ALWAYS_INLINE __m512 row_pair(const float* l_r, int64_t ls, int64_t k, int64_t d) {
  const int64_t i = 2 * k;
  if (ls == kMaxD && d == kMaxD) {  // both rows in 16 consecutive floats
    return _mm512_maskz_loadu_ps(pair_mask(k, d), l_r + i * ls);
  }
  return _mm512_insertf32x8(_mm512_castps256_ps512(lower_row(l_r, ls, i, d)),
                            lower_row(l_r, ls, i + 1, d), 1);
}

// Rows 2k and 2k + 1 of L times e, zero above the diagonal (whatever e holds there).
C10_ALWAYS_INLINE __m512 pair_product(const float* l_r, int64_t ls, int64_t k, int64_t d,
                                      __m512 e) {
  return _mm512_maskz_mul_ps(pair_mask(k, d), row_pair(l_r, ls, k, d), e);
}

// z_r = mu_r + L_r eps for one sample row, d <= 8 (mu_r, eps and z_r hold d floats).
C10_ALWAYS_INLINE void lower_matvec_row(float* z_r, const float* mu_r, const float* l_r,
                                        int64_t ls, const float* eps, int64_t d) {
  const auto dm = static_cast<__mmask8>((1u << d) - 1);
  const __m512 e = _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(dm, eps));
  const __m512 a = pair_product(l_r, ls, 0, d, e);  // rows 0 | 1
  const __m512 b = pair_product(l_r, ls, 1, d, e);  // rows 2 | 3
  const __m512 c = pair_product(l_r, ls, 2, d, e);  // rows 4 | 5
  const __m512 f = pair_product(l_r, ls, 3, d, e);  // rows 6 | 7
  // Per 128-bit block: [a0+a1, a2+a3, b0+b1, b2+b3], then [sum a, sum b, sum c, sum f] of
  // that block's four lanes.
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xDD));
  const __m512 cf = _mm512_add_ps(_mm512_shuffle_ps(c, f, 0x88), _mm512_shuffle_ps(c, f, 0xDD));
  const __m512 v = _mm512_add_ps(_mm512_shuffle_ps(ab, cf, 0x88), _mm512_shuffle_ps(ab, cf, 0xDD));
  // Row 2k is blocks 0 + 1 at lane k, row 2k + 1 blocks 2 + 3 at lane k.
  const __m512i first = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i second = _mm512_setr_epi32(4, 12, 5, 13, 6, 14, 7, 15, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m256 dots = _mm256_add_ps(_mm512_castps512_ps256(_mm512_permutexvar_ps(first, v)),
                                    _mm512_castps512_ps256(_mm512_permutexvar_ps(second, v)));
  _mm256_mask_storeu_ps(z_r, dm, _mm256_add_ps(_mm256_maskz_loadu_ps(dm, mu_r), dots));
}

// [g[2k] x 8 | g[2k + 1] x 8] of the 8 floats of g in the low half of `g`.
C10_ALWAYS_INLINE __m512 g_pair(__m512 g, int k) {
  const __m512i lanes =
      _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(2 * k), _mm512_set1_epi32(2 * k + 1));
  return _mm512_permutexvar_ps(lanes, g);
}

// grad_L = tril(g eps^T) of one sample row into out (d x d, rows d apart) and, when deps is
// not null, grad_eps = L^T g into deps; d <= 8.
C10_ALWAYS_INLINE void backward_row(float* out, float* deps, const float* g_r, const float* l_r,
                                    int64_t ls, const float* eps, int64_t d) {
  const auto dm = static_cast<__mmask8>((1u << d) - 1);
  const __m256 e8 = _mm256_maskz_loadu_ps(dm, eps);
  const __m512 g = _mm512_castps256_ps512(_mm256_maskz_loadu_ps(dm, g_r));
  if (d == kMaxD) {  // rows 2k and 2k + 1 of grad_L are 16 consecutive floats
    const __m512 e = _mm512_broadcast_f32x8(e8);
    for (int k = 0; k < 4; ++k) {
      _mm512_storeu_ps(out + 2 * k * kMaxD, _mm512_maskz_mul_ps(pair_mask(k, d), g_pair(g, k), e));
    }
  } else {
    for (int64_t i = 0; i < d; ++i) {
      const auto lower = static_cast<__mmask8>((2u << i) - 1);
      const __m256 row = _mm256_maskz_mul_ps(lower, _mm256_set1_ps(g_r[i]), e8);
      _mm256_mask_storeu_ps(out + i * d, dm, row);
    }
  }
  if (deps == nullptr) return;
  __m512 acc = _mm512_setzero_ps();
  for (int k = 0; k < 4; ++k) {  // lanes above the diagonal keep acc (g_i may be inf)
    acc = _mm512_mask3_fmadd_ps(row_pair(l_r, ls, k, d), g_pair(g, k), acc, pair_mask(k, d));
  }
  _mm256_mask_storeu_ps(deps, dm, _mm256_add_ps(_mm512_castps512_ps256(acc),
                                                _mm512_extractf32x8_ps(acc, 1)));
}

}  // namespace chol_small_d
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fused_reparam
#endif
