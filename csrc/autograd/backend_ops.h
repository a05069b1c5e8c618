// The dispatcher handles of one backend's ops. Every backend provides the same eight op
// schemas (csrc/ops.cpp), named "fused_reparam::<prefix><op>": the compiled C++/CUDA kernels
// with no prefix, the Triton kernels (registered from Python) with "triton_". The autograd
// layer is written once against these handles and instantiated per backend.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <tuple>

namespace fused_reparam {
namespace autograd {

using at::Tensor;
using OptTensor = std::optional<at::Tensor>;
using OptGenerator = std::optional<at::Generator>;

enum class Backend { Compiled, Triton };
// Which second input a family takes: s (diagonal) or scale_tril (Cholesky).
enum class Family { Diag, Chol };

// The diagonal ops' scale parametrization (fused_reparam/scale.h), lower bound on sigma and,
// for the plain ops, noise kind (fused_reparam/noise.h); the Cholesky ops take none.
struct DiagArgs {
  int64_t kind = 0;
  double min = 0.0;
  int64_t noise = 0;
  // The stats ops' tanh squash (fused_reparam/squash.h).
  bool squash = false;
  double low = -1.0, high = 1.0;
};

// Signatures of the Cholesky ops. The diagonal forward ops take (int64_t scale) after the
// second input and, after the generator, (double min_scale) and then the plain op's
// (int64_t noise) or the stats op's (bool squash, double low, double high); the diagonal
// backward ops take (int64_t scale, double min_scale) and the same after need_grad_eps.
// (mu, second, eps?, seed_offset?, generator?) -> (z, seed_offset used)
using SampleFn = std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const OptTensor&,
                                            const OptTensor&, OptGenerator);
// (grad_z, second, eps?, seed_offset, need_grad_eps) -> (grad_second, grad_eps)
using SampleBackwardFn = std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&,
                                                    const OptTensor&, const Tensor&, bool);
// (mu, second, eps?, seed_offset?, generator?) -> (z, kl, log_q, seed_offset used)
using StatsFn = std::tuple<Tensor, Tensor, Tensor, Tensor>(const Tensor&, const Tensor&,
                                                           const OptTensor&, const OptTensor&,
                                                           OptGenerator);
// (grad_z, grad_kl, grad_log_q, mu, second, eps?, seed_offset, need_grad_eps)
//   -> (grad_mu, grad_second, grad_eps)
using StatsBackwardFn = std::tuple<Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
    const Tensor&, bool);

using DiagSampleFn = std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, int64_t,
                                                const OptTensor&, const OptTensor&, OptGenerator,
                                                double, int64_t);
using DiagSampleBackwardFn = std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&,
                                                        const OptTensor&, const Tensor&, bool,
                                                        int64_t, double, int64_t);
using DiagStatsFn = std::tuple<Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, int64_t, const OptTensor&, const OptTensor&, OptGenerator,
    double, bool, double, double);
using DiagStatsBackwardFn = std::tuple<Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
    const Tensor&, bool, int64_t, double, bool, double, double);

struct BackendOps {
  c10::TypedOperatorHandle<DiagSampleFn> diag_sample;
  c10::TypedOperatorHandle<DiagSampleBackwardFn> diag_sample_backward;
  c10::TypedOperatorHandle<DiagStatsFn> diag_stats;
  c10::TypedOperatorHandle<DiagStatsBackwardFn> diag_stats_backward;
  c10::TypedOperatorHandle<SampleFn> chol_sample;
  c10::TypedOperatorHandle<SampleBackwardFn> chol_sample_backward;
  c10::TypedOperatorHandle<StatsFn> chol_stats;
  c10::TypedOperatorHandle<StatsBackwardFn> chol_stats_backward;
};

// Looked up once per backend, on first use (after every schema is registered).
const BackendOps& backend_ops(Backend backend);

// The family's ops called alike (the scale is passed to the diagonal ops only).
template <Family F>
std::tuple<Tensor, Tensor> call_sample(Backend b, const Tensor& mu, const Tensor& second,
                                       const OptTensor& eps, const OptTensor& seed_offset,
                                       OptGenerator generator, const DiagArgs& sc) {
  if constexpr (F == Family::Diag) {
    return backend_ops(b).diag_sample.call(mu, second, sc.kind, eps, seed_offset,
                                           std::move(generator), sc.min, sc.noise);
  } else {
    return backend_ops(b).chol_sample.call(mu, second, eps, seed_offset, std::move(generator));
  }
}

template <Family F>
std::tuple<Tensor, Tensor> call_sample_backward(Backend b, const Tensor& grad_z,
                                                const Tensor& second, const OptTensor& eps,
                                                const Tensor& seed_offset, bool need_grad_eps,
                                                const DiagArgs& sc) {
  if constexpr (F == Family::Diag) {
    return backend_ops(b).diag_sample_backward.call(grad_z, second, eps, seed_offset,
                                                    need_grad_eps, sc.kind, sc.min, sc.noise);
  } else {
    return backend_ops(b).chol_sample_backward.call(grad_z, second, eps, seed_offset,
                                                    need_grad_eps);
  }
}

template <Family F>
std::tuple<Tensor, Tensor, Tensor, Tensor> call_stats(Backend b, const Tensor& mu,
                                                      const Tensor& second, const OptTensor& eps,
                                                      const OptTensor& seed_offset,
                                                      OptGenerator generator,
                                                      const DiagArgs& sc) {
  if constexpr (F == Family::Diag) {
    return backend_ops(b).diag_stats.call(mu, second, sc.kind, eps, seed_offset,
                                          std::move(generator), sc.min, sc.squash, sc.low,
                                          sc.high);
  } else {
    return backend_ops(b).chol_stats.call(mu, second, eps, seed_offset, std::move(generator));
  }
}

template <Family F>
std::tuple<Tensor, Tensor, Tensor> call_stats_backward(
    Backend b, const Tensor& gz, const Tensor& gk, const Tensor& gq, const Tensor& mu,
    const Tensor& second, const OptTensor& eps, const Tensor& seed_offset, bool need_grad_eps,
    const DiagArgs& sc) {
  if constexpr (F == Family::Diag) {
    return backend_ops(b).diag_stats_backward.call(gz, gk, gq, mu, second, eps, seed_offset,
                                                   need_grad_eps, sc.kind, sc.min, sc.squash,
                                                   sc.low, sc.high);
  } else {
    return backend_ops(b).chol_stats_backward.call(gz, gk, gq, mu, second, eps, seed_offset,
                                                   need_grad_eps);
  }
}

}  // namespace autograd
}  // namespace fused_reparam
