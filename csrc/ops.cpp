// The operator schemas (one per op) and, for the Python build, the `_C` module stub.
// Kernels are registered per device in cpu/ and cuda/ (the Triton ones from Python), autograd
// in autograd/, fake tensors in Python.
#include <torch/library.h>

#include <string>
#include <vector>

#ifdef FUSED_REPARAM_PYTHON_MODULE
#include <Python.h>

extern "C" {
// Importing fused_reparam._C loads this library, whose static initializers register the ops.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}
#endif

namespace {

// Every backend provides the same eight ops: the compiled C++/CUDA kernels under the plain
// names, the Triton kernels under "triton_<name>".
void define_backend_ops(torch::Library& m, const std::string& p) {
  const std::vector<at::Tag> seeded{at::Tag::nondeterministic_seeded};
  const auto def = [&](const std::string& schema, bool is_seeded) {
    if (is_seeded) {
      m.def((p + schema).c_str(), seeded);
    } else {
      m.def((p + schema).c_str());
    }
  };
  // z = mu + sigma(s) * eps, with sigma(s) of the scale parametrization `scale` (0 logvar:
  // exp(s / 2), 1 log_std: exp(s), 2 std: s, 3 softplus: log1p(exp(s))) plus min_scale >= 0
  // (fused_reparam/scale.h). eps of kind `noise` (0 normal, 1 laplace, 2 logistic, 3 gumbel:
  // fused_reparam/noise.h) is drawn in-kernel from the stream seed_offset = [seed, offset]
  // (int64 bit patterns of two uint64), or from `generator` when seed_offset is None, unless
  // an explicit eps is given. Returns z and the [seed, offset] it used (zeros when eps was
  // given), which the backward takes to regenerate eps. The scale comes third: a call with
  // only a scale passes three arguments (each argument costs time in a call from Python).
  def("diag_rsample(Tensor mu, Tensor s, int scale=0, Tensor? eps=None, "
      "Tensor? seed_offset=None, Generator? generator=None, float min_scale=0., int noise=0) "
      "-> (Tensor, Tensor)",
      true);
  // grad_s = grad_z * sigma'(s) * eps over grad_z's shape (the caller reduces broadcast
  // dims); grad_eps = grad_z * sigma when need_grad_eps, else an empty tensor.
  def("diag_rsample_backward(Tensor grad_z, Tensor s, Tensor? eps, Tensor seed_offset, "
      "bool need_grad_eps, int scale=0, float min_scale=0., int noise=0) -> (Tensor, Tensor)",
      false);
  // z = mu + L eps for mu [..., D] and scale_tril L [..., D, D] (lower triangle read only;
  // batch dims broadcast), eps [*batch, D] from the stream as for diag_rsample (element i of
  // the sample in row-major order), or given. Returns z and the [seed, offset] used.
  def("chol_rsample(Tensor mu, Tensor scale_tril, Tensor? eps=None, Tensor? seed_offset=None, "
      "Generator? generator=None) -> (Tensor, Tensor)",
      true);
  // grad_L = tril(grad_z eps^T) over grad_z's batch shape ([*batch, D, D], zeros above the
  // diagonal; the caller reduces broadcast dims); grad_eps = L^T grad_z when need_grad_eps,
  // else an empty tensor.
  def("chol_rsample_backward(Tensor grad_z, Tensor scale_tril, Tensor? eps, Tensor seed_offset, "
      "bool need_grad_eps) -> (Tensor, Tensor)",
      false);
  // The VAE extras in the same pass (rows = the sample's dims but the last, D = its last dim),
  // with lv = 2 log sigma: z as diag_rsample, kl[r] = 0.5 * sum_d(mu^2 + sigma^2 - 1 - lv)
  // (KL to N(0, I)) and log_q[r] = -0.5 * sum_d(eps^2 + lv + log(2 pi)), in the compute type,
  // stored in mu's dtype. Returns (z, kl, log_q, [seed, offset] used). With squash, z is the
  // action a = low + (high - low) (tanh(u) + 1) / 2 of the Gaussian sample u and log_q its
  // log-density: the Gaussian's minus sum_d log|da/du| (fused_reparam/squash.h).
  def("diag_rsample_stats(Tensor mu, Tensor s, int scale=0, Tensor? eps=None, "
      "Tensor? seed_offset=None, Generator? generator=None, float min_scale=0., "
      "bool squash=False, float low=-1., float high=1.) -> (Tensor, Tensor, Tensor, Tensor)",
      true);
  // Over the sample's shape (the caller reduces broadcast dims), with gk = grad_kl[r] and
  // gq = grad_log_q[r] for the element's row, sigma' = d sigma / ds, dlog = d log sigma / ds:
  //   grad_mu = grad_z + gk * mu
  //   grad_s = sigma' * (grad_z * eps + gk * sigma) - dlog * (gk + gq)
  //   grad_eps = grad_z * sigma - gq * eps  (when need_grad_eps, else an empty tensor);
  // with squash, grad_z stands for the gradient reaching u: grad_a * da/du + 2 gq tanh(u).
  def("diag_rsample_stats_backward(Tensor grad_z, Tensor grad_kl, Tensor grad_log_q, "
      "Tensor mu, Tensor s, Tensor? eps, Tensor seed_offset, bool need_grad_eps, int scale=0, "
      "float min_scale=0., bool squash=False, float low=-1., float high=1.) "
      "-> (Tensor, Tensor, Tensor)",
      false);
  // z as chol_rsample, with ld = sum_i log|L[i, i]|:
  //   kl[r] = 0.5 * (sum_{j <= i} L[i, j]^2 + sum_i mu_i^2 - D) - ld  (KL to N(0, I))
  //   log_q[r] = -0.5 * sum_i eps_i^2 - ld - 0.5 * D * log(2 pi).
  def("chol_rsample_stats(Tensor mu, Tensor scale_tril, Tensor? eps=None, "
      "Tensor? seed_offset=None, Generator? generator=None) -> (Tensor, Tensor, Tensor, Tensor)",
      true);
  // Over the sample's batch shape (the caller reduces broadcast dims):
  //   grad_mu = grad_z + gk * mu
  //   grad_L = tril(grad_z eps^T) + gk * tril(L) - diag((gk + gq) / L[i, i])
  //   grad_eps = L^T grad_z - gq * eps  (when need_grad_eps, else an empty tensor).
  def("chol_rsample_stats_backward(Tensor grad_z, Tensor grad_kl, Tensor grad_log_q, "
      "Tensor mu, Tensor scale_tril, Tensor? eps, Tensor seed_offset, bool need_grad_eps) "
      "-> (Tensor, Tensor, Tensor)",
      false);
}

}  // namespace

TORCH_LIBRARY(fused_reparam, m) {
  define_backend_ops(m, "");
  define_backend_ops(m, "triton_");
  // Which CPU kernel build runs ("default", "avx2", "avx512"); a non-empty name forces one
  // (for tests and benchmarks). Returns the build in use after the call.
  m.def("_cpu_kernel_isa(str force=\"\") -> str");
}
