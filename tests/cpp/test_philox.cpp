// The header-only noise contract on the host: Philox4x32-10 known answers (Random123's kat
// vectors), the word -> uniform map at its edges, and Box-Muller derived by hand from the
// words, including seeds, offsets and counters above 2^32. Needs no torch.
#include <cmath>
#include <cstdint>

#include "check.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/philox.h"

using fused_reparam::stream_normal_at;
using fused_reparam::uniform_from_word;
using fused_reparam::philox::philox4x32_10;
using fused_reparam::philox::Words4;

namespace {

void check_kat(const uint32_t c[4], const uint32_t k[2], const uint32_t want[4]) {
  const Words4<uint32_t> w = philox4x32_10<uint32_t>(c[0], c[1], c[2], c[3], k[0], k[1]);
  FR_CHECK_EQ(w.x0, want[0]);
  FR_CHECK_EQ(w.x1, want[1]);
  FR_CHECK_EQ(w.x2, want[2]);
  FR_CHECK_EQ(w.x3, want[3]);
}

// Element `index` of stream (seed, offset), derived here from the contract: counter
// (lo, hi of index / 4, lo, hi of offset), key (lo, hi of seed); float uniforms
// (w + 0.5) * 2^-32 and t = 2 pi u1 in float; log, sqrt, sin, cos in double.
double hand_normal(uint64_t seed, uint64_t offset, uint64_t index) {
  const uint64_t q = index >> 2;
  const Words4<uint32_t> w = philox4x32_10<uint32_t>(
      uint32_t(q), uint32_t(q >> 32), uint32_t(offset), uint32_t(offset >> 32), uint32_t(seed),
      uint32_t(seed >> 32));
  const uint32_t words[4] = {w.x0, w.x1, w.x2, w.x3};
  const unsigned pair = unsigned(index & 3) / 2;  // elements 0,1 use words 0,1; 2,3 use 2,3
  const float u0 = (float(words[2 * pair]) + 0.5f) * 0x1p-32f;
  const float u1 = (float(words[2 * pair + 1]) + 0.5f) * 0x1p-32f;
  const double r = std::sqrt(-2.0 * std::log(double(u0)));
  // t = 2 pi u1 rounds in float, as the contract says; with t in double the float path
  // differs by up to 1.6e-6 over 4M draws, with it by < 6e-7.
  const double t = double(6.2831855f * u1);
  return (index & 1) ? r * std::sin(t) : r * std::cos(t);
}

}  // namespace

FR_TEST(philox_known_answers) {
  const uint32_t z[4] = {0, 0, 0, 0}, zk[2] = {0, 0};
  const uint32_t zw[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
  check_kat(z, zk, zw);
  const uint32_t f[4] = {~0u, ~0u, ~0u, ~0u}, fk[2] = {~0u, ~0u};
  const uint32_t fw[4] = {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd};
  check_kat(f, fk, fw);
  const uint32_t p[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
  const uint32_t pk[2] = {0xa4093822, 0x299f31d0};
  const uint32_t pw[4] = {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1};
  check_kat(p, pk, pw);
}

FR_TEST(stream_words_layout) {
  // counter = (lo q, hi q, lo offset, hi offset), key = (lo seed, hi seed)
  const uint64_t seed = 0x299f31d0a4093822ull, offset = 0x0370734413198a2eull;
  const uint64_t group = 0x85a308d3243f6a88ull;
  const Words4<uint32_t> w = fused_reparam::philox::stream_words(seed, offset, group);
  FR_CHECK_EQ(w.x0, 0xd16cfe09u);
  FR_CHECK_EQ(w.x1, 0x94fdccebu);
  FR_CHECK_EQ(w.x2, 0x5001e420u);
  FR_CHECK_EQ(w.x3, 0x24126ea1u);
}

FR_TEST(uniform_edges) {
  // float: exact at both ends, never 0, 1.0 reachable (0xFFFFFFFF rounds up to 2^32)
  FR_CHECK_EQ((uniform_from_word<float, float>(0u)), 0x1p-33f);
  FR_CHECK_EQ((uniform_from_word<float, float>(1u)), 1.5f * 0x1p-32f);
  FR_CHECK_EQ((uniform_from_word<float, float>(0x80000000u)), 0.5f);  // 2^31 + 0.5 rounds down
  FR_CHECK_EQ((uniform_from_word<float, float>(0xFFFFFFFFu)), 1.0f);
  FR_CHECK_EQ((uniform_from_word<float, float>(0xFFFFFF00u)), 1.0f - 0x1p-24f);
  // double: every word exact, so the top is 1 - 2^-33
  FR_CHECK_EQ((uniform_from_word<double, double>(0u)), 0x1p-33);
  FR_CHECK_EQ((uniform_from_word<double, double>(0xFFFFFFFFu)), 1.0 - 0x1p-33);
  FR_CHECK_EQ((uniform_from_word<double, double>(12345u)), 12345.5 * 0x1p-32);
}

FR_TEST(box_muller_by_hand) {
  const uint64_t seeds[] = {0, 42, 0x123456789abcdef0ull, ~0ull};
  const uint64_t offsets[] = {0, 7, (1ull << 32) + 3, 0xfedcba9876543210ull};
  const uint64_t indices[] = {0, 1, 2, 3, 5, 38, (1ull << 34), (1ull << 34) + 3,
                              (1ull << 40) + 9, ~0ull};
  for (uint64_t seed : seeds) {
    for (uint64_t offset : offsets) {
      for (uint64_t i : indices) {
        const double want = hand_normal(seed, offset, i);
        // float math (logf, sqrtf, float 2 pi u1) against double math on the same uniforms
        FR_CHECK_NEAR(stream_normal_at<float>(seed, offset, i), want, 1e-6);
      }
    }
  }
}

FR_TEST(double_stream_matches_double_box_muller) {
  // stream_normal_at<double>: double uniforms and double math on the same words
  const uint64_t seed = 0x0123456789abcdefull, offset = (1ull << 33) + 1;
  const uint64_t indices[] = {0, 3, (1ull << 34) + 2, (1ull << 35) + 1};
  for (uint64_t i : indices) {
    const uint64_t q = i >> 2;
    const Words4<uint32_t> w = fused_reparam::philox::stream_words(seed, offset, q);
    const uint32_t words[4] = {w.x0, w.x1, w.x2, w.x3};
    const unsigned k = unsigned(i & 3) / 2 * 2;
    const double u0 = (double(words[k]) + 0.5) * 0x1p-32;
    const double u1 = (double(words[k + 1]) + 0.5) * 0x1p-32;
    const double r = std::sqrt(-2.0 * std::log(u0)), t = 6.283185307179586 * u1;
    FR_CHECK_NEAR(stream_normal_at<double>(seed, offset, i),
                  (i & 1) ? r * std::sin(t) : r * std::cos(t), 1e-12);
  }
}

FR_TEST(streams_differ) {
  // seed and offset bits above 2^32 matter
  const float a = stream_normal_at<float>(1, 0, 0);
  FR_CHECK(a != stream_normal_at<float>(1 + (1ull << 32), 0, 0));
  FR_CHECK(a != stream_normal_at<float>(1, 1ull << 32, 0));
  FR_CHECK(a != stream_normal_at<float>(1, 0, 1ull << 34));
}

int main() { return fr_check::run_all() == 0 ? 0 : 1; }
