// The diagonal op's scale parametrization in the autograd layer: kept in a node for its
// backward, and in differentiable ATen ops for the double backward formulas (sigma(s), its
// first two derivatives and those of log sigma; the kernels' formulas, fused_reparam/scale.h,
// with the same stable softplus tail).
#pragma once

#include <torch/csrc/autograd/custom_function.h>

#include "autograd/backend_ops.h"

namespace fused_reparam {
namespace autograd {

// Kept only when not the default, so the common call saves nothing more.
inline void save_scale(torch::autograd::AutogradContext* ctx, const DiagArgs& sc) {
  if (sc.kind != 0) ctx->saved_data["scale"] = sc.kind;
  if (sc.min != 0.0) ctx->saved_data["min_scale"] = sc.min;
  if (sc.noise != 0) ctx->saved_data["noise"] = sc.noise;
  if (sc.squash) {
    ctx->saved_data["squash_low"] = sc.low;
    ctx->saved_data["squash_high"] = sc.high;
  }
}

inline DiagArgs saved_scale(torch::autograd::AutogradContext* ctx) {
  DiagArgs sc;
  const auto kind = ctx->saved_data.find("scale");
  if (kind != ctx->saved_data.end()) sc.kind = kind->second.toInt();
  const auto min = ctx->saved_data.find("min_scale");
  if (min != ctx->saved_data.end()) sc.min = min->second.toDouble();
  const auto noise = ctx->saved_data.find("noise");
  if (noise != ctx->saved_data.end()) sc.noise = noise->second.toInt();
  const auto low = ctx->saved_data.find("squash_low");
  if (low != ctx->saved_data.end()) {
    sc.squash = true;
    sc.low = low->second.toDouble();
    sc.high = ctx->saved_data.find("squash_high")->second.toDouble();
  }
  return sc;
}

struct ScaleTerms {
  Tensor sigma, dsigma, d2sigma;  // sigma, d sigma / ds, d^2 sigma / ds^2
  Tensor dlog, d2log;             // d log sigma / ds, d^2 log sigma / ds^2 (if asked for)
};

ScaleTerms scale_terms(const Tensor& s, const DiagArgs& sc, bool with_log);

// d^2 sigma / ds^2 over d sigma / ds as a tensor or number: 1/2 (logvar), 1 (log_std), 0 (std),
// sigmoid(-s) (softplus), so that g * sigma'' * eps is the backward kernel run on g times it.
Tensor d2sigma_over_dsigma(const Tensor& s, const DiagArgs& sc);

}  // namespace autograd
}  // namespace fused_reparam
