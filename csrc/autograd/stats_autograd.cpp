// Autograd of the ops with the VAE extras (diag_rsample_stats, chol_rsample_stats) and of
// their backward ops, for every backend. The forward saves its inputs and the [seed, offset]
// used; the fused backward op returns every input's gradient over the sample's shape, summed
// here over broadcast dims. The backward op's own backward (double backward) is written out
// in ATen ops on eps regenerated as a tensor (stats_vjp.h), so it is differentiable again.
#include <ATen/ExpandUtils.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <vector>

#include "autograd/grad_util.h"
#include "autograd/scale_terms.h"
#include "autograd/stats_vjp.h"

namespace fused_reparam {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const Tensor kNone;

// One scale_tril shared by several sample rows: its gradient is a matmul over eps regenerated
// as a tensor (summed_grad_l), the rest elementwise.
template <Backend B>
std::array<Tensor, 3> shared_l_backward(const Tensor& gz, const Tensor& gk, const Tensor& gq,
                                        const Tensor& mu, const Tensor& scale_tril,
                                        const Tensor& eps, const Tensor& used, bool need_eps) {
  const Tensor e = regenerate_eps(B, eps, used, gz.sym_sizes(), gz);
  const c10::SymIntArrayRef lb = scale_tril.sym_sizes().slice(0, scale_tril.dim() - 2);
  const Tensor lower = at::tril(scale_tril);
  const Tensor diag = at::diagonal(lower, 0, -2, -1);
  const Tensor g_l = summed_grad_l(gz, e, scale_tril.sym_sizes()) +
                     reduce_to(gk, lb).unsqueeze(-1).unsqueeze(-1) * lower -
                     at::diag_embed(reduce_to(gk + gq, lb).unsqueeze(-1) / diag);
  Tensor g_eps;
  if (need_eps) g_eps = tril_t_matvec(scale_tril, gz) - gq.unsqueeze(-1) * eps;
  return {gz + gk.unsqueeze(-1) * mu, g_l, g_eps};
}

// The upstream gradients left undefined (an output outside the loss) as zeros: the fused
// backward op takes all three. z's shape: mu broadcast with s (diagonal) or with L's rows.
template <Family F>
void zeros_for_undefined(variable_list& grads, const Tensor& mu, const Tensor& second) {
  if (grads[0].defined() && grads[1].defined() && grads[2].defined()) return;
  const c10::SymIntArrayRef s = second.sym_sizes();
  const std::vector<c10::SymInt> shape =
      at::infer_size_symint(mu.sym_sizes(), F == Family::Chol ? s.slice(0, s.size() - 1) : s);
  const c10::SymIntArrayRef batch = c10::SymIntArrayRef(shape).slice(0, shape.size() - 1);
  if (!grads[0].defined()) grads[0] = at::zeros_symint(shape, mu.options());
  for (int i = 1; i < 3; ++i) {
    if (!grads[i].defined()) grads[i] = at::zeros_symint(batch, mu.options());
  }
}

// z, kl and log_q are the node's outputs; the stream used (int64, never differentiable) goes
// to `used_out`, so the backward gets no gradient of it to fill with zeros.
template <Backend B, Family F>
struct StatsFunction : public torch::autograd::Function<StatsFunction<B, F>> {
  static variable_list forward(AutogradContext* ctx, const Tensor& mu, const Tensor& second,
                               const OptTensor& eps, const OptTensor& seed_offset,
                               OptGenerator generator, const DiagArgs& sc, Tensor* used_out) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [z, kl, log_q, used] =
        call_stats<F>(B, mu, second, eps, seed_offset, std::move(generator), sc);
    save_scale(ctx, sc);
    ctx->save_for_backward({mu, second, eps.value_or(Tensor()), used});
    ctx->set_materialize_grads(false);
    *used_out = std::move(used);
    return {z, kl, log_q};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // No output in the loss: no gradient, as for torch's own ops.
    if (!grads[0].defined() && !grads[1].defined() && !grads[2].defined()) {
      return variable_list(7);
    }
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &mu = saved[0], &second = saved[1], &eps = saved[2], &used = saved[3];
    zeros_for_undefined<F>(grads, mu, second);
    const Tensor& grad_z = grads[0];
    const bool need_mu = ctx->needs_input_grad(0), need_second = ctx->needs_input_grad(1);
    const bool need_eps = eps.defined() && ctx->needs_input_grad(2);
    const c10::SymIntArrayRef shape = grad_z.sym_sizes();
    const bool shared =
        F == Family::Chol && need_second && l_is_shared(second.sym_sizes(), shape);
    const bool second_summed =
        shared || (F == Family::Diag && !second.sym_sizes().equals(shape));
    const bool summed =
        (need_mu && !mu.sym_sizes().equals(shape)) || (need_second && second_summed);
    std::array<Tensor, 6> in{grad_z, grads[1], grads[2], mu, second, eps};
    for (Tensor& t : in) t = float32_if_summed(summed, t);
    Tensor g_mu, g_second, g_eps;
    if (F == Family::Chol && shared) {
      auto g = shared_l_backward<B>(in[0], in[1], in[2], in[3], in[4], in[5], used, need_eps);
      g_mu = g[0], g_second = g[1], g_eps = g[2];
    } else {
      std::tie(g_mu, g_second, g_eps) = call_stats_backward<F>(
          B, in[0], in[1], in[2], in[3], in[4], opt(in[5]), used, need_eps, saved_scale(ctx));
      if (need_second) g_second = reduce_to(g_second, second.sym_sizes());
    }
    const at::ScalarType dtype = grad_z.scalar_type();
    return {need_mu ? reduce_to(g_mu, mu.sym_sizes()).to(dtype) : Tensor(),
            need_second ? g_second.to(dtype) : Tensor(), need_eps ? g_eps.to(dtype) : Tensor(),
            Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

template <Backend B, Family F>
struct StatsBackwardFunction : public torch::autograd::Function<StatsBackwardFunction<B, F>> {
  static variable_list forward(AutogradContext* ctx, const Tensor& gz, const Tensor& gk,
                               const Tensor& gq, const Tensor& mu, const Tensor& second,
                               const OptTensor& eps, const Tensor& seed_offset,
                               bool need_grad_eps, const DiagArgs& sc) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [g_mu, g_second, g_eps] = call_stats_backward<F>(B, gz, gk, gq, mu, second, eps,
                                                          seed_offset, need_grad_eps, sc);
    save_scale(ctx, sc);
    ctx->save_for_backward({gz, gk, gq, mu, second, eps.value_or(Tensor()), seed_offset});
    return {g_mu, g_second, g_eps};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!saved_scale(ctx).squash,
                "fused_reparam: the tanh-squashed sample has no double backward on the fused "
                "backends; call through fused_reparam's functions under torch.func (routed to "
                "the reference backend), or pass backend=\"reference\"");
    const variable_list s = ctx->get_saved_variables();
    const Tensor& gz = s[0];
    const Tensor e = regenerate_eps(B, s[5], s[6], gz.sym_sizes(), gz).to(gz.scalar_type());
    StatsUpstream up{grads[0], grads[1], grads[2]};
    if (!up.mu.defined()) up.mu = at::zeros_like(gz);
    if (!up.second.defined()) {
      std::vector<c10::SymInt> shape(gz.sym_sizes().begin(), gz.sym_sizes().end());
      if (F == Family::Chol) shape.push_back(gz.sym_size(-1));
      up.second = at::zeros_symint(shape, gz.options());
    }
    if (!up.eps.defined() || up.eps.sym_numel() == 0) up.eps = at::zeros_like(gz);
    const StatsSaved sv{gz, s[1], s[2], s[3], s[4]};
    std::array<Tensor, 6> g = F == Family::Diag ? diag_stats_vjp(up, sv, e, saved_scale(ctx))
                                                : chol_stats_vjp(up, sv, e);
    variable_list out(9);
    for (int i = 0; i < 6; ++i) {
      const bool need = i < 5 ? ctx->needs_input_grad(i) : s[5].defined() && ctx->needs_input_grad(5);
      if (need) out[i] = reduce_to(g[i], (i == 5 ? gz : s[i]).sym_sizes());
    }
    return out;
  }
};

template <Backend B, Family F>
std::tuple<Tensor, Tensor, Tensor, Tensor> stats_autograd(const Tensor& mu, const Tensor& second,
                                                          const OptTensor& eps,
                                                          const OptTensor& seed_offset,
                                                          OptGenerator generator,
                                                          const DiagArgs& sc) {
  const Tensor& e = eps.has_value() ? *eps : kNone;
  check_no_forward_grad("fused_reparam: the sampling op with stats", {&mu, &second, &e});
  if (!records({&mu, &second, &e})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_stats<F>(B, mu, second, eps, seed_offset, std::move(generator), sc);
  }
  Tensor used;
  variable_list out = StatsFunction<B, F>::apply(mu, second, eps, seed_offset,
                                                 std::move(generator), sc, &used);
  // kl depends on mu and the second input, log_q on the second input and eps: an output whose
  // inputs need no grad has none, as the reference's. Detached here rather than marked
  // non-differentiable in the Function, which compiled autograd cannot take.
  const bool kl_constant = !mu.requires_grad() && !second.requires_grad();
  // Squashed, log_q also depends on mu (through u).
  const bool log_q_constant = !second.requires_grad() && !(e.defined() && e.requires_grad()) &&
                              !(sc.squash && mu.requires_grad());
  return {out[0], kl_constant ? out[1].detach() : out[1],
          log_q_constant ? out[2].detach() : out[2], used};
}

template <Backend B, Family F>
std::tuple<Tensor, Tensor, Tensor> stats_backward_autograd(
    const Tensor& gz, const Tensor& gk, const Tensor& gq, const Tensor& mu, const Tensor& second,
    const OptTensor& eps, const Tensor& seed_offset, bool need_grad_eps, const DiagArgs& sc) {
  const Tensor& e = eps.has_value() ? *eps : kNone;
  check_no_forward_grad("fused_reparam: the stats op's backward", {&gz, &gk, &gq, &mu, &second, &e});
  if (!records({&gz, &gk, &gq, &mu, &second, &e})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_stats_backward<F>(B, gz, gk, gq, mu, second, eps, seed_offset, need_grad_eps, sc);
  }
  variable_list out = StatsBackwardFunction<B, F>::apply(gz, gk, gq, mu, second, eps,
                                                         seed_offset, need_grad_eps, sc);
  return {out[0], out[1], out[2]};
}

// The registered kernels: the diagonal ops take the scale, the Cholesky ops none.
template <Backend B>
std::tuple<Tensor, Tensor, Tensor, Tensor> diag_stats(const Tensor& mu, const Tensor& s,
                                                      int64_t scale, const OptTensor& eps,
                                                      const OptTensor& seed_offset,
                                                      OptGenerator generator, double min_scale,
                                                      bool squash, double low, double high) {
  return stats_autograd<B, Family::Diag>(mu, s, eps, seed_offset, std::move(generator),
                                         DiagArgs{scale, min_scale, 0, squash, low, high});
}

template <Backend B>
std::tuple<Tensor, Tensor, Tensor> diag_stats_backward(
    const Tensor& gz, const Tensor& gk, const Tensor& gq, const Tensor& mu, const Tensor& s,
    const OptTensor& eps, const Tensor& seed_offset, bool need_grad_eps, int64_t scale,
    double min_scale, bool squash, double low, double high) {
  return stats_backward_autograd<B, Family::Diag>(
      gz, gk, gq, mu, s, eps, seed_offset, need_grad_eps,
      DiagArgs{scale, min_scale, 0, squash, low, high});
}

template <Backend B>
std::tuple<Tensor, Tensor, Tensor, Tensor> chol_stats(const Tensor& mu, const Tensor& scale_tril,
                                                      const OptTensor& eps,
                                                      const OptTensor& seed_offset,
                                                      OptGenerator generator) {
  return stats_autograd<B, Family::Chol>(mu, scale_tril, eps, seed_offset, std::move(generator),
                                         DiagArgs{});
}

template <Backend B>
std::tuple<Tensor, Tensor, Tensor> chol_stats_backward(
    const Tensor& gz, const Tensor& gk, const Tensor& gq, const Tensor& mu,
    const Tensor& scale_tril, const OptTensor& eps, const Tensor& seed_offset,
    bool need_grad_eps) {
  return stats_backward_autograd<B, Family::Chol>(gz, gk, gq, mu, scale_tril, eps, seed_offset,
                                                  need_grad_eps, DiagArgs{});
}

// Registers this file's kernels for one backend's copy of the ops ("<prefix><op>").
template <Backend B>
void register_backend(torch::Library& m, const std::string& p) {
  m.impl((p + "diag_rsample_stats").c_str(), &diag_stats<B>);
  m.impl((p + "diag_rsample_stats_backward").c_str(), &diag_stats_backward<B>);
  m.impl((p + "chol_rsample_stats").c_str(), &chol_stats<B>);
  m.impl((p + "chol_rsample_stats_backward").c_str(), &chol_stats_backward<B>);
}

}  // namespace
}  // namespace autograd
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, Autograd, m) {
  using fused_reparam::autograd::Backend;
  fused_reparam::autograd::register_backend<Backend::Compiled>(m, "");
  fused_reparam::autograd::register_backend<Backend::Triton>(m, "triton_");
}
