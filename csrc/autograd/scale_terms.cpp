#include "autograd/scale_terms.h"

#include <ATen/ATen.h>

#include "fused_reparam/scale.h"

namespace fused_reparam {
namespace autograd {

ScaleTerms scale_terms(const Tensor& s, const DiagArgs& sc, bool with_log) {
  // The bound as the kernels hold it, rounded to the compute type (float below float64): one
  // that rounds to 0 takes the exact forms below, as it does there.
  const double min =
      s.scalar_type() == at::kDouble ? sc.min : static_cast<double>(static_cast<float>(sc.min));
  ScaleTerms t;
  switch (sc.kind) {
    case scale::kLogStd:
      t.sigma = at::exp(s);
      t.dsigma = t.sigma;
      t.d2sigma = t.sigma;
      break;
    case scale::kStd:
      t.sigma = s;
      t.dsigma = at::ones_like(s);
      t.d2sigma = at::zeros_like(s);
      break;
    case scale::kSoftplus:
      t.sigma = at::logaddexp(s, at::zeros_like(s));  // exact for every s
      t.dsigma = at::sigmoid(s);
      t.d2sigma = t.dsigma * at::sigmoid(-s);
      break;
    default:
      t.sigma = at::exp(0.5 * s);
      t.dsigma = 0.5 * t.sigma;
      t.d2sigma = 0.25 * t.sigma;
      break;
  }
  if (min != 0.0) t.sigma = t.sigma + min;
  if (!with_log) return t;
  if (min == 0.0 && (sc.kind == scale::kLogvar || sc.kind == scale::kLogStd)) {
    t.dlog = at::full_like(s, sc.kind == scale::kLogvar ? 0.5 : 1.0);
    t.d2log = at::zeros_like(s);
    return t;
  }
  if (min == 0.0 && sc.kind == scale::kSoftplus) {
    // Where softplus(s) underflows: log sigma = s - exp(s) / 2 to within exp(2s). The other
    // branch divides by a sigma kept away from 0 there, so neither gives a NaN gradient.
    const Tensor tail = s < -scale::kSoftplusTail;
    const Tensor e = at::exp(at::minimum(s, at::full_like(s, -scale::kSoftplusTail)));
    const Tensor sigma = at::where(tail, at::ones_like(t.sigma), t.sigma);
    const Tensor dlog = t.dsigma / sigma;
    t.dlog = at::where(tail, 1.0 - 0.5 * e, dlog);
    t.d2log = at::where(tail, -0.5 * e, t.d2sigma / sigma - dlog * dlog);
    return t;
  }
  t.dlog = t.dsigma / t.sigma;
  t.d2log = t.d2sigma / t.sigma - t.dlog * t.dlog;
  return t;
}

Tensor d2sigma_over_dsigma(const Tensor& s, const DiagArgs& sc) {
  switch (sc.kind) {
    case scale::kLogStd: return at::ones_like(s);
    case scale::kStd: return at::zeros_like(s);
    case scale::kSoftplus: return at::sigmoid(-s);
    default: return at::full_like(s, 0.5);
  }
}

}  // namespace autograd
}  // namespace fused_reparam
