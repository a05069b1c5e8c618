// The stream a CPU forward op uses, shared by the diagonal and Cholesky ops: zeros for an
// explicit eps, a copy of the given [seed, offset], or a draw from the generator.
#pragma once

#include <ATen/ATen.h>

#include <limits>
#include <optional>

namespace fused_reparam {
namespace cpu {

// randint(2^63 - 1) on int64, as the pure-PyTorch reference and the Triton path draw it, so
// all three give the same z after manual_seed. seed_offset is already checked.
inline at::Tensor stream_used(const std::optional<at::Tensor>& eps,
                              const std::optional<at::Tensor>& seed_offset,
                              const std::optional<at::Generator>& generator) {
  const auto opts = at::TensorOptions().dtype(at::kLong);
  if (eps.has_value()) return at::zeros({2}, opts);
  if (seed_offset.has_value()) return seed_offset->reshape({2}).clone(at::MemoryFormat::Contiguous);
  return at::randint(std::numeric_limits<int64_t>::max(), {2}, generator, opts);
}

}  // namespace cpu
}  // namespace fused_reparam
