// Argument checks of the diagonal op, shared by its CPU and CUDA entry points.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "common/arg_checks.h"
#include "common/problem.h"
#include "fused_reparam/noise.h"
#include "fused_reparam/scale.h"

namespace fused_reparam {

// The scale parametrization (scale::Kind) and its lower bound.
inline void check_scale(int64_t scale, double min_scale, const char* op) {
  TORCH_CHECK(scale >= 0 && scale < scale::kNumKinds, op,
              ": scale must be 0 (logvar), 1 (log_std), 2 (std) or 3 (softplus), got ", scale);
  TORCH_CHECK(std::isfinite(min_scale) && min_scale >= 0.0, op,
              ": min_scale must be finite and >= 0, got ", min_scale);
}

// Stores a checked scale in the problem the kernels read.
inline void set_scale(Problem& p, int64_t scale, double min_scale) {
  p.scale = static_cast<int>(scale);
  p.min_scale = min_scale;
}

// The tanh squash's bounds of the diagonal stats ops (read only with squash).
// The bounds must also be values of the sample's dtype, and half = (high - low) / 2 a normal
// number of its compute type (float for the half types) with 2 half finite there: else the
// action is inf or NaN, or log(half) is -inf.
inline void check_squash(bool squash, double low, double high, at::ScalarType dtype,
                         const char* op) {
  if (!squash) return;
  TORCH_CHECK(std::isfinite(low) && std::isfinite(high) && low < high, op,
              ": low and high must be finite with low < high, got low = ", low, ", high = ",
              high);
  const bool f64 = dtype == at::kDouble;
  const double tiny = f64 ? std::numeric_limits<double>::min() : std::numeric_limits<float>::min();
  const double top_half = 0.5 * (f64 ? std::numeric_limits<double>::max()
                                     : std::numeric_limits<float>::max());
  double max = std::numeric_limits<float>::max();
  const char* name = "float32";
  switch (dtype) {
    case at::kDouble: max = std::numeric_limits<double>::max(), name = "float64"; break;
    case at::kHalf: max = 65504.0, name = "float16"; break;
    case at::kBFloat16: max = 3.3895313892515355e38, name = "bfloat16"; break;
    default: break;
  }
  const double half = 0.5 * high - 0.5 * low;  // no overflow in double
  TORCH_CHECK(std::fabs(low) <= max && std::fabs(high) <= max && half >= tiny && half <= top_half,
              op, ": low and high must be within ", name, "'s range, with (high - low) / 2 from ",
              tiny, " to ", top_half, ", got low = ", low, ", high = ", high);
}

// Stores a checked squash in the problem the kernels read.
inline void set_squash(Problem& p, bool squash, double low, double high) {
  p.squash = squash;
  p.low = low;
  p.high = high;
}

// The noise kind (noise::Kind) of the plain diagonal ops.
inline void check_noise(int64_t noise, const char* op) {
  TORCH_CHECK(noise >= 0 && noise < noise::kNumKinds, op,
              ": noise must be 0 (normal), 1 (laplace), 2 (logistic) or 3 (gumbel), got ", noise);
}

// Validates diag_rsample's arguments; returns the output shape.
inline std::vector<int64_t> check_diag_rsample_args(
    const at::Tensor& mu, const at::Tensor& s, const std::optional<at::Tensor>& eps,
    const std::optional<at::Tensor>& seed_offset, const char* op = "fused_reparam::diag_rsample") {
  check_float_input(mu, op, "mu");
  check_float_input(s, op, "s");
  check_same(mu, "mu", s, "s", op);
  std::vector<int64_t> shape = broadcast_shape(mu, "mu", s, "s", op);
  if (eps.has_value()) {
    check_float_input(*eps, op, "eps");
    check_same(mu, "mu", *eps, "eps", op);
    TORCH_CHECK(eps->sizes() == at::IntArrayRef(shape), op, ": eps must have shape ",
                at::IntArrayRef(shape), " (the broadcast shape of mu and s), got ", eps->sizes());
  }
  if (seed_offset.has_value()) check_seed_offset(*seed_offset, mu, op);
  return shape;
}

inline void check_diag_backward_args(
    const at::Tensor& grad_z, const at::Tensor& s, const std::optional<at::Tensor>& eps,
    const at::Tensor& seed_offset, bool need_grad_eps,
    const char* op = "fused_reparam::diag_rsample_backward") {
  check_float_input(grad_z, op, "grad_z");
  check_float_input(s, op, "s");
  check_same(grad_z, "grad_z", s, "s", op);
  const std::vector<int64_t> shape = broadcast_shape(grad_z, "grad_z", s, "s", op);
  TORCH_CHECK(at::IntArrayRef(shape) == grad_z.sizes(), op, ": s (shape ", s.sizes(),
              ") must broadcast to grad_z's shape ", grad_z.sizes());
  if (eps.has_value()) {
    check_float_input(*eps, op, "eps");
    check_same(grad_z, "grad_z", *eps, "eps", op);
    TORCH_CHECK(eps->sizes() == grad_z.sizes(), op, ": eps must have grad_z's shape ",
                grad_z.sizes(), ", got ", eps->sizes());
  } else {
    TORCH_CHECK(!need_grad_eps, op, ": need_grad_eps requires an explicit eps");
    check_seed_offset(seed_offset, grad_z, op);
  }
}

}  // namespace fused_reparam
