// The stream a CPU forward op uses, shared by the diagonal and Cholesky ops: zeros for an
// explicit eps, a copy of the given [seed, offset], or a draw from the generator.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <utility>

namespace fused_reparam {
namespace cpu {

// The two words of a checked [seed, offset] tensor of any 2-element shape ([2], [1, 2], ...),
// read in place.
inline std::pair<uint64_t, uint64_t> read_seed_offset(const at::Tensor& seed_offset) {
  const at::Tensor flat = seed_offset.dim() == 1 ? seed_offset : seed_offset.reshape({2});
  const int64_t* in = flat.const_data_ptr<int64_t>();
  return {static_cast<uint64_t>(in[0]), static_cast<uint64_t>(in[flat.stride(0)])};
}

// The 2-element result is written directly (no tensor ops: at VAE sizes each dispatched op
// costs about as much as the kernel). The draw is exactly torch.randint(2**63 - 1, (2,),
// dtype=torch.int64) on the CPU generator: two random64() values in order, each reduced
// modulo the range, as ATen's random_from_to does for a range this wide. The reference and the
// Triton path draw with torch.randint itself, so all give the same z after manual_seed.
// seed_offset is already checked.
inline at::Tensor stream_used(const std::optional<at::Tensor>& eps,
                              const std::optional<at::Tensor>& seed_offset,
                              const std::optional<at::Generator>& generator) {
  at::Tensor used = at::empty({2}, at::TensorOptions().dtype(at::kLong));
  int64_t* out = used.mutable_data_ptr<int64_t>();
  if (eps.has_value()) {
    out[0] = out[1] = 0;
  } else if (seed_offset.has_value()) {
    const auto [seed, offset] = read_seed_offset(*seed_offset);
    out[0] = static_cast<int64_t>(seed);
    out[1] = static_cast<int64_t>(offset);
  } else {
    auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(
        generator, at::detail::getDefaultCPUGenerator());
    constexpr uint64_t kRange = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    std::lock_guard<std::mutex> lock(gen->mutex_);
    out[0] = static_cast<int64_t>(gen->random64() % kRange);
    out[1] = static_cast<int64_t>(gen->random64() % kRange);
  }
  return used;
}

}  // namespace cpu
}  // namespace fused_reparam
