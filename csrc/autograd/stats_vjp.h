// The double backward of the stats ops: upstream gradients of the stats backward op's outputs
// (grad_mu, grad_second, grad_eps) pulled back to its inputs, in differentiable ATen ops.
#pragma once

#include <array>

#include "autograd/backend_ops.h"

namespace fused_reparam {
namespace autograd {

// Upstream gradients of (grad_mu, grad_second, grad_eps), each over the sample's shape
// (grad_second [*batch, D, D] for the Cholesky op).
struct StatsUpstream {
  Tensor mu, second, eps;
};

// The backward op's inputs: grad_z, grad_kl, grad_log_q, mu, second.
struct StatsSaved {
  Tensor gz, gk, gq, mu, second;
};

// (d grad_z, d grad_kl, d grad_log_q, d mu, d second, d eps), unreduced (the caller sums them
// to the inputs' shapes); eps is the sample's noise as a tensor.
std::array<Tensor, 6> diag_stats_vjp(const StatsUpstream& up, const StatsSaved& s,
                                     const Tensor& eps, const DiagArgs& sc);
std::array<Tensor, 6> chol_stats_vjp(const StatsUpstream& up, const StatsSaved& s,
                                     const Tensor& eps);

}  // namespace autograd
}  // namespace fused_reparam
