// Builds a DiagLoop from tensors: broadcast views of the inputs over the output shape, with
// adjacent dims merged wherever every input allows, so contiguous inputs become one dim.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <vector>

#include "common/diag_loop.h"

namespace fused_reparam {

// `inputs` are broadcastable to `shape` (null entries are absent operands). May replace an
// input by a contiguous copy only when the merged shape would exceed kMaxDims.
inline DiagLoop make_diag_loop(at::IntArrayRef shape,
                               std::array<const at::Tensor*, 3> inputs,
                               std::array<at::Tensor, 3>& keep_alive) {
  DiagLoop d;
  d.numel = c10::multiply_integers(shape);
  std::vector<int64_t> sizes;
  std::array<std::vector<int64_t>, 3> strides;
  for (int k = 0; k < 3; ++k) {
    if (inputs[k] == nullptr) continue;
    keep_alive[k] = inputs[k]->expand(shape);
  }
  // Merge dim i into the dim before it when every operand is row-major across the pair.
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    bool merge = !sizes.empty();
    for (int k = 0; k < 3 && merge; ++k) {
      if (inputs[k] == nullptr) continue;
      merge = strides[k].back() == keep_alive[k].stride(i) * shape[i];
    }
    if (merge) {
      sizes.back() *= shape[i];
      for (int k = 0; k < 3; ++k) {
        if (inputs[k] != nullptr) strides[k].back() = keep_alive[k].stride(i);
      }
    } else {
      sizes.push_back(shape[i]);
      for (int k = 0; k < 3; ++k) {
        strides[k].push_back(inputs[k] != nullptr ? keep_alive[k].stride(i) : 0);
      }
    }
  }
  if (sizes.empty()) {  // a scalar, or all dims of size 1
    sizes.push_back(1);
    for (auto& s : strides) s.push_back(0);
  }
  if (sizes.size() > static_cast<size_t>(kMaxDims)) {
    for (int k = 0; k < 3; ++k) {
      if (inputs[k] != nullptr) keep_alive[k] = keep_alive[k].contiguous();
    }
    sizes.assign(1, d.numel);
    for (int k = 0; k < 3; ++k) strides[k].assign(1, 1);
  }
  d.ndim = static_cast<int>(sizes.size());
  for (int i = 0; i < d.ndim; ++i) {
    d.sizes[i] = sizes[i];
    for (int k = 0; k < 3; ++k) d.in_strides[k][i] = strides[k][i];
  }
  for (int k = 0; k < 3; ++k) {
    d.in[k] = inputs[k] != nullptr ? keep_alive[k].const_data_ptr() : nullptr;
  }
  return d;
}

}  // namespace fused_reparam
