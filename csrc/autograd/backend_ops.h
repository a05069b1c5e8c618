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
// Which second input a family takes: logvar (diagonal) or scale_tril (Cholesky).
enum class Family { Diag, Chol };

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

struct BackendOps {
  c10::TypedOperatorHandle<SampleFn> sample[2];             // by Family
  c10::TypedOperatorHandle<SampleBackwardFn> sample_backward[2];
  c10::TypedOperatorHandle<StatsFn> stats[2];
  c10::TypedOperatorHandle<StatsBackwardFn> stats_backward[2];
};

// Looked up once per backend, on first use (after every schema is registered).
const BackendOps& backend_ops(Backend backend);

}  // namespace autograd
}  // namespace fused_reparam
