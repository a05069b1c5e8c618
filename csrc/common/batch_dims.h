// Merging a sample's batch dims for the row kernels: adjacent dims merge where every operand is
// row-major across the pair, so contiguous and simply broadcast inputs become one or two dims.
#pragma once

#include <ATen/ATen.h>

#include <array>

namespace fused_reparam {

// `shape` with one more trailing dim of size `d` (a sample's [*batch, D] -> L's [*batch, D, D]).
inline at::DimVector append_dim(at::IntArrayRef shape, int64_t d) {
  at::DimVector out(shape.begin(), shape.end());
  out.push_back(d);
  return out;
}

// Writes the merged sizes and each operand's strides (views: the operands over the batch
// shape, undefined = absent) into bsizes / bstrides / bdim. False when more than kMax dims
// would remain: the caller then retries with dense copies of the operands.
template <int kMax, size_t N>
bool merge_batch_dims(at::IntArrayRef batch, const std::array<at::Tensor, N>& views,
                      int64_t (&bsizes)[kMax], int64_t (&bstrides)[N][kMax], int& bdim) {
  bdim = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i] == 1) continue;
    bool merge = bdim > 0;
    for (size_t k = 0; k < N && merge; ++k) {
      if (views[k].defined()) merge = bstrides[k][bdim - 1] == views[k].stride(i) * batch[i];
    }
    if (!merge && bdim == kMax) return false;
    if (merge) {
      bsizes[bdim - 1] *= batch[i];
    } else {
      bsizes[bdim++] = batch[i];
    }
    for (size_t k = 0; k < N; ++k) {
      if (views[k].defined()) bstrides[k][bdim - 1] = views[k].stride(i);
    }
  }
  return true;
}

}  // namespace fused_reparam
