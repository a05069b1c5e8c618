// Per-element formulas of the diagonal Gaussian op (docs/design.md), shared by every
// C++ and CUDA kernel. F is the compute type (float for half types) or a SIMD vector of it.
#pragma once

#include "fused_reparam/macros.h"
#include "fused_reparam/normal.h"

namespace fused_reparam {
namespace diag {

// sigma = exp(0.5 * logvar)
template <class F, class S>
FR_HOST_DEVICE F sigma(F logvar) {
  return MathOps<F>::exp(F(NoiseConstants<S>::kHalf) * logvar);
}

// z = mu + sigma * eps
template <class F>
FR_HOST_DEVICE F sample(F mu, F sigma, F eps) {
  return mu + sigma * eps;
}

// dlogvar = 0.5 * dz * sigma * eps  (eps regenerated, never (z - mu) / sigma)
template <class F, class S>
FR_HOST_DEVICE F grad_logvar(F dz, F sigma, F eps) {
  return F(NoiseConstants<S>::kHalf) * (dz * sigma) * eps;
}

// deps = dz * sigma
template <class F>
FR_HOST_DEVICE F grad_eps(F dz, F sigma) {
  return dz * sigma;
}

}  // namespace diag
}  // namespace fused_reparam
