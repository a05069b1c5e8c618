// Builds a Problem (common/problem.h) from tensors: every operand viewed over the sample's
// shape (broadcast dims get stride 0, not a copy), adjacent dims merged wherever every operand
// is row-major across the pair. The row ops keep D apart (a row is an event); the elementwise
// diagonal op merges D too, so contiguous inputs become one run. Shared by the CPU and CUDA ops.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <optional>

#include "common/problem.h"

namespace fused_reparam {

// How an operand maps onto the sample [*batch, D].
enum class RowKind {
  kElement,      // [..., D] broadcast to the sample, any stride along D
  kUnitElement,  // the same, copied first (its own storage only) unless unit-stride along D
  kRow,          // one value per row: [*batch]
  kTril,         // a lower-triangular factor [..., D, D]; unit stride along its rows
};

struct RowInput {
  const at::Tensor* t = nullptr;  // null = absent
  RowKind kind = RowKind::kElement;
};

using ProblemInputs = std::array<RowInput, kOperands>;
using KeepAlive = std::array<at::Tensor, kOperands>;

// Unit stride along the last dim, copying only when needed (and only t's own storage).
inline at::Tensor unit_last_stride(const at::Tensor& t) {
  return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous();
}

// `shape` with one more trailing dim of size `d` (a sample's [*batch, D] -> L's [*batch, D, D]).
inline at::DimVector append_dim(at::IntArrayRef shape, int64_t d) {
  at::DimVector out(shape.begin(), shape.end());
  out.push_back(d);
  return out;
}

// Stride of t along dim i of `dims` with t broadcast to them (t's dims right-aligned, its last
// `trailing` dims not among `dims`): 0 where t is broadcast. Arithmetic, not views: a view
// costs an allocation, which matters where the per-call cost is most of the time.
inline int64_t stride_over(const at::Tensor& t, at::IntArrayRef dims, size_t i,
                           int64_t trailing) {
  const int64_t j =
      static_cast<int64_t>(i) - static_cast<int64_t>(dims.size()) + (t.dim() - trailing);
  return j < 0 || t.size(j) == 1 ? 0 : t.stride(j);
}

// Merges `dims` over the operands (undefined = absent; their last trailing[k] dims are not
// among `dims`) into sizes / strides / n. False when more than kMax dims would remain: the
// caller then retries with dense copies.
template <int kMax>
bool merge_dims(at::IntArrayRef dims, const KeepAlive& ops,
                const std::array<int64_t, kOperands>& trailing, int64_t (&sizes)[kMax],
                int64_t (&strides)[kOperands][kMax], int& n) {
  n = 0;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 1) continue;
    int64_t at[kOperands] = {};
    bool merge = n > 0;
    for (int k = 0; k < kOperands; ++k) {
      if (!ops[k].defined()) continue;
      at[k] = stride_over(ops[k], dims, i, trailing[k]);
      merge = merge && strides[k][n - 1] == at[k] * dims[i];
    }
    if (!merge && n == kMax) return false;
    if (merge) {
      sizes[n - 1] *= dims[i];
    } else {
      sizes[n++] = dims[i];
    }
    for (int k = 0; k < kOperands; ++k) strides[k][n - 1] = at[k];
  }
  return true;
}

// Sets the outer dims from merged sizes[0, n) (at least one: a size-1 dim when none).
template <int kMax>
void set_outer_dims(Problem& p, const int64_t (&sizes)[kMax],
                    const int64_t (&strides)[kOperands][kMax], int n) {
  p.bdim = std::max(n, 1);
  p.bsizes[0] = 1;
  p.rows = 1;
  for (int i = 0; i < n; ++i) {
    p.bsizes[i] = sizes[i];
    p.rows *= sizes[i];
    for (int k = 0; k < kOperands; ++k) p.bstrides[k][i] = strides[k][i];
  }
}

// The elementwise problem over `shape`: operands kFirst, kSecond, kEps (kElement only),
// every dim merged where all allow; the innermost merged dim is d.
inline Problem make_elementwise_problem(at::IntArrayRef shape, const ProblemInputs& inputs,
                                        KeepAlive& keep_alive) {
  Problem p;
  int64_t sizes[kMaxDims + 1] = {};
  int64_t strides[kOperands][kMaxDims + 1] = {};
  int n = 0;
  for (bool dense : {false, true}) {
    for (int k = 0; k < kOperands; ++k) {
      if (inputs[k].t == nullptr) continue;
      TORCH_CHECK(inputs[k].kind == RowKind::kElement, "fused_reparam: elementwise operands only");
      keep_alive[k] = dense ? inputs[k].t->expand(shape).contiguous() : *inputs[k].t;
    }
    if (merge_dims(shape, keep_alive, {}, sizes, strides, n)) break;
    TORCH_CHECK(!dense, "fused_reparam: dense operands must merge their dims");
  }
  if (n == 0) {  // a scalar, or all dims of size 1
    p.d = 1;
  } else {
    p.d = sizes[n - 1];
    for (int k = 0; k < kOperands; ++k) p.dstride[k] = strides[k][n - 1];
  }
  set_outer_dims(p, sizes, strides, std::max(n - 1, 0));
  for (int k = 0; k < kOperands; ++k) {
    p.in[k] = keep_alive[k].defined() ? keep_alive[k].const_data_ptr() : nullptr;
  }
  return p;
}

// The row problem over the sample `shape` [*batch, D]. Broadcasts that interleave so that more
// than kMaxDims batch dims stay unmerged are read from dense copies instead: first of the
// per-element and per-row operands, then of L too.
inline Problem make_rows_problem(at::IntArrayRef shape, const ProblemInputs& inputs,
                                 KeepAlive& keep_alive) {
  Problem p;
  const int64_t nb = static_cast<int64_t>(shape.size()) - 1;
  const at::IntArrayRef batch = shape.slice(0, nb);
  p.d = shape.back();
  std::array<int64_t, kOperands> trailing{};  // each operand's dims past the batch dims
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kOperands][kMaxDims] = {};
  int n = 0;
  for (int dense = 0;; ++dense) {
    for (int k = 0; k < kOperands; ++k) {
      const RowInput& in = inputs[k];
      if (in.t == nullptr) continue;
      if (in.kind == RowKind::kTril) {
        at::Tensor l = unit_last_stride(*in.t);
        if (dense >= 2) l = l.expand(append_dim(shape, p.d)).contiguous();
        if (l.size(-1) > 1 && l.stride(-2) < l.size(-1)) l = l.contiguous();
        keep_alive[k] = l;
        trailing[k] = 2;
        p.l_row_stride = l.stride(-2);
        p.dstride[k] = 1;
      } else if (in.kind == RowKind::kRow) {
        keep_alive[k] = dense >= 1 ? in.t->expand(batch).contiguous() : *in.t;
      } else {
        const at::Tensor t =
            in.kind == RowKind::kUnitElement ? unit_last_stride(*in.t) : *in.t;
        keep_alive[k] = dense >= 1 ? t.expand(shape).contiguous() : t;
        trailing[k] = 1;
        const at::Tensor& e = keep_alive[k];
        p.dstride[k] = e.dim() == 0 || e.size(-1) == 1 ? 0 : e.stride(-1);
      }
    }
    if (merge_dims(batch, keep_alive, trailing, sizes, strides, n)) break;
    TORCH_CHECK(dense < 2, "fused_reparam: dense operands must merge their batch dims");
  }
  set_outer_dims(p, sizes, strides, n);
  for (int k = 0; k < kOperands; ++k) {
    p.in[k] = keep_alive[k].defined() ? keep_alive[k].const_data_ptr() : nullptr;
  }
  return p;
}

// The plain ops' operands as their kernels read them. Diagonal: first (mu or grad_z), s and
// eps elementwise. Cholesky: first and eps with unit stride along D, and L.
inline ProblemInputs diag_inputs(const at::Tensor& first, const at::Tensor& s,
                                 const std::optional<at::Tensor>& eps) {
  ProblemInputs in;
  in[kFirst] = {&first, RowKind::kElement};
  in[kSecond] = {&s, RowKind::kElement};
  in[kEps] = {eps.has_value() ? &*eps : nullptr, RowKind::kElement};
  return in;
}

inline ProblemInputs chol_inputs(const at::Tensor& first, const at::Tensor& l,
                                 const std::optional<at::Tensor>& eps) {
  ProblemInputs in;
  in[kFirst] = {&first, RowKind::kUnitElement};
  in[kSecond] = {&l, RowKind::kTril};
  in[kEps] = {eps.has_value() ? &*eps : nullptr, RowKind::kUnitElement};
  return in;
}

}  // namespace fused_reparam
