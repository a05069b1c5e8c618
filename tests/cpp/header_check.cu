// nvcc compile check of the header-only math on the device (scripts/check_cuda.sh): every
// template the CUDA kernels use, instantiated for float and double in one __global__ kernel.
#include <cstdint>

#include "fused_reparam/diag_math.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/philox.h"

namespace fr = fused_reparam;

template <class S>
__device__ S diag_all(uint64_t seed, uint64_t offset, uint64_t i, S mu, S lv, S dz) {
  S n[4];
  fr::stream_normals4<S>(seed, offset, i >> 2, n);
  const S sigma = fr::diag::sigma<S, S>(lv);
  return fr::diag::sample<S>(mu, sigma, n[i & 3]) + fr::diag::grad_logvar<S, S>(dz, sigma, n[0]) +
         fr::diag::grad_eps<S>(dz, sigma) + fr::stream_normal_at<S>(seed, offset, i);
}

__global__ void header_check_kernel(uint64_t seed, uint64_t offset, uint32_t* words, float* f,
                                    double* d) {
  const uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x;
  const fr::philox::Words4<uint32_t> w = fr::philox::philox4x32_10<uint32_t>(
      uint32_t(i), uint32_t(i >> 32), fr::philox::lo32(offset), fr::philox::hi32(offset),
      fr::philox::lo32(seed), fr::philox::hi32(seed));
  words[i] = w.x0 ^ w.x1 ^ w.x2 ^ w.x3;
  f[i] = diag_all<float>(seed, offset, i, 0.5f, -1.0f, 2.0f);
  d[i] = diag_all<double>(seed, offset, i, 0.5, -1.0, 2.0);
}
