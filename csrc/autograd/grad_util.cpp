#include "autograd/grad_util.h"

#include <ATen/ExpandUtils.h>

#include <vector>

namespace fused_reparam {
namespace autograd {
namespace {

bool is_half(const Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

// L's batch shape, padded with leading 1s to the sample's batch rank.
std::vector<c10::SymInt> padded_l_batch(c10::SymIntArrayRef l_shape, size_t batch_rank) {
  const size_t lb_rank = l_shape.size() - 2;
  std::vector<c10::SymInt> lb(batch_rank - lb_rank, c10::SymInt(1));
  lb.insert(lb.end(), l_shape.begin(), l_shape.end() - 2);
  return lb;
}

}  // namespace

Tensor reduce_to(const Tensor& grad, c10::SymIntArrayRef shape) {
  if (grad.sym_sizes().equals(shape)) return grad;
  return at::sum_to(grad, shape);
}

Tensor float32_if_summed(bool summed, const Tensor& t) {
  return summed && t.defined() && is_half(t) ? t.to(at::kFloat) : t;
}

bool records(std::initializer_list<const Tensor*> inputs) {
  if (!at::GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs) {
    if (t->defined() && t->requires_grad()) return true;
  }
  return false;
}

void check_no_forward_grad(const char* op, std::initializer_list<const Tensor*> inputs) {
  for (const Tensor* t : inputs) {
    TORCH_CHECK(!t->defined() || !t->_fw_grad(/*level=*/0).defined(), op,
                ": forward-mode AD (dual tensors) is not supported by the fused kernels; "
                "call through fused_reparam's sampling functions, which route it to the "
                "reference backend, or pass backend=\"reference\"");
  }
}

Tensor regenerate_eps(Backend backend, const Tensor& eps, const Tensor& seed_offset,
                      c10::SymIntArrayRef shape, const Tensor& like) {
  const at::ScalarType ct = is_half(like) ? at::kFloat : like.scalar_type();
  if (eps.defined()) return eps.to(ct);
  const Tensor zero = at::zeros({}, like.options().dtype(ct)).expand_symint(shape);
  return std::get<0>(call_sample<Family::Diag>(backend, zero, zero, std::nullopt, seed_offset,
                                               std::nullopt, DiagArgs{}));
}

bool l_is_shared(c10::SymIntArrayRef l_shape, c10::SymIntArrayRef sample_shape) {
  const c10::SymIntArrayRef batch = sample_shape.slice(0, sample_shape.size() - 1);
  const std::vector<c10::SymInt> lb = padded_l_batch(l_shape, batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    if (lb[i] == 1 && batch[i] != 1) return true;
  }
  return false;
}

Tensor summed_grad_l(const Tensor& grad_z, const Tensor& eps, c10::SymIntArrayRef l_shape) {
  const c10::SymIntArrayRef sizes = grad_z.sym_sizes();
  const int64_t nb = static_cast<int64_t>(sizes.size()) - 1;
  const std::vector<c10::SymInt> lb = padded_l_batch(l_shape, nb);
  // Rows of one L first, then the rows sharing it: [rows_kept, rows_shared, D].
  std::vector<int64_t> perm;
  c10::SymInt rows_kept = 1, rows_shared = 1;
  for (int64_t i = 0; i < nb; ++i) {
    if (lb[i] != 1) {
      perm.push_back(i);
      rows_kept = rows_kept * sizes[i];
    }
  }
  for (int64_t i = 0; i < nb; ++i) {
    if (lb[i] == 1) {
      perm.push_back(i);
      rows_shared = rows_shared * sizes[i];
    }
  }
  perm.push_back(nb);
  const std::vector<c10::SymInt> rows_d{rows_kept, rows_shared, sizes[nb]};
  const Tensor g = grad_z.to(eps.scalar_type()).permute(perm).reshape_symint(rows_d);
  const Tensor e = eps.permute(perm).reshape_symint(rows_d);
  return at::tril(at::matmul(g.transpose(1, 2), e))
      .reshape_symint(l_shape)
      .to(grad_z.scalar_type());
}

Tensor tril_t_matvec(const Tensor& scale_tril, const Tensor& v) {
  return at::matmul(at::tril(scale_tril).transpose(-1, -2), v.unsqueeze(-1)).squeeze(-1);
}

}  // namespace autograd
}  // namespace fused_reparam
