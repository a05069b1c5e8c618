// Argument checks every op shares (dtypes, devices, broadcasting, the [seed, offset] tensor),
// used by the CPU and CUDA entry points, so a libtorch caller gets the same clear messages as a
// Python one.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

namespace fused_reparam {

inline bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

inline void check_float_input(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK(is_supported_float(t.scalar_type()), op, ": ", name,
              " must be float32, float64, float16 or bfloat16, got ", t.scalar_type());
}

inline void check_same(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                       const char* b_name, const char* op) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": ", b_name, " has dtype ",
              b.scalar_type(), " but ", a_name, " has dtype ", a.scalar_type(),
              "; they must match");
  TORCH_CHECK(a.device() == b.device(), op, ": ", b_name, " is on ", b.device(), " but ",
              a_name, " is on ", a.device(), "; they must be on the same device");
}

// Broadcast of two shapes, with a message naming both.
inline std::vector<int64_t> broadcast_sizes(at::IntArrayRef sa, const char* a_name,
                                            at::IntArrayRef sb, const char* b_name,
                                            const char* op) {
  const size_t n = std::max(sa.size(), sb.size());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - sa.size() ? 1 : sa[i - (n - sa.size())];
    const int64_t db = i < n - sb.size() ? 1 : sb[i - (n - sb.size())];
    TORCH_CHECK(da == db || da == 1 || db == 1, op, ": ", a_name, " (shape ", sa, ") and ",
                b_name, " (shape ", sb, ") are not broadcastable");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Broadcast shape of two inputs, with a message naming both.
inline std::vector<int64_t> broadcast_shape(const at::Tensor& a, const char* a_name,
                                            const at::Tensor& b, const char* b_name,
                                            const char* op) {
  return broadcast_sizes(a.sizes(), a_name, b.sizes(), b_name, op);
}

inline void check_seed_offset(const at::Tensor& seed_offset, const at::Tensor& like,
                              const char* op) {
  TORCH_CHECK(seed_offset.scalar_type() == at::kLong && seed_offset.numel() == 2, op,
              ": seed_offset must be an int64 tensor of 2 elements [seed, offset], got ",
              seed_offset.scalar_type(), " of shape ", seed_offset.sizes());
  TORCH_CHECK(seed_offset.device() == like.device(), op, ": seed_offset is on ",
              seed_offset.device(), " but the inputs are on ", like.device());
}

inline uint64_t as_u64(int64_t v) { return static_cast<uint64_t>(v); }

}  // namespace fused_reparam
