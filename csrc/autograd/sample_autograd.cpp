// Autograd of the sampling ops (diag_rsample, chol_rsample) and of their backward ops, for
// every backend: the forward runs the backend's op below autograd and saves its second input,
// eps (only when given) and the 16-byte [seed, offset] it used; the backward calls the
// backend's backward op, which regenerates eps. The backward op has its own autograd
// (double backward), written with the two ops themselves, so eps is never stored.
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <string>

#include "autograd/grad_util.h"
#include "autograd/scale_terms.h"

namespace fused_reparam {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const Tensor kNone;

// (grad of the second input summed to its shape, grad_eps) of the forward op, as requested.
template <Backend B, Family F>
std::pair<Tensor, Tensor> second_and_eps_grads(const Tensor& g, const Tensor& second,
                                               const Tensor& eps, const Tensor& used,
                                               bool need_second, bool need_eps,
                                               const DiagArgs& sc) {
  if constexpr (F == Family::Chol) {
    if (need_second && l_is_shared(second.sym_sizes(), g.sym_sizes())) {
      const Tensor e = regenerate_eps(B, eps, used, g.sym_sizes(), g);
      return {summed_grad_l(g, e, second.sym_sizes()),
              need_eps ? tril_t_matvec(second, g) : Tensor()};
    }
    auto [g_l, g_eps] = call_sample_backward<F>(B, g, second, opt(eps), used, need_eps, sc);
    return {need_second ? reduce_to(g_l, second.sym_sizes()) : Tensor(),
            need_eps ? g_eps : Tensor()};
  } else {
    // Half-type terms summed over broadcast dims are computed in float32.
    const bool summed = need_second && !second.sym_sizes().equals(g.sym_sizes());
    auto [g_s, g_eps] = call_sample_backward<F>(
        B, float32_if_summed(summed, g), float32_if_summed(summed, second),
        opt(float32_if_summed(summed, eps)), used, need_eps, sc);
    return {need_second ? reduce_to(g_s, second.sym_sizes()).to(second.scalar_type()) : Tensor(),
            need_eps ? g_eps.to(g.scalar_type()) : Tensor()};
  }
}

template <Backend B, Family F>
struct SampleFunction : public torch::autograd::Function<SampleFunction<B, F>> {
  // z is the node's one output; the stream it used (int64, never differentiable) goes to
  // `used_out` instead, so the backward gets no undefined gradient to fill with zeros.
  static variable_list forward(AutogradContext* ctx, const Tensor& mu, const Tensor& second,
                               const OptTensor& eps, const OptTensor& seed_offset,
                               OptGenerator generator, const DiagArgs& sc, Tensor* used_out) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [z, used] =
        call_sample<F>(B, mu, second, eps, seed_offset, std::move(generator), sc);
    save_scale(ctx, sc);
    // mu's shape only when it was broadcast (the common call keeps no extra state).
    if (!mu.sym_sizes().equals(z.sym_sizes())) ctx->saved_data["mu_sizes"] = mu.sym_sizes();
    ctx->save_for_backward({second, eps.value_or(Tensor()), used});
    ctx->set_materialize_grads(false);
    *used_out = std::move(used);
    return {z};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor& grad_z = grads[0];
    if (!grad_z.defined()) return variable_list(7);
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &second = saved[0], &eps = saved[1], &used = saved[2];
    const bool need_second = ctx->needs_input_grad(1);
    const bool need_eps = eps.defined() && ctx->needs_input_grad(2);
    Tensor grad_mu, grad_second, grad_eps;
    if (ctx->needs_input_grad(0)) {
      const auto mu_sizes = ctx->saved_data.find("mu_sizes");
      grad_mu = mu_sizes == ctx->saved_data.end()
                    ? grad_z
                    : reduce_to(grad_z, mu_sizes->second.toSymIntVector());
    }
    if (need_second || need_eps) {
      std::tie(grad_second, grad_eps) = second_and_eps_grads<B, F>(
          grad_z, second, eps, used, need_second, need_eps, saved_scale(ctx));
    }
    return {grad_mu, grad_second, grad_eps, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// The backward op's outputs, diagonal: G = g sigma' eps, E = g sigma; upstream (a, b):
//   d/dg = a sigma' eps + b sigma, d/ds = g (a sigma'' eps + b sigma'), d/deps = a g sigma',
// with a sigma'' eps = the backward op on a (sigma'' / sigma'), so eps is never a tensor.
// Cholesky: G = tril(g eps^T), E = L^T g; upstream (A, b):
//   d/dg = tril(A) eps + tril(L) b (the forward op with mu = 0, on A and on L),
//   d/dL = tril(g b^T) (the backward op with eps = b), d/deps = tril(A)^T g.
template <Backend B, Family F>
struct SampleBackwardFunction
    : public torch::autograd::Function<SampleBackwardFunction<B, F>> {
  static variable_list forward(AutogradContext* ctx, const Tensor& grad_z, const Tensor& second,
                               const OptTensor& eps, const Tensor& seed_offset,
                               bool need_grad_eps, const DiagArgs& sc) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [g_second, g_eps] =
        call_sample_backward<F>(B, grad_z, second, eps, seed_offset, need_grad_eps, sc);
    save_scale(ctx, sc);
    ctx->save_for_backward({grad_z, second, eps.value_or(Tensor()), seed_offset});
    return {g_second, g_eps};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &g = saved[0], &second = saved[1], &eps = saved[2], &so = saved[3];
    const Tensor &up_second = grads[0], &up_eps = grads[1];
    const bool need_g = ctx->needs_input_grad(0), need_second = ctx->needs_input_grad(1);
    const bool need_eps = eps.defined() && ctx->needs_input_grad(2);
    const bool has_b = eps.defined() && up_eps.defined() && up_eps.sym_numel() != 0;
    const DiagArgs sc = saved_scale(ctx);
    Tensor d_g, d_second, d_eps;
    if constexpr (F == Family::Diag) {
      const bool has_a = up_second.defined();
      const ScaleTerms t = scale_terms(second, sc, false);
      if (need_g) {
        d_g = has_a ? std::get<0>(call_sample_backward<F>(B, up_second, second, opt(eps), so,
                                                          false, sc))
                    : at::zeros_like(g);
        if (has_b) d_g = d_g + up_eps * t.sigma;
      }
      if (need_second) {
        Tensor inner = at::zeros_like(g);
        if (has_a) {
          inner = std::get<0>(call_sample_backward<F>(
              B, up_second * d2sigma_over_dsigma(second, sc), second, opt(eps), so, false, sc));
        }
        if (has_b) inner = inner + up_eps * t.dsigma;
        d_second = reduce_to(g * inner, second.sym_sizes());
      }
      if (need_eps && has_a) d_eps = up_second * g * t.dsigma;
    } else {
      // mu = 0 over g's shape, as a stride-0 view (no memory).
      const Tensor zero_mu = at::zeros_symint({g.sym_size(-1)}, g.options())
                                 .expand_symint(g.sym_sizes());
      if (need_g) {
        d_g = std::get<0>(
            call_sample<F>(B, zero_mu, up_second, opt(eps), so, std::nullopt, sc));
        if (has_b) {
          d_g = d_g + std::get<0>(call_sample<F>(B, zero_mu, second, up_eps, std::nullopt,
                                                 std::nullopt, sc));
        }
      }
      if (need_second && has_b) {
        d_second = second_and_eps_grads<B, F>(g, second, up_eps, so, true, false, sc).first;
      }
      if (need_eps) {
        d_eps = std::get<1>(call_sample_backward<F>(B, g, up_second, eps, so, true, sc));
      }
    }
    return {need_g ? d_g : Tensor(), d_second, d_eps, Tensor(), Tensor(), Tensor()};
  }
};

template <Backend B, Family F>
std::tuple<Tensor, Tensor> sample_autograd(const Tensor& mu, const Tensor& second,
                                           const OptTensor& eps, const OptTensor& seed_offset,
                                           OptGenerator generator, const DiagArgs& sc) {
  const Tensor& e = eps.has_value() ? *eps : kNone;
  check_no_forward_grad("fused_reparam: the sampling op", {&mu, &second, &e});
  if (!records({&mu, &second, &e})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_sample<F>(B, mu, second, eps, seed_offset, std::move(generator), sc);
  }
  Tensor used;
  variable_list out = SampleFunction<B, F>::apply(mu, second, eps, seed_offset,
                                                  std::move(generator), sc, &used);
  return {out[0], used};
}

template <Backend B, Family F>
std::tuple<Tensor, Tensor> sample_backward_autograd(const Tensor& grad_z, const Tensor& second,
                                                    const OptTensor& eps,
                                                    const Tensor& seed_offset,
                                                    bool need_grad_eps, const DiagArgs& sc) {
  const Tensor& e = eps.has_value() ? *eps : kNone;
  check_no_forward_grad("fused_reparam: the sampling op's backward", {&grad_z, &second, &e});
  if (!records({&grad_z, &second, &e})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_sample_backward<F>(B, grad_z, second, eps, seed_offset, need_grad_eps, sc);
  }
  variable_list out =
      SampleBackwardFunction<B, F>::apply(grad_z, second, eps, seed_offset, need_grad_eps, sc);
  return {out[0], out[1]};
}

// The registered kernels: the diagonal ops take the scale, the Cholesky ops none.
template <Backend B>
std::tuple<Tensor, Tensor> diag_sample(const Tensor& mu, const Tensor& s, int64_t scale,
                                       const OptTensor& eps, const OptTensor& seed_offset,
                                       OptGenerator generator, double min_scale, int64_t noise) {
  return sample_autograd<B, Family::Diag>(mu, s, eps, seed_offset, std::move(generator),
                                          DiagArgs{scale, min_scale, noise});
}

template <Backend B>
std::tuple<Tensor, Tensor> diag_sample_backward(const Tensor& grad_z, const Tensor& s,
                                                const OptTensor& eps, const Tensor& seed_offset,
                                                bool need_grad_eps, int64_t scale,
                                                double min_scale, int64_t noise) {
  return sample_backward_autograd<B, Family::Diag>(grad_z, s, eps, seed_offset, need_grad_eps,
                                                   DiagArgs{scale, min_scale, noise});
}

template <Backend B>
std::tuple<Tensor, Tensor> chol_sample(const Tensor& mu, const Tensor& scale_tril,
                                       const OptTensor& eps, const OptTensor& seed_offset,
                                       OptGenerator generator) {
  return sample_autograd<B, Family::Chol>(mu, scale_tril, eps, seed_offset, std::move(generator),
                                          DiagArgs{});
}

template <Backend B>
std::tuple<Tensor, Tensor> chol_sample_backward(const Tensor& grad_z, const Tensor& scale_tril,
                                                const OptTensor& eps, const Tensor& seed_offset,
                                                bool need_grad_eps) {
  return sample_backward_autograd<B, Family::Chol>(grad_z, scale_tril, eps, seed_offset,
                                                   need_grad_eps, DiagArgs{});
}

// Registers this file's kernels for one backend's copy of the ops ("<prefix><op>").
template <Backend B>
void register_backend(torch::Library& m, const std::string& p) {
  m.impl((p + "diag_rsample").c_str(), &diag_sample<B>);
  m.impl((p + "diag_rsample_backward").c_str(), &diag_sample_backward<B>);
  m.impl((p + "chol_rsample").c_str(), &chol_sample<B>);
  m.impl((p + "chol_rsample_backward").c_str(), &chol_sample_backward<B>);
}

}  // namespace
}  // namespace autograd
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, Autograd, m) {
  using fused_reparam::autograd::Backend;
  fused_reparam::autograd::register_backend<Backend::Compiled>(m, "");
  fused_reparam::autograd::register_backend<Backend::Triton>(m, "triton_");
}
