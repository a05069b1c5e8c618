// Derivatives of the stats backward formulas (csrc/ops.cpp states them), per element with
// gk = grad_kl[r], gq = grad_log_q[r] of the element's row r:
//   diag: grad_mu = gz + gk mu, grad_logvar = 0.5 gz sigma eps + 0.5 gk (sigma^2 - 1) - 0.5 gq,
//         grad_eps = gz sigma - gq eps;
//   chol: grad_mu = gz + gk mu, grad_L = tril(gz eps^T) + gk tril(L) - diag((gk + gq) / L_ii),
//         grad_eps = L^T gz - gq eps.
#include "autograd/stats_vjp.h"

#include <ATen/ATen.h>

namespace fused_reparam {
namespace autograd {

std::array<Tensor, 6> diag_stats_vjp(const StatsUpstream& up, const StatsSaved& s,
                                     const Tensor& eps) {
  const Tensor &a = up.mu, &b = up.second, &c = up.eps;
  const Tensor gk1 = s.gk.unsqueeze(-1), gq1 = s.gq.unsqueeze(-1);
  const Tensor sigma = at::exp(0.5 * s.second);
  const Tensor s2 = sigma * sigma;
  return {
      a + 0.5 * b * sigma * eps + c * sigma,
      (a * s.mu + 0.5 * b * (s2 - 1.0)).sum(-1),
      (-0.5 * b - c * eps).sum(-1),
      gk1 * a,
      0.25 * b * s.gz * sigma * eps + 0.5 * b * gk1 * s2 + 0.5 * c * s.gz * sigma,
      0.5 * b * s.gz * sigma - c * gq1,
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
