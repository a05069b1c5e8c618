// The CPU row kernels of the Cholesky op's forward z = mu + L eps and the row helpers its
// backward (chol_cpu_backward_impl.h) and stats kernels share, written once and compiled per
// instruction set (isa/*.cpp, after diag_cpu_kernels_impl.h, whose noise they use). A task
// takes a range of sample rows; noise is made for a chunk of rows at a time into an L1-sized
// buffer. Row i of L is read over j <= i only, in vectors whose last one is a partial load,
// so the upper triangle is never touched (tests put NaN there).
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/problem.h"
#include "cpu/chol_small_d_avx512.h"
#include "cpu/cpu_kernels.h"
#include "cpu/diag_cpu_kernels_impl.h"  // ComputeType, fill_noise of this instruction set

namespace fused_reparam {
namespace cpu {
inline namespace CPU_CAPABILITY {
namespace chol_rows {

// Rows per noise chunk: about 2K elements of noise, which stay in L1.
inline int64_t chunk_rows(const Problem& p) { return std::max<int64_t>(1, 2048 / p.d); }

// Up to C::size() elements of T at p as a compute vector; lanes from `count` on are zero and
// their memory is not read.
template <class T, class C>
C10_ALWAYS_INLINE C load(const T* p, int64_t count) {
  constexpr int64_t kW = C::size();
  if constexpr (std::is_same_v<T, typename C::value_type>) {
    return count >= kW ? C::loadu(p) : C::loadu(p, count);
  } else {  // 16-bit storage: a 16-bit vector holds two compute vectors
    const auto h = count >= kW ? Vectorized<T>::loadu(p, kW) : Vectorized<T>::loadu(p, count);
    return std::get<0>(at::vec::convert_to_float<T>(h));
  }
}

// eps of rows [r0, r1) of the stream (elements r0*D .. r1*D - 1), in the compute type.
template <class S>
struct ChunkNoise {
  std::vector<S> buf;
  const S* rows = nullptr;  // eps of row r0 starts here

  void fill(const Problem& p, int64_t r0, int64_t r1) {
    const int64_t begin = noise_index(p, r0, 0);
    const int64_t first = begin & ~int64_t{3};
    const int64_t len = noise_index(p, r1, 0) - first;
    const size_t need = static_cast<size_t>(len + 4 + kNoisePad);
    if (buf.size() < need) buf.resize(need);
    fill_noise(buf.data(), p.seed, p.offset, first, len);
    rows = buf.data() + (begin - first);
  }
};

// A row of an operand (stride s along D: 1, 0 = broadcast, or any) into dst[0, d).
template <class T, class S>
void gather_row(S* dst, const T* src, int64_t s, int64_t d) {
  if (s == 1) {
    if constexpr (std::is_same_v<T, S>) {
      std::copy(src, src + d, dst);
    } else {
      at::vec::convert(src, dst, d);
    }
  } else if (s == 0) {
    std::fill(dst, dst + d, static_cast<S>(src[0]));
  } else {
    for (int64_t j = 0; j < d; ++j) dst[j] = static_cast<S>(src[j * s]);
  }
}

// The eps of row k of the chunk: the chunk's noise, or the given eps (at eps_off) gathered
// into `scratch`.
template <class T, class S>
const S* row_eps(const Problem& p, int64_t eps_off, const ChunkNoise<S>& noise, int64_t k,
                 S* scratch) {
  if (p.in[kEps] == nullptr) return noise.rows + k * p.d;
  gather_row<T, S>(scratch, static_cast<const T*>(p.in[kEps]) + eps_off, p.dstride[kEps], p.d);
  return scratch;
}

// sum_{j < n} l[j] * eps[j] as a vector of partial sums; lanes past n add zero (both loads
// are partial there, so neither the upper triangle nor eps past n is read).
template <class T, class S>
C10_ALWAYS_INLINE Vectorized<S> dot_lanes(const T* l, const S* eps, int64_t n) {
  using C = Vectorized<S>;
  constexpr int64_t kW = C::size();
  const int64_t full = n - n % kW;
  C acc0(S(0)), acc1(S(0));
  int64_t j = 0;
  for (; j + 2 * kW <= full; j += 2 * kW) {
    acc0 = at::vec::fmadd(load<T, C>(l + j, kW), C::loadu(eps + j), acc0);
    acc1 = at::vec::fmadd(load<T, C>(l + j + kW, kW), C::loadu(eps + j + kW), acc1);
  }
  if (j < full) acc1 = at::vec::fmadd(load<T, C>(l + j, kW), C::loadu(eps + j), acc1);
  if (full < n) {
    acc0 = at::vec::fmadd(load<T, C>(l + full, n - full), C::loadu(eps + full, n - full), acc0);
  }
  return acc0 + acc1;
}

template <class S>
S hsum(const Vectorized<S>& v) {
  return at::vec::vec_reduce_all<S>([](Vectorized<S>& a, Vectorized<S>& b) { return a + b; }, v);
}

// The four horizontal sums of a..d into out[0..3]. A row's dot product is only a few vector
// multiply-adds for the D of VAEs, so its horizontal sum is the main cost: summing four rows
// together shares the shuffles.
template <class S>
void hsum4(const Vectorized<S>& a, const Vectorized<S>& b, const Vectorized<S>& c,
           const Vectorized<S>& d, S* out) {
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (std::is_same_v<S, float>) {
    const auto half = [](__m512 v) {
      const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
      return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    };
    _mm_storeu_ps(out, _mm_hadd_ps(_mm_hadd_ps(half(a), half(b)), _mm_hadd_ps(half(c), half(d))));
    return;
  }
#elif defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<S, float>) {
    const auto half = [](__m256 v) {
      return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    };
    _mm_storeu_ps(out, _mm_hadd_ps(_mm_hadd_ps(half(a), half(b)), _mm_hadd_ps(half(c), half(d))));
    return;
  }
#endif
  out[0] = hsum(a);
  out[1] = hsum(b);
  out[2] = hsum(c);
  out[3] = hsum(d);
}

// z_r = mu_r + L_r eps for one sample row (rows of L `ls` elements apart).
template <class T, class S>
void lower_matvec_row(T* z_r, const T* mu_r, const T* l_r, int64_t ls, const S* eps, int64_t d) {
  int64_t i = 0;
  alignas(16) S sums[4];
  for (; i + 4 <= d; i += 4) {
    const T* l = l_r + i * ls;
    hsum4<S>(dot_lanes(l, eps, i + 1), dot_lanes(l + ls, eps, i + 2),
             dot_lanes(l + 2 * ls, eps, i + 3), dot_lanes(l + 3 * ls, eps, i + 4), sums);
    for (int k = 0; k < 4; ++k) {
      z_r[i + k] = static_cast<T>(static_cast<S>(mu_r[i + k]) + sums[k]);
    }
  }
  for (; i < d; ++i) {
    z_r[i] = static_cast<T>(static_cast<S>(mu_r[i]) + hsum(dot_lanes(l_r + i * ls, eps, i + 1)));
  }
}

// lower_matvec_row, or its two-rows-per-vector form where there is one (float, D <= 8).
template <class T, class S>
C10_ALWAYS_INLINE void matvec_row(T* z_r, const T* mu_r, const T* l_r, int64_t ls, const S* eps,
                                  int64_t d) {
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (std::is_same_v<T, float>) {
    if (d <= chol_small_d::kMaxD) {
      return chol_small_d::lower_matvec_row(z_r, mu_r, l_r, ls, eps, d);
    }
  }
#endif
  lower_matvec_row<T, S>(z_r, mu_r, l_r, ls, eps, d);
}

// Sample rows ahead whose L is prefetched, for D in [16, 32]: a sample's L then spans 1-4 KB,
// and the hardware prefetcher stops at 4 KB page boundaries. Larger L (16 KB at D = 64, MBs
// at D = 1024) prefetched whole two rows ahead would evict the row being read (measured 1.6-1.9x
// slower at D = 512 and 1024, no gain at 64); its long rows keep the hardware prefetcher going.
constexpr int64_t kPrefetchAhead = 2;
constexpr int64_t kPrefetchMinD = 16;
constexpr int64_t kPrefetchMaxD = 32;

// The cache lines of the lower triangle of one sample's L.
template <class T>
C10_ALWAYS_INLINE void prefetch_lower(const T* l_r, int64_t ls, int64_t d) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t i = 0; i < d; ++i) {
    const T* row = l_r + i * ls;
    for (int64_t j = 0; j < i; j += kLine) __builtin_prefetch(row + j, 0, 3);
    __builtin_prefetch(row + i, 0, 3);
  }
}

template <class T>
void forward_rows(const Problem& p, int64_t r0, int64_t r1) {
  using S = typename ComputeType<T>::type;
  const int64_t d = p.d;
  ChunkNoise<S> noise;
  std::vector<S> given(static_cast<size_t>(d));
  const T* mu = static_cast<const T*>(p.in[kFirst]);
  const T* l = static_cast<const T*>(p.in[kSecond]);
  T* z = static_cast<T*>(p.out[kZ]);
  bool prefetch = false;  // an L per sample row (a shared one stays in cache anyway)
  for (int k = 0; k < p.bdim; ++k) prefetch = prefetch || p.bstrides[kSecond][k] != 0;
  prefetch = prefetch && d >= kPrefetchMinD && d <= kPrefetchMaxD;
  RowCursor<3> at(p, r0), ahead(p, std::min(r0 + kPrefetchAhead, r1));
  for (int64_t c0 = r0; c0 < r1; c0 += chunk_rows(p)) {
    const int64_t c1 = std::min(r1, c0 + chunk_rows(p));
    if (p.in[kEps] == nullptr) noise.fill(p, c0, c1);
    for (int64_t r = c0; r < c1; ++r, at.next(p)) {
      const int64_t* off = at.off;
      if (prefetch && r + kPrefetchAhead < r1) {
        prefetch_lower(l + ahead.off[kSecond], p.l_row_stride, d);
        ahead.next(p);
      }
      const S* eps = row_eps<T, S>(p, off[kEps], noise, r - c0, given.data());
      matvec_row<T, S>(z + r * d, mu + off[kFirst], l + off[kSecond], p.l_row_stride, eps, d);
    }
  }
}

}  // namespace chol_rows
}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fused_reparam
