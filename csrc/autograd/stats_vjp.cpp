// Derivatives of the stats backward formulas (csrc/ops.cpp states them), per element with
// gk = grad_kl[r], gq = grad_log_q[r] of the element's row r, sigma' and sigma'' the
// derivatives of sigma(s), dlog and dlog' those of log sigma(s):
//   diag: grad_mu = gz + gk mu, grad_s = sigma' (gz eps + gk sigma) - dlog (gk + gq),
//         grad_eps = gz sigma - gq eps;
//   chol: grad_mu = gz + gk mu, grad_L = tril(gz eps^T) + gk tril(L) - diag((gk + gq) / L_ii),
//         grad_eps = L^T gz - gq eps.
#include "autograd/stats_vjp.h"

#include <ATen/ATen.h>

#include "autograd/scale_terms.h"

namespace fused_reparam {
namespace autograd {

std::array<Tensor, 6> diag_stats_vjp(const StatsUpstream& up, const StatsSaved& s,
                                     const Tensor& eps, const DiagArgs& sc) {
  const Tensor &a = up.mu, &b = up.second, &c = up.eps;
  const Tensor gk1 = s.gk.unsqueeze(-1), gq1 = s.gq.unsqueeze(-1);
  const ScaleTerms t = scale_terms(s.second, sc, true);
  return {
      a + b * t.dsigma * eps + c * t.sigma,
      (a * s.mu + b * (t.dsigma * t.sigma - t.dlog)).sum(-1),
      (-b * t.dlog - c * eps).sum(-1),
      gk1 * a,
      b * (t.d2sigma * (s.gz * eps + gk1 * t.sigma) + gk1 * t.dsigma * t.dsigma -
           t.d2log * (gk1 + gq1)) +
          c * s.gz * t.dsigma,
      b * t.dsigma * s.gz - c * gq1,
  };
}

std::array<Tensor, 6> chol_stats_vjp(const StatsUpstream& up, const StatsSaved& s,
                                     const Tensor& eps) {
  const Tensor &a = up.mu, &big_a = up.second, &c = up.eps;
  const Tensor gk1 = s.gk.unsqueeze(-1), gq1 = s.gq.unsqueeze(-1);
  const Tensor lower = at::tril(s.second);
  const Tensor tril_a = at::tril(big_a);
  const Tensor diag_l = at::diagonal(lower, 0, -2, -1);
  const Tensor diag_a = at::diagonal(big_a, 0, -2, -1);
  const auto matvec = [](const Tensor& m, const Tensor& v) {
    return at::matmul(m, v.unsqueeze(-1)).squeeze(-1);
  };
  const Tensor a_over_l = (diag_a / diag_l).sum(-1);
  return {
      a + matvec(tril_a, eps) + matvec(lower, c),
      (a * s.mu).sum(-1) + (tril_a * lower).sum({-2, -1}) - a_over_l,
      -a_over_l - (c * eps).sum(-1),
      gk1 * a,
      at::tril(s.gz.unsqueeze(-1) * c.unsqueeze(-2)) + gk1.unsqueeze(-1) * tril_a +
          at::diag_embed((gk1 + gq1) * diag_a / (diag_l * diag_l)),
      matvec(tril_a.transpose(-1, -2), s.gz) - gq1 * c,
  };
}

}  // namespace autograd
}  // namespace fused_reparam
