// CPU kernels of the Cholesky op z = mu + L eps: rows of the sample in parallel, eps of a row
// made from the stream (or read), the lower triangle of L read row by row.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/chol_problem.h"
#include "cpu/diag_cpu_kernels.h"
#include "cpu/huge_pages.h"
#include "cpu/stream_cpu.h"
#include "fused_reparam/chol_math.h"
#include "fused_reparam/normal.h"

namespace fused_reparam {
namespace cpu {
namespace {

constexpr const char* kFwd = "fused_reparam::chol_rsample";
constexpr const char* kBwd = "fused_reparam::chol_rsample_backward";

template <class T>
using Compute = std::conditional_t<std::is_same_v<T, double>, double, float>;

// eps of rows [r0, r1) in row-major order: made from the stream (elements r0*D .. r1*D - 1)
// with the vectorized float32 noise of the active CPU build, or per group in float64.
template <class F>
struct RowNoise {
  std::vector<F> buf;
  const F* rows = nullptr;  // eps of row r0 starts here

  void fill(const CholProblem& p, int64_t r0, int64_t r1) {
    const int64_t begin = r0 * p.d;
    const int64_t first = begin & ~int64_t{3};
    const int64_t len = r1 * p.d - first;
    const size_t need = static_cast<size_t>(len + 4 + kNoisePad);
    if (buf.size() < need) buf.resize(need);
    if constexpr (std::is_same_v<F, float>) {
      active_cpu_kernels()->noise_f32(buf.data(), p.seed, p.offset, first, len);
    } else {
      const uint64_t g0 = static_cast<uint64_t>(first) >> 2;
      for (int64_t g = 0; 4 * g < len; ++g) {
        stream_normals4<F>(p.seed, p.offset, g0 + static_cast<uint64_t>(g), buf.data() + 4 * g);
      }
    }
    rows = buf.data() + (begin - first);
  }
};

// eps of one row into out[0, D): the stream's (from `noise`, row k of the chunk) or read.
template <class T, class F>
const F* row_eps(const CholProblem& p, const int64_t off[3], const RowNoise<F>& noise, int64_t k,
                 F* out) {
  if (p.in[2] == nullptr) return noise.rows + k * p.d;
  const T* e = static_cast<const T*>(p.in[2]) + off[2];
  for (int64_t j = 0; j < p.d; ++j) out[j] = static_cast<F>(e[j]);
  return out;
}

// Rows per noise chunk: about 2K elements of noise, in L1.
inline int64_t chunk_rows(const CholProblem& p) { return std::max<int64_t>(1, 2048 / p.d); }

template <class T>
void forward_rows(const CholProblem& p, int64_t r0, int64_t r1) {
  using F = Compute<T>;
  RowNoise<F> noise;
  std::vector<F> given(p.d);
  const T* mu = static_cast<const T*>(p.in[0]);
  const T* l = static_cast<const T*>(p.in[1]);
  T* z = static_cast<T*>(p.out[0]);
  int64_t off[3];
  for (int64_t c0 = r0; c0 < r1; c0 += chunk_rows(p)) {
    const int64_t c1 = std::min(r1, c0 + chunk_rows(p));
    if (p.in[2] == nullptr) noise.fill(p, c0, c1);
    for (int64_t r = c0; r < c1; ++r) {
      p.row_offsets(r, off);
      const F* eps = row_eps<T, F>(p, off, noise, r - c0, given.data());
      const T* mu_r = mu + off[0];
      const T* l_r = l + off[1];
      T* z_r = z + r * p.d;
      for (int64_t i = 0; i < p.d; ++i) {
        const F dot = chol::lower_row_dot<F>(l_r + i * p.l_row_stride, i, eps);
        z_r[i] = static_cast<T>(static_cast<F>(mu_r[i]) + dot);
      }
    }
  }
}

template <class T>
void backward_rows(const CholProblem& p, int64_t r0, int64_t r1) {
  using F = Compute<T>;
  RowNoise<F> noise;
  std::vector<F> given(p.d), g(p.d), deps(p.d);
  const T* gz = static_cast<const T*>(p.in[0]);
  const T* l = static_cast<const T*>(p.in[1]);
  T* gl = static_cast<T*>(p.out[0]);
  T* ge = static_cast<T*>(p.out[1]);
  int64_t off[3];
  for (int64_t c0 = r0; c0 < r1; c0 += chunk_rows(p)) {
    const int64_t c1 = std::min(r1, c0 + chunk_rows(p));
    if (p.in[2] == nullptr) noise.fill(p, c0, c1);
    for (int64_t r = c0; r < c1; ++r) {
      p.row_offsets(r, off);
      const F* eps = row_eps<T, F>(p, off, noise, r - c0, given.data());
      for (int64_t i = 0; i < p.d; ++i) g[i] = static_cast<F>(gz[off[0] + i]);
      T* gl_r = gl + r * p.d * p.d;
      for (int64_t i = 0; i < p.d; ++i) {
        T* row = gl_r + i * p.d;
        for (int64_t j = 0; j < p.d; ++j) row[j] = static_cast<T>(chol::grad_l(g[i], eps[j], i, j));
      }
      if (ge != nullptr) {
        std::fill(deps.begin(), deps.end(), F(0));
        const T* l_r = l + off[1];
        for (int64_t i = 0; i < p.d; ++i) {
          chol::add_lower_row_transposed<F>(l_r + i * p.l_row_stride, i, g[i], deps.data());
        }
        for (int64_t j = 0; j < p.d; ++j) ge[r * p.d + j] = static_cast<T>(deps[j]);
      }
    }
  }
}

// Rows in parallel; the grain keeps about 16K multiply-adds per task.
template <class Fn>
void parallel_rows(const CholProblem& p, Fn fn) {
  const int64_t work = std::max<int64_t>(1, p.d * (p.d + 1) / 2);
  const int64_t grain = std::max<int64_t>(1, 16384 / work);
  at::parallel_for(0, p.rows, grain, [&](int64_t b, int64_t e) { fn(p, b, e); });
}

std::tuple<at::Tensor, at::Tensor> chol_rsample_cpu(const at::Tensor& mu,
                                                    const at::Tensor& scale_tril,
                                                    const std::optional<at::Tensor>& eps,
                                                    const std::optional<at::Tensor>& seed_offset,
                                                    std::optional<at::Generator> generator) {
  const std::vector<int64_t> shape = check_chol_args(kFwd, mu, "mu", scale_tril, eps);
  if (seed_offset.has_value() && !eps.has_value()) check_seed_offset(*seed_offset, mu, kFwd);
  const at::Tensor used = stream_used(eps, seed_offset, generator);
  at::Tensor z = at::empty(shape, mu.options().memory_format(at::MemoryFormat::Contiguous));
  if (z.numel() == 0) return {z, used};
  advise_huge_pages(z);
  std::array<at::Tensor, 3> keep;
  CholProblem p = make_chol_problem(shape, mu, scale_tril, eps, keep);
  p.out[0] = z.mutable_data_ptr();
  p.seed = as_u64(used.const_data_ptr<int64_t>()[0]);
  p.offset = as_u64(used.const_data_ptr<int64_t>()[1]);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "chol_rsample", [&] {
    parallel_rows(p, &forward_rows<scalar_t>);
  });
  return {z, used};
}

std::tuple<at::Tensor, at::Tensor> chol_rsample_backward_cpu(
    const at::Tensor& grad_z, const at::Tensor& scale_tril, const std::optional<at::Tensor>& eps,
    const at::Tensor& seed_offset, bool need_grad_eps) {
  const std::vector<int64_t> shape = check_chol_args(kBwd, grad_z, "grad_z", scale_tril, eps);
  TORCH_CHECK(at::IntArrayRef(shape) == grad_z.sizes(), kBwd, ": scale_tril (shape ",
              scale_tril.sizes(), ") must broadcast to grad_z's batch shape, grad_z has shape ",
              grad_z.sizes());
  TORCH_CHECK(eps.has_value() || !need_grad_eps, kBwd, ": need_grad_eps requires an explicit eps");
  if (!eps.has_value()) check_seed_offset(seed_offset, grad_z, kBwd);
  std::vector<int64_t> l_shape = shape;
  l_shape.push_back(shape.back());
  const auto opts = grad_z.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor grad_l = at::empty(l_shape, opts);
  at::Tensor grad_eps = need_grad_eps ? at::empty(shape, opts) : at::empty({0}, opts);
  if (grad_z.numel() == 0) return {grad_l, grad_eps};
  advise_huge_pages(grad_l);
  std::array<at::Tensor, 3> keep;
  CholProblem p = make_chol_problem(shape, grad_z, scale_tril, eps, keep);
  p.out[0] = grad_l.mutable_data_ptr();
  p.out[1] = need_grad_eps ? grad_eps.mutable_data_ptr() : nullptr;
  if (!eps.has_value()) {
    const at::Tensor so = seed_offset.reshape({2}).contiguous();
    p.seed = as_u64(so.const_data_ptr<int64_t>()[0]);
    p.offset = as_u64(so.const_data_ptr<int64_t>()[1]);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_z.scalar_type(),
                                  "chol_rsample_backward",
                                  [&] { parallel_rows(p, &backward_rows<scalar_t>); });
  return {grad_l, grad_eps};
}

}  // namespace
}  // namespace cpu
}  // namespace fused_reparam

TORCH_LIBRARY_IMPL(fused_reparam, CPU, m) {
  m.impl("chol_rsample", &fused_reparam::cpu::chol_rsample_cpu);
  m.impl("chol_rsample_backward", &fused_reparam::cpu::chol_rsample_backward_cpu);
}
