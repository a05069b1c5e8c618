// The CPU Cholesky op and the ops with VAE extras through the dispatcher, as a libtorch user
// calls them: hand-computed values with an explicit eps (D = 2, NaN above the diagonal of L),
// forward and backward, and argument errors. Every test runs once per CPU kernel build.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <tuple>

#include "check.h"
#include "cpu_op_test.h"

namespace {

using cpu_op_test::check_values;
using cpu_op_test::seed_offset;
using cpu_op_test::tensor;
using OptT = std::optional<at::Tensor>;
using Pair = std::tuple<at::Tensor, at::Tensor>;
using Three = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Four = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The op `name` with the C++ signature Out(Args...) (Args given explicitly).
template <class Out, class... Args>
Out call(const char* name, Args... args) {
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Out(Args...)>();
  return op.call(args...);
}

Pair chol(const at::Tensor& mu, const at::Tensor& l, const OptT& eps) {
  return call<Pair, const at::Tensor&, const at::Tensor&, const OptT&, const OptT&,
              std::optional<at::Generator>>("fused_reparam::chol_rsample", mu, l, eps,
                                            std::nullopt, std::nullopt);
}

// The diagonal ops also take the scale (0 logvar, 1 log_std, ...), min_scale and the tanh
// squash (squash, low, high).
Four stats(const char* name, const at::Tensor& mu, const at::Tensor& second, const OptT& eps,
           int64_t scale = 0, bool squash = false, double low = -1.0, double high = 1.0) {
  if (std::string(name).find("diag") != std::string::npos) {
    return call<Four, const at::Tensor&, const at::Tensor&, int64_t, const OptT&, const OptT&,
                std::optional<at::Generator>, double, bool, double, double>(
        name, mu, second, scale, eps, std::nullopt, std::nullopt, 0.0, squash, low, high);
  }
  return call<Four, const at::Tensor&, const at::Tensor&, const OptT&, const OptT&,
              std::optional<at::Generator>>(name, mu, second, eps, std::nullopt, std::nullopt);
}

Three stats_backward(const char* name, const at::Tensor& gz, const at::Tensor& gk,
                     const at::Tensor& gq, const at::Tensor& mu, const at::Tensor& second,
                     const OptT& eps, bool need_grad_eps, int64_t scale = 0) {
  if (std::string(name).find("diag") != std::string::npos) {
    return call<Three, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                const at::Tensor&, const at::Tensor&, const OptT&, const at::Tensor&, bool,
                int64_t, double, bool, double, double>(name, gz, gk, gq, mu, second, eps,
                                                       seed_offset(0, 0), need_grad_eps, scale,
                                                       0.0, false, -1.0, 1.0);
  }
  return call<Three, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
              const at::Tensor&, const OptT&, const at::Tensor&, bool>(
      name, gz, gk, gq, mu, second, eps, seed_offset(0, 0), need_grad_eps);
}

constexpr double kLn3 = 1.0986122886681098;     // log|det L| = log 2 + log 1.5
constexpr double kLn4 = 1.3862943611198906;     // logvar giving sigma = 2
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// mu = {0.5, -1}, L = [[2, NaN], [0.5, 1.5]], eps = {1, -2}; grads gz = {1, 2}, gk = 0.5,
// gq = -1. Tolerances: float32 / float64 arithmetic on these exact inputs.
double tol_of(at::ScalarType t) { return t == at::kDouble ? 1e-14 : 1e-6; }

}  // namespace

FR_TEST(chol_values_and_gradients) {
  for (at::ScalarType t : {at::kFloat, at::kDouble}) {
    const at::Tensor mu = tensor({0.5, -1.0}, t);
    const at::Tensor l = tensor({2.0, kNaN, 0.5, 1.5}, t).view({2, 2});
    const at::Tensor eps = tensor({1.0, -2.0}, t);
    check_values(std::get<0>(chol(mu, l, eps)), {2.5, -3.5}, tol_of(t));
    const auto [gl, ge] = call<Pair, const at::Tensor&, const at::Tensor&, const OptT&,
                               const at::Tensor&, bool>("fused_reparam::chol_rsample_backward",
                                                        tensor({1.0, 2.0}, t), l, eps,
                                                        seed_offset(0, 0), true);
    check_values(gl, {1.0, 0.0, 2.0, -4.0}, tol_of(t));  // tril(gz eps^T)
    check_values(ge, {3.0, 3.0}, tol_of(t));             // L^T gz
  }
}

FR_TEST(chol_stats_values_and_gradients) {
  for (at::ScalarType t : {at::kFloat, at::kDouble}) {
    const at::Tensor mu = tensor({0.5, -1.0}, t);
    const at::Tensor l = tensor({2.0, kNaN, 0.5, 1.5}, t).view({2, 2});
    const at::Tensor eps = tensor({1.0, -2.0}, t);
    const auto [z, kl, log_q, used] = stats("fused_reparam::chol_rsample_stats", mu, l, eps);
    check_values(z, {2.5, -3.5}, tol_of(t));
    check_values(kl, {0.5 * 5.75 - kLn3}, tol_of(t));  // 0.5 (|L|^2 + |mu|^2 - 2) - log|det L|
    check_values(log_q, {-2.5 - kLn3 - kLog2Pi}, tol_of(t));
    const auto [g_mu, g_l, g_eps] =
        stats_backward("fused_reparam::chol_rsample_stats_backward", tensor({1.0, 2.0}, t),
                       tensor({0.5}, t).squeeze(0), tensor({-1.0}, t).squeeze(0), mu, l, eps, true);
    check_values(g_mu, {1.25, 1.5}, tol_of(t));  // gz + gk mu
    // tril(gz eps^T) + gk tril(L) - diag((gk + gq) / L_ii)
    check_values(g_l, {2.25, 0.0, 2.25, -4.0 + 0.75 + 0.5 / 1.5}, tol_of(t));
    check_values(g_eps, {4.0, 1.0}, tol_of(t));  // L^T gz - gq eps
  }
}

FR_TEST(diag_stats_values_and_gradients) {
  for (at::ScalarType t : {at::kFloat, at::kDouble}) {
    const at::Tensor mu = tensor({0.5, -1.0}, t);
    const at::Tensor lv = tensor({0.0, kLn4}, t);  // sigma = {1, 2}
    const at::Tensor eps = tensor({1.0, -2.0}, t);
    const auto [z, kl, log_q, used] = stats("fused_reparam::diag_rsample_stats", mu, lv, eps);
    check_values(z, {1.5, -5.0}, tol_of(t));
    check_values(kl, {0.5 * (0.25 + 4.0 - kLn4)}, tol_of(t));
    check_values(log_q, {-0.5 * (5.0 + kLn4 + 2.0 * kLog2Pi)}, tol_of(t));
    const auto [g_mu, g_lv, g_eps] =
        stats_backward("fused_reparam::diag_rsample_stats_backward", tensor({1.0, 2.0}, t),
                       tensor({0.5}, t).squeeze(0), tensor({-1.0}, t).squeeze(0), mu, lv, eps, true);
    check_values(g_mu, {1.25, 1.5}, tol_of(t));
    check_values(g_lv, {1.0, -2.75}, tol_of(t));  // 0.5 (gz sigma eps + gk (sigma^2 - 1) - gq)
    check_values(g_eps, {2.0, 2.0}, tol_of(t));   // gz sigma - gq eps
    // The same sigma from log_std s = logvar / 2: the same extras, and grad_s = 2 grad_logvar.
    const at::Tensor ls = tensor({0.0, 0.5 * kLn4}, t);
    const auto [z2, kl2, log_q2, used2] =
        stats("fused_reparam::diag_rsample_stats", mu, ls, eps, 1);
    check_values(kl2, {0.5 * (0.25 + 4.0 - kLn4)}, tol_of(t));
    check_values(log_q2, {-0.5 * (5.0 + kLn4 + 2.0 * kLog2Pi)}, tol_of(t));
    const auto [g_mu2, g_ls, g_eps2] = stats_backward(
        "fused_reparam::diag_rsample_stats_backward", tensor({1.0, 2.0}, t),
        tensor({0.5}, t).squeeze(0), tensor({-1.0}, t).squeeze(0), mu, ls, eps, true, 1);
    check_values(g_ls, {2.0, -5.5}, tol_of(t));
  }
}

// u = 0 (mu = eps = 0, sigma = 1 from log_std 0) squashed into (-1, 3): the action is the
// midpoint 1, and log_prob per element is log N(0; 0, 1) - log(1 - tanh(0)^2) - log(2).
FR_TEST(diag_stats_squash_at_the_midpoint) {
  for (at::ScalarType t : {at::kFloat, at::kDouble}) {
    const at::Tensor zero = at::zeros({2, 3}, at::TensorOptions().dtype(t));
    const auto [a, kl, log_prob, used] =
        stats("fused_reparam::diag_rsample_stats", zero, zero, zero, 1, true, -1.0, 3.0);
    check_values(a, {1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, tol_of(t));
    const double lp = 3 * (-0.5 * kLog2Pi - std::log(2.0));
    check_values(log_prob, {lp, lp}, tol_of(t) * 10);
  }
  FR_CHECK_THROWS(stats("fused_reparam::diag_rsample_stats", at::zeros({2}), at::zeros({2}),
                        std::nullopt, 1, true, 1.0, 1.0),
                  c10::Error, "low and high must be finite with low < high");
}

FR_TEST(stats_argument_errors) {
  const at::Tensor x = at::zeros({3, 4});
  FR_CHECK_THROWS(stats("fused_reparam::diag_rsample_stats", at::zeros({}), at::zeros({}),
                        std::nullopt),
                  c10::Error, "at least one dim");
  FR_CHECK_THROWS(stats("fused_reparam::chol_rsample_stats", x, at::zeros({4, 3}), std::nullopt),
                  c10::Error, "square");
  FR_CHECK_THROWS(stats_backward("fused_reparam::diag_rsample_stats_backward", x, at::zeros({4}),
                                 at::zeros({3}), x, x, x, false),
                  c10::Error, "grad_kl");
  FR_CHECK_THROWS(stats_backward("fused_reparam::chol_rsample_stats_backward", x, at::zeros({3}),
                                 at::zeros({2}), x, at::zeros({4, 4}), x, false),
                  c10::Error, "grad_log_q");
}

int main(int argc, char** argv) { return cpu_op_test::run_main(argc, argv); }
