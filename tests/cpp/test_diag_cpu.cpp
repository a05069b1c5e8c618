// The CPU diagonal op through the dispatcher, as a libtorch user calls it: hand-computed
// values with an explicit eps, the in-kernel stream against the header's stream_normal_at,
// the backward formulas, determinism and argument errors. Every test runs once per CPU
// kernel build (default, avx2, avx512; `test_diag_cpu <build>` runs one, 77 = unsupported).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>

#include "check.h"
#include "cpu_op_test.h"
#include "fused_reparam/noise.h"
#include "fused_reparam/normal.h"

namespace {

using cpu_op_test::check_values;
using cpu_op_test::seed_offset;
using cpu_op_test::tensor;
using Pair = std::tuple<at::Tensor, at::Tensor>;

// The scale: 0 logvar (the default), 1 log_std, 2 std, 3 softplus; min_scale added to sigma;
// the noise: 0 normal, 1 laplace, 2 logistic, 3 gumbel.
Pair rsample(const at::Tensor& mu, const at::Tensor& s, const std::optional<at::Tensor>& eps,
             const std::optional<at::Tensor>& seed_offset, int64_t scale = 0,
             double min_scale = 0.0, int64_t noise = 0) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fused_reparam::diag_rsample", "")
                       .typed<Pair(const at::Tensor&, const at::Tensor&, int64_t,
                                   const std::optional<at::Tensor>&,
                                   const std::optional<at::Tensor>&,
                                   std::optional<at::Generator>, double, int64_t)>();
  return op.call(mu, s, scale, eps, seed_offset, std::nullopt, min_scale, noise);
}

Pair rsample_backward(const at::Tensor& grad_z, const at::Tensor& s,
                      const std::optional<at::Tensor>& eps, const at::Tensor& seed_offset,
                      bool need_grad_eps, int64_t scale = 0, double min_scale = 0.0,
                      int64_t noise = 0) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fused_reparam::diag_rsample_backward", "")
                       .typed<Pair(const at::Tensor&, const at::Tensor&,
                                   const std::optional<at::Tensor>&, const at::Tensor&, bool,
                                   int64_t, double, int64_t)>();
  return op.call(grad_z, s, eps, seed_offset, need_grad_eps, scale, min_scale, noise);
}

constexpr double kLn4 = 1.3862943611198906;  // sigma = exp(0.5 * ln 4) = 2
constexpr double kE = 2.718281828459045;     // sigma for logvar = 2

at::Tensor mu_of_four() { return at::zeros({4}); }

}  // namespace

// mu = {0.5, -1, 2, 0.25}, logvar = {0, ln 4, -ln 4, 2} (sigma 1, 2, 0.5, e),
// eps = {1, 0.5, -2, 1.5}, grad_z = {1, 2, -1, 0.5}
FR_TEST(explicit_eps_forward_and_backward) {
  for (at::ScalarType t : {at::kFloat, at::kDouble}) {
    const double tol = t == at::kFloat ? 1e-6 : 1e-12;
    const at::Tensor mu = tensor({0.5, -1.0, 2.0, 0.25}, t);
    const at::Tensor lv = tensor({0.0, kLn4, -kLn4, 2.0}, t);
    const at::Tensor eps = tensor({1.0, 0.5, -2.0, 1.5}, t);
    const auto [z, used] = rsample(mu, lv, eps, std::nullopt);
    FR_CHECK(z.scalar_type() == t);
    // z = mu + sigma * eps
    check_values(z, {1.5, 0.0, 1.0, 0.25 + 1.5 * kE}, tol);
    FR_CHECK(used.equal(seed_offset(0, 0)));  // zeros when eps is given

    const at::Tensor g = tensor({1.0, 2.0, -1.0, 0.5}, t);
    const auto [glv, geps] = rsample_backward(g, lv, eps, used, true);
    // grad_logvar = 0.5 * g * sigma * eps, grad_eps = g * sigma
    check_values(glv, {0.5, 1.0, 0.5, 0.375 * kE}, tol);
    check_values(geps, {1.0, 4.0, -0.5, 0.5 * kE}, tol);
    const auto [glv2, none] = rsample_backward(g, lv, eps, used, false);
    check_values(glv2, {0.5, 1.0, 0.5, 0.375 * kE}, tol);
    FR_CHECK_EQ(none.numel(), 0);
  }
}

// mu = {0.5, -1}, eps = {1, -2}, grad_z = {1, 2}: each scale's sigma and d sigma / ds.
FR_TEST(scales_forward_and_backward) {
  const double sp30 = 30.0 + std::log1p(std::exp(-30.0));  // softplus(30), exactly
  const double sg30 = 1.0 / (1.0 + std::exp(-30.0));
  struct Case {
    int64_t scale;
    double min_scale, s0, s1, sigma0, sigma1, dsigma0, dsigma1;
  };
  const Case cases[] = {
      {1, 0.0, 0.0, std::log(2.0), 1.0, 2.0, 1.0, 2.0},        // log_std: exp(s)
      {2, 0.5, 1.5, 2.0, 2.0, 2.5, 1.0, 1.0},                  // std: 0.5 + s
      {3, 0.0, 0.0, 30.0, std::log(2.0), sp30, 0.5, sg30},     // softplus
      {0, 0.25, 0.0, kLn4, 1.25, 2.25, 0.5, 1.0},              // logvar: 0.25 + exp(s / 2)
  };
  for (at::ScalarType t : {at::kFloat, at::kDouble}) {
    const double tol = t == at::kFloat ? 2e-6 : 1e-12;
    const at::Tensor mu = tensor({0.5, -1.0}, t);
    const at::Tensor eps = tensor({1.0, -2.0}, t);
    const at::Tensor g = tensor({1.0, 2.0}, t);
    for (const Case& c : cases) {
      const at::Tensor s = tensor({c.s0, c.s1}, t);
      const auto [z, used] = rsample(mu, s, eps, std::nullopt, c.scale, c.min_scale);
      check_values(z, {0.5 + c.sigma0, -1.0 - 2.0 * c.sigma1}, tol * 30);
      const auto [gs, geps] = rsample_backward(g, s, eps, used, true, c.scale, c.min_scale);
      check_values(gs, {c.dsigma0, -4.0 * c.dsigma1}, tol);  // g * sigma' * eps
      check_values(geps, {c.sigma0, 2.0 * c.sigma1}, tol * 30);
    }
  }
  FR_CHECK_THROWS(rsample(mu_of_four(), mu_of_four(), std::nullopt, std::nullopt, 4),
                  c10::Error, "scale must be 0 (logvar)");
  FR_CHECK_THROWS(rsample(mu_of_four(), mu_of_four(), std::nullopt, std::nullopt, 0, -1.0),
                  c10::Error, "min_scale must be finite and >= 0");
}

FR_TEST(broadcast_explicit_eps) {
  // mu [2, 1] and logvar [3] broadcast to [2, 3]
  const at::Tensor mu = tensor({1.0, -1.0}, at::kDouble).reshape({2, 1});
  const at::Tensor lv = tensor({0.0, kLn4, -kLn4}, at::kDouble);
  const at::Tensor eps = tensor({1, 2, 3, 4, 5, 6}, at::kDouble).reshape({2, 3});
  const auto [z, used] = rsample(mu, lv, eps, std::nullopt);
  FR_CHECK(z.sizes() == at::IntArrayRef({2, 3}));
  check_values(z, {2.0, 5.0, 2.5, 3.0, 9.0, 2.0}, 1e-12);
}

FR_TEST(stream_matches_header) {
  const uint64_t seed = 0x9e3779b97f4a7c15ull, offset = (1ull << 32) + 12345;  // above 2^32
  const at::Tensor so = seed_offset(seed, offset);
  for (at::ScalarType t : {at::kFloat, at::kDouble}) {
    const at::Tensor zeros = at::zeros({37}, at::TensorOptions().dtype(t));  // odd: a tail
    const auto [z, used] = rsample(zeros, zeros, std::nullopt, so);
    FR_CHECK(used.equal(so));
    const at::Tensor zd = z.to(at::kDouble);
    for (int64_t i = 0; i < 37; ++i) {
      if (t == at::kFloat) {
        // SIMD Sleef math vs the scalar libm math of the header
        FR_CHECK_NEAR(zd[i].item<double>(), fused_reparam::stream_normal_at<float>(seed, offset, i),
                      1e-5);
      } else {
        FR_CHECK_NEAR(zd[i].item<double>(),
                      fused_reparam::stream_normal_at<double>(seed, offset, i), 1e-12);
      }
    }
    // the backward regenerates the same eps: grad_logvar = 0.5 * 1 * 1 * eps
    const at::Tensor ones = at::ones({37}, at::TensorOptions().dtype(t));
    const auto [glv, unused] = rsample_backward(ones, zeros, std::nullopt, used, false);
    FR_CHECK(at::allclose(glv.to(at::kDouble), 0.5 * zd, 1e-6, 1e-6));
  }
}

// Each noise kind: the op's noise is the header's (stream4), for float32 (SIMD math, a few
// ulps) and float64; the backward regenerates it (grad_s = 0.5 * eps for logvar = 0).
FR_TEST(noise_kinds_match_header) {
  const uint64_t seed = 12345, offset = 678;
  const at::Tensor so = seed_offset(seed, offset);
  for (int64_t kind = 1; kind < fused_reparam::noise::kNumKinds; ++kind) {
    for (at::ScalarType t : {at::kFloat, at::kDouble}) {
      const at::Tensor zeros = at::zeros({41}, at::TensorOptions().dtype(t));
      const auto [z, used] = rsample(zeros, zeros, std::nullopt, so, 0, 0.0, kind);
      const at::Tensor zd = z.to(at::kDouble);
      for (int64_t i = 0; i < 41; ++i) {
        double want;
        if (t == at::kFloat) {
          float n[4];
          fused_reparam::noise::stream4<float>(seed, offset, i >> 2, static_cast<int>(kind), n);
          want = n[i & 3];
        } else {
          double n[4];
          fused_reparam::noise::stream4<double>(seed, offset, i >> 2, static_cast<int>(kind), n);
          want = n[i & 3];
        }
        FR_CHECK_NEAR(zd[i].item<double>(), want, t == at::kFloat ? 1e-5 : 1e-12);
      }
      const at::Tensor ones = at::ones({41}, at::TensorOptions().dtype(t));
      const auto [gs, unused] = rsample_backward(ones, zeros, std::nullopt, used, false, 0, 0.0,
                                                 kind);
      FR_CHECK(at::allclose(gs.to(at::kDouble), 0.5 * zd, 1e-6, 1e-6));
    }
  }
  FR_CHECK_THROWS(rsample(mu_of_four(), mu_of_four(), std::nullopt, std::nullopt, 0, 0.0, 4),
                  c10::Error, "noise must be 0 (normal)");
}

// The extreme words give finite noise, and the inverse CDFs' values.
FR_TEST(noise_words_at_the_ends_are_finite) {
  namespace nz = fused_reparam::noise;
  for (uint32_t w : {0u, 1u, 0x7FFFFFFFu, 0x80000000u, 0x80000001u, 0xFFFFFF7Fu, 0xFFFFFFFFu}) {
    for (int kind = 1; kind < nz::kNumKinds; ++kind) {
      const float f = nz::from_word<float, float>(w, kind);
      const double d = nz::from_word<double, double>(w, kind);
      FR_CHECK(std::isfinite(f) && std::isfinite(d));
      const double u = (static_cast<double>(w) + 0.5) * 0x1p-32;  // the CDF value it inverts
      double want = -std::log(-std::log(u));                       // gumbel
      if (kind == nz::kLaplace) want = u <= 0.5 ? std::log(2 * u) : -std::log(2 - 2 * u);
      if (kind == nz::kLogistic) want = std::log(u / (1 - u));
      FR_CHECK_NEAR(d, want, 1e-9 * (1 + std::abs(want)));
    }
  }
}

FR_TEST(same_seed_same_z) {
  const at::Tensor mu = at::randn({1000}), lv = at::randn({1000});
  const auto [a, ua] = rsample(mu, lv, std::nullopt, seed_offset(7, 3));
  const auto [b, ub] = rsample(mu, lv, std::nullopt, seed_offset(7, 3));
  const auto [c, uc] = rsample(mu, lv, std::nullopt, seed_offset(8, 3));
  FR_CHECK(a.equal(b));
  FR_CHECK(!a.equal(c));
}

FR_TEST(bad_input_errors) {
  const at::Tensor lv = at::zeros({4});
  const at::Tensor mu_int = at::zeros({4}, at::TensorOptions().dtype(at::kInt));
  FR_CHECK_THROWS(rsample(mu_int, lv, std::nullopt, std::nullopt), c10::Error, "mu");
  FR_CHECK_THROWS(rsample(lv, lv, std::nullopt, at::zeros({3}, at::kLong)), c10::Error,
                  "seed_offset");
  FR_CHECK_THROWS(rsample(lv, at::zeros({3}), std::nullopt, std::nullopt), c10::Error,
                  "broadcastable");
}

int main(int argc, char** argv) { return cpu_op_test::run_main(argc, argv); }
