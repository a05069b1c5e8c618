// The CPU range kernels of the diagonal op, written once and compiled per instruction set
// (see isa/*.cpp): one pass over memory, noise made in an L1-sized block buffer from the
// shared Philox / Box-Muller / formula headers, never written to memory.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "cpu/cpu_kernels.h"
#include "cpu/simd_words.h"
#include "fused_reparam/diag_math.h"
#include "fused_reparam/noise.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/philox.h"

namespace fused_reparam {
namespace cpu {
inline namespace CPU_CAPABILITY {

// Half types compute in float, float64 in double.
template <class T>
struct ComputeType {
  using type = float;
};
template <>
struct ComputeType<double> {
  using type = double;
};

// Loads and stores of kStep elements as two compute vectors.
template <class T>
struct VecIO {
  using C = Vectorized<T>;
  static constexpr int64_t kStep = 2 * C::size();
  static void load(const T* p, C& a, C& b) {
    a = C::loadu(p);
    b = C::loadu(p + C::size());
  }
  static void store(T* p, const C& a, const C& b) {
    a.store(p);
    b.store(p + C::size());
  }
};

template <class Half16>
struct VecIO16 {
  using C = Vectorized<float>;
  static constexpr int64_t kStep = Vectorized<Half16>::size();
  static_assert(kStep == 2 * C::size(), "16-bit vectors hold two float vectors");
  static void load(const Half16* p, C& a, C& b) {
    std::tie(a, b) = at::vec::convert_to_float<Half16>(Vectorized<Half16>::loadu(p));
  }
  static void store(Half16* p, const C& a, const C& b) {
    at::vec::convert_from_float<Half16>(a, b).store(p);
  }
};
template <>
struct VecIO<c10::Half> : VecIO16<c10::Half> {};
template <>
struct VecIO<c10::BFloat16> : VecIO16<c10::BFloat16> {};

// Elements per noise block: a few KiB of compute-type noise stays in L1.
constexpr int64_t kBlock = 512;
static_assert(kRangeAlign % kBlock == 0, "ranges start on block boundaries");
static_assert(kBlock % (8 * kLanes) == 0, "a block is whole pairs of vector Philox groups");
static_assert(kNoisePad >= 8 * kLanes, "fill_noise writes whole pairs of vector groups");

// Noise of kind `kind` of groups [group, group + kLanes) stored to out in element order:
// Philox lane j serves group + j, and its four values are interleaved back to elements
// 4j .. 4j+3. Kept out of line: inlined into the range kernels, GCC's AVX-512 code for the
// block loop runs 10-20% slower (measured at 2^20 elements).
C10_NOINLINE inline void noise_groups(float* out, uint64_t seed, uint64_t offset, uint64_t group,
                                      int kind) {
  using V = Vectorized<float>;
  alignas(64) uint32_t lo[kLanes];
  alignas(64) uint32_t hi[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    lo[j] = philox::lo32(group + static_cast<uint64_t>(j));
    hi[j] = philox::hi32(group + static_cast<uint64_t>(j));
  }
  const philox::Words4<WordVec> w = philox::philox4x32_10<WordVec>(
      WordVec::loadu(lo), WordVec::loadu(hi), WordVec(philox::lo32(offset)),
      WordVec(philox::hi32(offset)), philox::lo32(seed), philox::hi32(seed));
  V n0, n1, n2, n3;
  noise::from_words<V, float>(w, kind, n0, n1, n2, n3);
  // (n0, n2) and (n1, n3) interleaved, then those interleaved: n0 n1 n2 n3 per group.
  const auto a = at::vec::interleave2<float>(n0, n2);
  const auto b = at::vec::interleave2<float>(n1, n3);
  const auto lo_half = at::vec::interleave2<float>(a.first, b.first);
  const auto hi_half = at::vec::interleave2<float>(a.second, b.second);
  lo_half.first.store(out);
  lo_half.second.store(out + kLanes);
  hi_half.first.store(out + 2 * kLanes);
  hi_half.second.store(out + 3 * kLanes);
}

// Noise for elements [first, first + len) (first % 4 == 0) into buf, in element order; two
// independent Philox chains per step keep the multipliers busy.
inline void fill_noise(float* buf, uint64_t seed, uint64_t offset, int64_t first, int64_t len,
                       int kind = noise::kNormal) {
  const uint64_t group0 = static_cast<uint64_t>(first) >> 2;
  const int64_t groups = (len + 3) / 4;
  for (int64_t g = 0; g < groups; g += 2 * kLanes) {
    noise_groups(buf + 4 * g, seed, offset, group0 + static_cast<uint64_t>(g), kind);
    noise_groups(buf + 4 * (g + kLanes), seed, offset, group0 + static_cast<uint64_t>(g + kLanes),
                 kind);
  }
}

// float64 noise is computed per group in double (scalar: float64 is for checking, not speed).
inline void fill_noise(double* buf, uint64_t seed, uint64_t offset, int64_t first, int64_t len,
                       int kind = noise::kNormal) {
  const uint64_t group0 = static_cast<uint64_t>(first) >> 2;
  const int64_t groups = (len + 3) / 4;
  for (int64_t g = 0; g < groups; ++g) {
    noise::stream4<double>(seed, offset, group0 + static_cast<uint64_t>(g), kind, buf + 4 * g);
  }
}

// The two ops as formulas over any compute type F (scalar or vector), with their output slots.
struct ForwardOp {
  static constexpr bool kSecondOutput = false;
  static constexpr int kOut0 = kZ, kOut1 = kZ;
  template <class F, class S>
  static void apply(F mu, F s, F eps, const scale::Scale<S>& sc, F& z, F& /*unused*/) {
    z = diag::sample<F>(mu, scale::sigma<F, S>(s, sc), eps);
  }
};

template <bool kWithGradEps>
struct BackwardOp {
  static constexpr bool kSecondOutput = kWithGradEps;
  static constexpr int kOut0 = kGradSecond, kOut1 = kGradEps;
  template <class F, class S>
  static void apply(F dz, F s, F eps, const scale::Scale<S>& sc, F& ds, F& deps) {
    if constexpr (kWithGradEps) {
      const F base = scale::sigma_base<F, S>(s, sc);
      ds = diag::grad_scale<F>(dz, scale::dsigma<F, S>(s, base, sc), eps);
      deps = diag::grad_eps<F>(dz, base + F(sc.min));
    } else {
      ds = diag::grad_scale<F>(dz, scale::dsigma<F, S>(s, sc), eps);
    }
  }
};

template <class C>
auto first_lane(const C& v) {
  alignas(64) typename C::value_type lanes[C::size()];
  v.store(lanes);
  return lanes[0];
}

// One run of `n` elements along the innermost dim: inputs at base pointers with inner
// strides (0, 1 or other), outputs contiguous, eps from the noise buffer or from input 2.
template <class T, class Op>
void run_segment(const T* in0, int64_t s0, const T* in1, int64_t s1, const T* eps_in,
                 int64_t s2, const typename ComputeType<T>::type* noise,
                 const scale::Scale<typename ComputeType<T>::type>& sc, T* out0, T* out1,
                 int64_t n) {
  using S = typename ComputeType<T>::type;
  using C = Vectorized<S>;
  using IO = VecIO<T>;
  int64_t j = 0;
  const bool vec_ok = (s0 == 0 || s0 == 1) && (s1 == 0 || s1 == 1) &&
                      (eps_in == nullptr || s2 == 1);
  if (vec_ok) {
    C b0a, b0b, b1a, b1b;
    if (s0 == 0) b0a = b0b = C(static_cast<S>(in0[0]));
    if (s1 == 0) b1a = b1b = C(static_cast<S>(in1[0]));
    for (; j + IO::kStep <= n; j += IO::kStep) {
      C x0a = b0a, x0b = b0b, x1a = b1a, x1b = b1b, ea, eb;
      if (s0 == 1) IO::load(in0 + j, x0a, x0b);
      if (s1 == 1) IO::load(in1 + j, x1a, x1b);
      if (eps_in != nullptr) {
        IO::load(eps_in + j, ea, eb);
      } else {
        ea = C::loadu(noise + j);
        eb = C::loadu(noise + j + C::size());
      }
      C ya, yb, wa, wb;
      Op::template apply<C, S>(x0a, x1a, ea, sc, ya, wa);
      Op::template apply<C, S>(x0b, x1b, eb, sc, yb, wb);
      IO::store(out0 + j, ya, yb);
      if constexpr (Op::kSecondOutput) IO::store(out1 + j, wa, wb);
    }
  }
  // Strided runs and tails: the same vector functions on a broadcast value, so an element's
  // result does not depend on the layout, the tensor's size or its position in a vector.
  for (; j < n; ++j) {
    const S e = eps_in != nullptr ? static_cast<S>(eps_in[j * s2]) : noise[j];
    C y, w;
    Op::template apply<C, S>(C(static_cast<S>(in0[j * s0])), C(static_cast<S>(in1[j * s1])), C(e),
                             sc, y, w);
    out0[j] = static_cast<T>(first_lane(y));
    if constexpr (Op::kSecondOutput) out1[j] = static_cast<T>(first_lane(w));
  }
}

// Elements [begin, end) of the problem, begin a multiple of kRangeAlign: runs along d, row by
// row, each input at its row's offset plus its stride along d.
template <class T, class Op>
void run_range(const Problem& p, int64_t begin, int64_t end) {
  using S = typename ComputeType<T>::type;
  alignas(64) S noise[kBlock];
  const scale::Scale<S> sc{p.scale, static_cast<S>(p.min_scale)};
  const T* in0 = static_cast<const T*>(p.in[kFirst]);
  const T* in1 = static_cast<const T*>(p.in[kSecond]);
  const T* eps_in = static_cast<const T*>(p.in[kEps]);
  T* out0 = static_cast<T*>(p.out[Op::kOut0]);
  T* out1 = Op::kSecondOutput ? static_cast<T*>(p.out[Op::kOut1]) : nullptr;
  RowCursor<3> row(p, begin / p.d);
  int64_t col = begin % p.d;
  for (int64_t b0 = begin; b0 < end; b0 += kBlock) {
    const int64_t blen = std::min(kBlock, end - b0);
    if (eps_in == nullptr) fill_noise(noise, p.seed, p.offset, b0, blen, p.noise);
    for (int64_t pos = b0; pos < b0 + blen;) {
      const int64_t n = std::min(p.d - col, b0 + blen - pos);
      run_segment<T, Op>(in0 + row.off[kFirst] + col * p.dstride[kFirst], p.dstride[kFirst],
                         in1 + row.off[kSecond] + col * p.dstride[kSecond], p.dstride[kSecond],
                         eps_in != nullptr ? eps_in + row.off[kEps] + col * p.dstride[kEps]
                                           : nullptr,
                         p.dstride[kEps], noise + (pos - b0), sc, out0 + pos,
                         out1 != nullptr ? out1 + pos : nullptr, n);
      col += n;
      pos += n;
      if (col == p.d) {
        col = 0;
        row.next(p);
      }
    }
  }
}

template <class T>
void backward_range(const Problem& p, int64_t begin, int64_t end) {
  if (p.out[kGradEps] != nullptr) {
    run_range<T, BackwardOp<true>>(p, begin, end);
  } else {
    run_range<T, BackwardOp<false>>(p, begin, end);
  }
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fused_reparam
