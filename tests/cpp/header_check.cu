// nvcc compile check of the header-only math on the device (scripts/check_cuda.sh): every
// template the CUDA kernels use, instantiated for float and double in one __global__ kernel.
#include <cstdint>

#include "fused_reparam/diag_math.h"
#include "fused_reparam/noise.h"
#include "fused_reparam/normal.h"
#include "fused_reparam/philox.h"
#include "fused_reparam/scale.h"
#include "fused_reparam/squash.h"

namespace fr = fused_reparam;

// Every noise kind of the diagonal op (fused_reparam/noise.h).
template <class S>
__device__ S noise_all(uint64_t seed, uint64_t offset, uint64_t i) {
  S n[4];
  S total = S(0);
  for (int kind = 0; kind < fr::noise::kNumKinds; ++kind) {
    fr::noise::stream4<S>(seed, offset, i >> 2, kind, n);
    total += n[i & 3];
  }
  return total;
}

// The tanh squash of the diagonal stats ops (fused_reparam/squash.h), its constants made as
// the kernels make them: in double from low and high, then cast.
template <class S>
__device__ S squash_all(double low, double high, S u, S dz, S gq) {
  const double half = 0.5 * (high - low);
  const fr::squash::Squash<S> sq{true, S(low), S(half), S(::log(half))};
  S action, extra;
  fr::squash::action_and_log_q_extra<S, S>(u, sq, action, extra);
  return action + extra + fr::squash::grad_u<S, S>(dz, gq, u, sq);
}

template <class S>
__device__ S diag_all(uint64_t seed, uint64_t offset, uint64_t i, S mu, S s, S dz) {
  S n[4];
  fr::stream_normals4<S>(seed, offset, i >> 2, n);
  const fr::scale::Scale<S> sc{static_cast<int>(i % fr::scale::kNumKinds), S(i & 1)};
  const S base = fr::scale::sigma_base<S, S>(s, sc);
  const S sigma = base + sc.min;
  const S dsigma = fr::scale::dsigma<S, S>(s, base, sc) + fr::scale::dsigma<S, S>(s, sc);
  return fr::diag::sample<S>(mu, sigma, n[i & 3]) + fr::diag::grad_scale<S>(dz, dsigma, n[0]) +
         fr::diag::grad_eps<S>(dz, sigma) + fr::scale::log_var<S, S>(s, sigma, sc) +
         fr::scale::dlog_sigma<S, S>(s, sigma, dsigma, sc) +
         fr::stream_normal_at<S>(seed, offset, i) + noise_all<S>(seed, offset, i) +
         squash_all<S>(-1.0 - double(i & 1), 2.0, mu + sigma * n[1], dz, s);
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
