// Philox4x32-10 (Salmon et al., SC 2011), the Random123 / cuRAND definition.
//
// Written once, generic over the word type W so that the scalar host path, the CUDA kernels
// and the CPU SIMD kernels run the very same rounds: W is uint32_t, or a SIMD vector of
// uint32 lanes that provides `W mulhilo(W a, uint32_t m, W& hi)` (found by ADL) and
// `operator^(W, uint32_t)` / `operator^(W, W)`. The key is a scalar: every lane of one
// call shares the stream's seed, only the counters differ.
#pragma once

#include <cstdint>

#include "fused_reparam/macros.h"

namespace fused_reparam {
namespace philox {

constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

// 32x32 -> 64-bit product of scalar words: returns the low half, writes the high half.
FR_HOST_DEVICE uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t& hi) {
#if FR_DEVICE_PASS
  hi = __umulhi(a, b);
  return a * b;
#else
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
#endif
}

template <class W>
struct Words4 {
  W x0, x1, x2, x3;
};

// Ten rounds on counter (c0, c1, c2, c3) with key (k0, k1); the key is bumped by the Weyl
// constants between rounds.
template <class W>
FR_HOST_DEVICE Words4<W> philox4x32_10(W c0, W c1, W c2, W c3, uint32_t k0, uint32_t k1) {
  FR_UNROLL
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    W hi0, hi1;
    const W lo0 = mulhilo(c0, kMul0, hi0);
    const W lo1 = mulhilo(c2, kMul1, hi1);
    const W n0 = hi1 ^ c1 ^ k0;
    const W n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return Words4<W>{c0, c1, c2, c3};
}

FR_HOST_DEVICE uint32_t lo32(uint64_t v) { return static_cast<uint32_t>(v); }
FR_HOST_DEVICE uint32_t hi32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }

// The noise contract's Philox call for group q = i >> 2 of a stream (seed, offset).
FR_HOST_DEVICE Words4<uint32_t> stream_words(uint64_t seed, uint64_t offset, uint64_t group) {
  return philox4x32_10<uint32_t>(lo32(group), hi32(group), lo32(offset), hi32(offset),
                                 lo32(seed), hi32(seed));
}

}  // namespace philox
}  // namespace fused_reparam
