// The CPU row kernels of the Cholesky op's backward: grad_L = tril(g eps^T) and, when asked,
// grad_eps = L^T g, with eps remade from the stream (chol_cpu_kernels_impl.h's helpers;
// compiled per instruction set with them).
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/problem.h"
#include "cpu/chol_cpu_kernels_impl.h"
#include "cpu/chol_small_d_avx512.h"

namespace fused_reparam {
namespace cpu {
inline namespace CPU_CAPABILITY {
namespace chol_rows {

// masks[k]: lanes [0, k) all ones, the rest zero (k in [0, kW]). The vector that holds a
// row's diagonal is masked with one table lookup instead of a branch on the lane count.
template <class S>
struct LaneMasks {
  using C = Vectorized<S>;
  C m[C::size() + 1];
  LaneMasks() {
    const C iota = C::arange(S(0), S(1));
    for (int64_t k = 0; k <= C::size(); ++k) m[k] = iota < C(static_cast<S>(k));
  }
};

// Calls row_lower(j, n) -> the vector of lanes [j, j + kW) of a row of grad_L whose first n
// lanes (n <= kW) are on or below the diagonal (position `diag`), and stores the row into
// out[0, d): those lanes kept, lanes above the diagonal zero (even where row_lower gives
// inf or NaN there), full vectors past the diagonal stored as zeros without a call.
template <class S, class RowLower>
C10_ALWAYS_INLINE void store_lower_row(S* out, int64_t diag, int64_t d,
                                       const LaneMasks<S>& masks, RowLower row_lower) {
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  const int64_t n = diag + 1;  // lanes j < n are on or below the diagonal
  int64_t j = 0;
  for (; j + kW <= n; j += kW) row_lower(j, kW).store(out + j);
  if (j < n) {  // the vector holding the diagonal: 0 < n - j < kW
    const C v = row_lower(j, n - j) & masks.m[n - j];
    const int64_t c = std::min(kW, d - j);
    if (c == kW) {
      v.store(out + j);
    } else {
      v.store(out + j, c);
    }
    j += kW;
  }
  const C zero(S(0));
  for (; j < d; j += kW) {
    const int64_t c = std::min(kW, d - j);
    if (c == kW) {
      zero.store(out + j);
    } else {
      zero.store(out + j, c);
    }
  }
}

// One row of grad_L = tril(g eps^T) into out[0, d): g_i * eps[j] for j <= i, zeros after.
template <class S>
C10_ALWAYS_INLINE void grad_l_row(S* out, S g_i, const S* eps, int64_t i, int64_t d,
                                  const LaneMasks<S>& masks) {
  using C = Vectorized<S>;
  const C g(g_i);
  store_lower_row<S>(out, i, d, masks, [&](int64_t j, int64_t n) {
    return g * (n == C::size() ? C::loadu(eps + j) : C::loadu(eps + j, n));
  });
}

// deps[j] += l[j] * g_i for j < n (row i's part of L^T g); deps past n is not touched.
template <class T, class S>
void axpy_row(S* deps, const T* l, S g_i, int64_t n) {
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  const C g(g_i);
  for (int64_t j = 0; j < n; j += kW) {
    const int64_t c = std::min(kW, n - j);
    if (c == kW) {
      at::vec::fmadd(load<T, C>(l + j, kW), g, C::loadu(deps + j)).store(deps + j);
    } else {
      at::vec::fmadd(load<T, C>(l + j, c), g, C::loadu(deps + j, c)).store(deps + j, c);
    }
  }
}

template <class T, class S>
void store_row(T* out, const S* row, int64_t n) {
  if constexpr (std::is_same_v<T, S>) {
    std::copy(row, row + n, out);
  } else {
    at::vec::convert(row, out, n);
  }
}

template <class T>
void backward_rows(const Problem& p, int64_t r0, int64_t r1) {
  using S = typename ComputeType<T>::type;
  const int64_t d = p.d;
  ChunkNoise<S> noise;
  std::vector<S> given(d), g(d), deps(d), row(std::is_same_v<T, S> ? 0 : d);
  const LaneMasks<S> masks;
  const T* gz = static_cast<const T*>(p.in[kFirst]);
  const T* l = static_cast<const T*>(p.in[kSecond]);
  T* gl = static_cast<T*>(p.out[kGradSecond]);
  T* ge = static_cast<T*>(p.out[kGradEps]);
  RowCursor<3> at(p, r0);
  for (int64_t c0 = r0; c0 < r1; c0 += chunk_rows(p)) {
    const int64_t c1 = std::min(r1, c0 + chunk_rows(p));
    if (p.in[kEps] == nullptr) noise.fill(p, c0, c1);
    for (int64_t r = c0; r < c1; ++r, at.next(p)) {
      const int64_t* off = at.off;
      const S* eps = row_eps<T, S>(p, off[kEps], noise, r - c0, given.data());
#if defined(CPU_CAPABILITY_AVX512)
      if constexpr (std::is_same_v<T, float>) {
        if (d <= chol_small_d::kMaxD) {  // two rows of L or grad_L per vector
          chol_small_d::backward_row(gl + r * d * d, ge ? ge + r * d : nullptr, gz + off[kFirst],
                                     l + off[kSecond], p.l_row_stride, eps, d);
          continue;
        }
      }
#endif
      for (int64_t i = 0; i < d; ++i) g[i] = static_cast<S>(gz[off[kFirst] + i]);
      T* gl_r = gl + r * d * d;
      for (int64_t i = 0; i < d; ++i) {
        if constexpr (std::is_same_v<T, S>) {
          grad_l_row<S>(gl_r + i * d, g[i], eps, i, d, masks);
        } else {
          grad_l_row<S>(row.data(), g[i], eps, i, d, masks);
          store_row(gl_r + i * d, row.data(), d);
        }
      }
      if (ge != nullptr) {
        std::fill(deps.begin(), deps.end(), S(0));
        const T* l_r = l + off[kSecond];
        for (int64_t i = 0; i < d; ++i) {
          axpy_row<T, S>(deps.data(), l_r + i * p.l_row_stride, g[i], i + 1);
        }
        store_row(ge + r * d, deps.data(), d);
      }
    }
  }
}

}  // namespace chol_rows
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fused_reparam
