// The elementwise problem of the diagonal op as plain data: the output shape with adjacent
// dims merged, each input's element strides (0 = broadcast), the outputs (fresh, contiguous,
// indexed by the linear element index, which is also the index in the noise stream) and the
// stream. Shared by the CPU range kernels and the CUDA kernels (passed by value to a launch).
#pragma once

#include <cstdint>

#include "fused_reparam/macros.h"

namespace fused_reparam {

// Enough for any shape once adjacent dims are merged; beyond it the inputs are made
// contiguous (one dim).
constexpr int kMaxDims = 16;

// A row-major elementwise problem over `sizes` (dims merged where every operand allows).
// Outputs are fresh contiguous tensors, indexed by the linear element index, which is also
// the element's index in the noise stream. Inputs are strided views (stride 0 = broadcast).
struct DiagLoop {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t numel = 0;
  // forward: mu, logvar, eps-or-null; backward: grad_z, logvar, eps-or-null
  const void* in[3] = {nullptr, nullptr, nullptr};
  int64_t in_strides[3][kMaxDims] = {};
  // forward: z; backward: grad_logvar, grad_eps-or-null
  void* out[2] = {nullptr, nullptr};
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// Element offsets of each input for linear index `linear` (row-major over d.sizes).
FR_HOST_DEVICE void input_offsets(const DiagLoop& d, int64_t linear, int64_t off[3]) {
  off[0] = off[1] = off[2] = 0;
  for (int dim = d.ndim - 1; dim >= 0; --dim) {
    const int64_t size = d.sizes[dim];
    const int64_t idx = linear % size;
    linear /= size;
    off[0] += idx * d.in_strides[0][dim];
    off[1] += idx * d.in_strides[1][dim];
    off[2] += idx * d.in_strides[2][dim];
  }
}

// Element offset of input k alone for linear index `linear`.
FR_HOST_DEVICE int64_t input_offset(const DiagLoop& d, int k, int64_t linear) {
  int64_t off = 0;
  for (int dim = d.ndim - 1; dim >= 0; --dim) {
    const int64_t size = d.sizes[dim];
    off += (linear % size) * d.in_strides[k][dim];
    linear /= size;
  }
  return off;
}

}  // namespace fused_reparam
