// Where a CUDA kernel's noise stream comes from, shared by the diagonal and Cholesky ops:
// an explicit [seed, offset] tensor on the device, torch's CUDA generator (graph-safe: the
// Philox offset is reserved under the generator's mutex and unpacked in the kernel, so each
// CUDA-graph replay reads the advanced offset), or nowhere (explicit eps: seed = offset = 0).
// Thread 0 of block 0 writes the [seed, offset] used, which the backward reads.
#pragma once

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/PhiloxUtils.cuh>

#include <mutex>
#include <optional>
#include <tuple>
#include <type_traits>

namespace fused_reparam {
namespace cuda {

// Streams drawn from torch's generator set the top bit of the offset: torch's own Philox ops
// put their thread index (< 2^32) in counter words 2-3, so their counters never equal ours.
constexpr uint64_t kGeneratorStreamTag = uint64_t{1} << 63;

// The compute type: float64 for float64, float32 for the others.
template <class T>
using Acc = typename std::conditional<std::is_same<T, double>::value, double, float>::type;

struct StreamSource {
  const int64_t* seed_offset_in = nullptr;
  at::PhiloxCudaState philox;
  bool from_generator = false;
  int64_t* seed_offset_out = nullptr;  // written by thread 0 of block 0 (may be null)
};

// The source of a call: none when eps is given, else seed_offset when given, else the
// generator (or the device's default). `keep` holds the contiguous copy of seed_offset.
inline StreamSource stream_source(bool has_eps, const std::optional<at::Tensor>& seed_offset,
                                  const std::optional<at::Generator>& generator,
                                  const at::Device& device, at::Tensor& keep) {
  StreamSource src;
  if (has_eps) return src;
  if (seed_offset.has_value()) {
    keep = seed_offset->reshape({2}).contiguous();
    src.seed_offset_in = keep.const_data_ptr<int64_t>();
    return src;
  }
  auto* gen = at::get_generator_or_default<at::CUDAGeneratorImpl>(
      generator, at::cuda::detail::getDefaultCUDAGenerator(device.index()));
  TORCH_CHECK(gen->device() == device, "fused_reparam: generator is for ", gen->device(),
              " but the inputs are on ", device);
  std::lock_guard<std::mutex> lock(gen->mutex_);
  // Any fresh offset is a fresh stream (the element index has its own counter words), so the
  // smallest increment torch allows is enough.
  src.philox = gen->philox_cuda_state(4);
  src.from_generator = true;
  return src;
}

// The source of a forward op's stream, as stream_source, with `used` set to a fresh int64
// [seed, offset] tensor on `like`'s device that the kernel fills (the op's last output).
inline StreamSource recorded_stream_source(bool has_eps,
                                           const std::optional<at::Tensor>& seed_offset,
                                           const std::optional<at::Generator>& generator,
                                           const at::Tensor& like, at::Tensor& used,
                                           at::Tensor& keep) {
  used = at::empty({2}, like.options().dtype(at::kLong));
  StreamSource src = stream_source(has_eps, seed_offset, generator, like.device(), keep);
  src.seed_offset_out = used.mutable_data_ptr<int64_t>();
  return src;
}

__device__ __forceinline__ void resolve_stream(const StreamSource& src, uint64_t& seed,
                                               uint64_t& offset) {
  if (src.from_generator) {
    const auto so = at::cuda::philox::unpack(src.philox);
    seed = std::get<0>(so);
    offset = std::get<1>(so) | kGeneratorStreamTag;
  } else if (src.seed_offset_in != nullptr) {
    seed = static_cast<uint64_t>(src.seed_offset_in[0]);
    offset = static_cast<uint64_t>(src.seed_offset_in[1]);
  } else {
    seed = offset = 0;
  }
  if (src.seed_offset_out != nullptr && blockIdx.x == 0 && threadIdx.x == 0) {
    src.seed_offset_out[0] = static_cast<int64_t>(seed);
    src.seed_offset_out[1] = static_cast<int64_t>(offset);
  }
}

}  // namespace cuda
}  // namespace fused_reparam
