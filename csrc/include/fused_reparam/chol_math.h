// Per-row formulas of the Cholesky op z = mu + L eps (docs/design.md), shared by the C++
// and CUDA kernels. Only the lower triangle of L is ever read. F is the compute type (float
// for half types, double for double); T the storage type of L.
#pragma once

#include <cstdint>

#include "fused_reparam/macros.h"

namespace fused_reparam {
namespace chol {

// sum_{j <= i} L[i, j] * eps[j] for one row `l_row` of L (unit column stride).
template <class F, class T>
FR_HOST_DEVICE F lower_row_dot(const T* l_row, int64_t i, const F* eps) {
  F acc = F(0);
#if !FR_DEVICE_PASS && defined(_OPENMP)
#pragma omp simd reduction(+ : acc)  // lets the host compiler vectorize the sum
#endif
  for (int64_t j = 0; j <= i; ++j) acc += static_cast<F>(l_row[j]) * eps[j];
  return acc;
}

// dL[i, j] = dz[i] * eps[j] for j <= i, 0 above the diagonal.
template <class F>
FR_HOST_DEVICE F grad_l(F dz_i, F eps_j, int64_t i, int64_t j) {
  return j <= i ? dz_i * eps_j : F(0);
}

// deps += L[i, :i+1]^T dz[i]: row i's contribution to deps = L^T dz.
template <class F, class T>
FR_HOST_DEVICE void add_lower_row_transposed(const T* l_row, int64_t i, F dz_i, F* deps) {
#if !FR_DEVICE_PASS && defined(_OPENMP)
#pragma omp simd
#endif
  for (int64_t j = 0; j <= i; ++j) deps[j] += static_cast<F>(l_row[j]) * dz_i;
}

// A strided share of lower_row_dot, for kernels that split one row's sum across workers:
// sum over j = first, first + step, ... while j <= last of L[i, j] * eps[j]. last = i covers
// the row's lower triangle; a caller working on a chunk of columns passes the chunk's part.
template <class F, class T, class I>
FR_HOST_DEVICE F lower_row_dot_strided(const T* l_row, I last, const F* eps, I first, I step) {
  F acc = F(0);
  for (I j = first; j <= last; j += step) acc += static_cast<F>(l_row[j]) * eps[j];
  return acc;
}

}  // namespace chol
}  // namespace fused_reparam
