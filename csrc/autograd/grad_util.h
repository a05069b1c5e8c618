// What the autograd functions share: which inputs need a gradient, reductions over broadcast
// dims, half types computed in float32 when summed, eps regenerated as a tensor, and the
// gradient of a scale_tril shared by several sample rows.
#pragma once

#include <initializer_list>

#include "autograd/backend_ops.h"

namespace fused_reparam {
namespace autograd {

inline OptTensor opt(const Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

// `grad` summed over the dims along which an input of `shape` was broadcast.
Tensor reduce_to(const Tensor& grad, c10::SymIntArrayRef shape);

// `t` in float32 when it is a half type and `summed` (its per-element terms are then added
// over broadcast dims or K samples: summed unrounded and rounded once), else `t`.
Tensor float32_if_summed(bool summed, const Tensor& t);

// True when the call must record a node: grad mode on and some input requires grad.
bool records(std::initializer_list<const Tensor*> inputs);

// Refuses dual tensors: the fused ops have no forward-mode formula (the Python front routes
// forward-mode AD to the reference backend, which draws the same numbers).
void check_no_forward_grad(const char* op, std::initializer_list<const Tensor*> inputs);

// eps of stream `seed_offset` for a sample of `shape`, in the compute type of `like`
// (float32 for half types): the backend's diagonal op with mu = s = 0 (logvar scale) gives
// z = 0 + exp(0) * eps = eps exactly. `eps` itself (converted) when it was given.
Tensor regenerate_eps(Backend backend, const Tensor& eps, const Tensor& seed_offset,
                      c10::SymIntArrayRef shape, const Tensor& like);

// True when some scale_tril of shape `l_shape` is used by more than one row of the sample.
bool l_is_shared(c10::SymIntArrayRef l_shape, c10::SymIntArrayRef sample_shape);

// tril(sum over the rows sharing each L of grad_z eps^T), of shape `l_shape`, as one batched
// matmul in eps's dtype, returned in grad_z's: the fused backward kernels write grad_L per
// sample row, B times L's size for one L shared by B rows. Differentiable.
Tensor summed_grad_l(const Tensor& grad_z, const Tensor& eps, c10::SymIntArrayRef l_shape);

// tril(L)^T v over the last dims, batch dims broadcast.
Tensor tril_t_matvec(const Tensor& scale_tril, const Tensor& v);

}  // namespace autograd
}  // namespace fused_reparam
