// The noise kinds of the diagonal op (docs/design.md, "The noise contract"): each a transform
// of the same Philox words, so every backend draws the same numbers. The normal takes
// Box-Muller on pairs of words (normal.h); the others take one word per element: element
// 4q + j of the stream is a function of word x_j of Philox call q, through the uniform
// u = (x + 0.5) 2^-32 and its mirror u' = (~x + 0.5) 2^-32 (1 - u in exact arithmetic), both
// in (0, 1] in the compute type, so each formula below stays finite for every word:
//
//   laplace   u <= 1/2 ? log(2 u) : -log(2 u')
//   logistic  log(u) - log(u')
//   gumbel    -log(E),  E = u <= 1/2 ? -log(u) : -log1p(-u')   (E > 0: an exponential)
//
// The kind is one value for a whole launch: the branches are uniform.
#pragma once

#include <cstdint>

#include "fused_reparam/macros.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/philox.h"

namespace fused_reparam {
namespace noise {

enum Kind : int { kNormal = 0, kLaplace = 1, kLogistic = 2, kGumbel = 3 };
constexpr int kNumKinds = 4;

// x with every bit flipped (2^32 - 1 - x), for a scalar word or a SIMD word vector.
FR_HOST_DEVICE uint32_t mirror(uint32_t x) { return ~x; }
template <class W>
FR_HOST_DEVICE W mirror(const W& x) {
  return x ^ W(0xFFFFFFFFu);
}

// One element's noise of kind `kind` (not kNormal) from its word.
template <class F, class S, class W>
FR_HOST_DEVICE F from_word(W x, int kind) {
  const F u = uniform_from_word<F, S>(x);
  const F um = uniform_from_word<F, S>(mirror(x));
  const F half(S(0.5)), two(S(2));
  switch (kind) {
    case kLaplace:
      return MathOps<F>::select_gt(u, half, F(S(0)) - MathOps<F>::log(two * um),
                                   MathOps<F>::log(two * u));
    case kLogistic:
      return MathOps<F>::log(u) - MathOps<F>::log(um);
    default: {
      const F e = MathOps<F>::select_gt(u, half, F(S(0)) - MathOps<F>::log1p(F(S(0)) - um),
                                        F(S(0)) - MathOps<F>::log(u));
      return F(S(0)) - MathOps<F>::log(e);
    }
  }
}

// The four elements fed by one Philox call: words (x0..x3) -> (n0..n3).
template <class F, class S, class W>
FR_HOST_DEVICE void from_words(const philox::Words4<W>& w, int kind, F& n0, F& n1, F& n2,
                               F& n3) {
  if (kind == kNormal) {
    normals_from_words<F, S>(w, n0, n1, n2, n3);
    return;
  }
  n0 = from_word<F, S>(w.x0, kind);
  n1 = from_word<F, S>(w.x1, kind);
  n2 = from_word<F, S>(w.x2, kind);
  n3 = from_word<F, S>(w.x3, kind);
}

// Scalar noise of group q of stream (seed, offset): elements 4q .. 4q+3.
template <class S>
FR_HOST_DEVICE void stream4(uint64_t seed, uint64_t offset, uint64_t group, int kind, S out[4]) {
  const philox::Words4<uint32_t> w = philox::stream_words(seed, offset, group);
  from_words<S, S>(w, kind, out[0], out[1], out[2], out[3]);
}

}  // namespace noise
}  // namespace fused_reparam
