// Gradients in a libtorch program: the ops' autograd is C++ (csrc/autograd/), so calling an op
// through the dispatcher with tensors that require grad records a node, and backward (and
// double backward) give the formulas' values, broadcast inputs summed.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/autograd.h>

#include <optional>
#include <string>
#include <tuple>

#include "check.h"

namespace {

using Pair = std::tuple<at::Tensor, at::Tensor>;
using Four = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using OptTensor = std::optional<at::Tensor>;
constexpr double kTol = 1e-10;

// A forward op (no eps); the diagonal ones also take the scale (0 logvar, 1 log_std, ...).
template <class Out>
Out call(const char* name, const at::Tensor& mu, const at::Tensor& second,
         const OptTensor& seed_offset, int64_t scale = 0) {
  auto& dispatcher = c10::Dispatcher::singleton();
  if (std::string(name).find("diag") != std::string::npos) {
    if (std::string(name).find("stats") != std::string::npos) {
      auto op = dispatcher.findSchemaOrThrow(name, "")
                    .typed<Out(const at::Tensor&, const at::Tensor&, int64_t,
                               const OptTensor&, const OptTensor&,
                               std::optional<at::Generator>, double, bool, double, double)>();
      return op.call(mu, second, scale, std::nullopt, seed_offset, std::nullopt, 0.0, false,
                     -1.0, 1.0);
    }
    auto op = dispatcher.findSchemaOrThrow(name, "")
                  .typed<Out(const at::Tensor&, const at::Tensor&, int64_t, const OptTensor&,
                             const OptTensor&, std::optional<at::Generator>, double,
                             int64_t)>();
    return op.call(mu, second, scale, std::nullopt, seed_offset, std::nullopt, 0.0, 0);
  }
  auto op = dispatcher.findSchemaOrThrow(name, "")
                .typed<Out(const at::Tensor&, const at::Tensor&, const OptTensor&,
                           const OptTensor&, std::optional<at::Generator>)>();
  return op.call(mu, second, std::nullopt, seed_offset, std::nullopt);
}

at::Tensor seed_offset() { return at::tensor({int64_t{77}, int64_t{5}}, at::kLong); }

at::Tensor randn(at::IntArrayRef shape) {
  return at::randn(shape, at::TensorOptions().dtype(at::kDouble));
}

// The stream's noise for a sample of `shape`: the diagonal op with mu = logvar = 0.
at::Tensor noise(at::IntArrayRef shape) {
  const at::Tensor zero = at::zeros(shape, at::kDouble);
  return std::get<0>(call<Pair>("fused_reparam::diag_rsample", zero, zero, seed_offset()));
}

void check_close(const at::Tensor& got, const at::Tensor& want, const char* what) {
  FR_CHECK(got.defined());
  if (!got.defined()) return;
  FR_CHECK(got.sizes() == want.sizes());
  const double err = (got - want).abs().max().item<double>();
  FR_CHECK_NEAR(err, 0.0, kTol * (1.0 + want.abs().max().item<double>()));
  if (!(err <= kTol * (1.0 + want.abs().max().item<double>()))) std::printf("  in %s\n", what);
}

FR_TEST(diag_gradients_with_a_broadcast_logvar) {
  at::manual_seed(1);
  const at::Tensor mu = randn({4, 3}).requires_grad_();
  const at::Tensor logvar = randn({3}).requires_grad_();
  const at::Tensor w = randn({4, 3});
  const at::Tensor z = std::get<0>(call<Pair>("fused_reparam::diag_rsample", mu, logvar,
                                              seed_offset()));
  FR_CHECK(z.requires_grad());
  (z * w).sum().backward();
  const at::Tensor eps = noise({4, 3});
  const at::Tensor sigma = at::exp(0.5 * logvar.detach());
  check_close(mu.grad(), w, "grad_mu");
  check_close(logvar.grad(), (0.5 * w * sigma * eps).sum(0), "grad_logvar");
}

FR_TEST(diag_double_backward) {
  at::manual_seed(2);
  const at::Tensor mu = randn({5, 2}).requires_grad_();
  const at::Tensor logvar = randn({5, 2}).requires_grad_();
  const at::Tensor w = randn({5, 2});
  const at::Tensor z = std::get<0>(call<Pair>("fused_reparam::diag_rsample", mu, logvar,
                                              seed_offset()));
  const at::Tensor g = torch::autograd::grad({(z * w).sum()}, {logvar}, {}, true, true)[0];
  const at::Tensor gg = torch::autograd::grad({g.sum()}, {logvar})[0];
  const at::Tensor sigma = at::exp(0.5 * logvar.detach());
  check_close(gg, 0.25 * w * sigma * noise({5, 2}), "d2/dlogvar2");
}

FR_TEST(diag_softplus_scale_gradient_and_double_backward) {
  at::manual_seed(5);
  const at::Tensor mu = randn({4, 3}).requires_grad_();
  const at::Tensor rho = randn({4, 3}).requires_grad_();
  const at::Tensor w = randn({4, 3});
  const at::Tensor z = std::get<0>(call<Pair>("fused_reparam::diag_rsample", mu, rho,
                                              seed_offset(), 3));
  const at::Tensor g = torch::autograd::grad({(z * w).sum()}, {rho}, {}, true, true)[0];
  const at::Tensor gg = torch::autograd::grad({g.sum()}, {rho})[0];
  const at::Tensor sig = at::sigmoid(rho.detach());  // d softplus / ds
  const at::Tensor eps = noise({4, 3});
  check_close(g.detach(), w * sig * eps, "d/d rho");
  check_close(gg, w * sig * (1 - sig) * eps, "d2/d rho2");
}

FR_TEST(chol_gradient_of_a_shared_scale_tril) {
  at::manual_seed(3);
  const at::Tensor mu = randn({6, 3}).requires_grad_();
  const at::Tensor scale_tril = (randn({3, 3}).tril() + 3 * at::eye(3, at::kDouble))
                                    .requires_grad_();
  const at::Tensor w = randn({6, 3});
  const at::Tensor z = std::get<0>(call<Pair>("fused_reparam::chol_rsample", mu, scale_tril,
                                              seed_offset()));
  (z * w).sum().backward();
  const at::Tensor eps = noise({6, 3});
  check_close(mu.grad(), w, "grad_mu");
  check_close(scale_tril.grad(), at::tril(at::matmul(w.t(), eps)), "grad_scale_tril");
}

FR_TEST(diag_stats_kl_gradient) {
  at::manual_seed(4);
  const at::Tensor mu = randn({3, 4}).requires_grad_();
  const at::Tensor logvar = randn({3, 4}).requires_grad_();
  const Four out = call<Four>("fused_reparam::diag_rsample_stats", mu, logvar, seed_offset());
  std::get<1>(out).sum().backward();  // kl = 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)
  check_close(mu.grad(), mu.detach(), "d kl / d mu");
  check_close(logvar.grad(), 0.5 * (at::exp(logvar.detach()) - 1), "d kl / d logvar");
}

FR_TEST(no_node_without_grad) {
  const at::Tensor mu = randn({2, 2});
  const at::Tensor z = std::get<0>(call<Pair>("fused_reparam::diag_rsample", mu, mu,
                                              seed_offset()));
  FR_CHECK(!z.requires_grad());
}

}  // namespace

int main() { return fr_check::run_all("autograd") == 0 ? 0 : 1; }
