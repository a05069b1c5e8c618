// Per-element formulas of the diagonal op (docs/design.md), shared by every C++ and CUDA
// kernel, with sigma and its derivative from the scale parametrization (scale.h). F is the
// compute type (float for half types) or a SIMD vector of it.
#pragma once

#include "fused_reparam/macros.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/scale.h"

namespace fused_reparam {
namespace diag {

// z = mu + sigma * eps
template <class F>
FR_HOST_DEVICE F sample(F mu, F sigma, F eps) {
  return mu + sigma * eps;
}

// ds = dz * (d sigma / ds) * eps  (eps regenerated, never (z - mu) / sigma)
template <class F>
FR_HOST_DEVICE F grad_scale(F dz, F dsigma, F eps) {
  return (dz * dsigma) * eps;
}

// deps = dz * sigma
template <class F>
FR_HOST_DEVICE F grad_eps(F dz, F sigma) {
  return dz * sigma;
}

}  // namespace diag
}  // namespace fused_reparam
