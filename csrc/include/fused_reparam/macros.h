// Portability macros for code compiled by both the host compiler and nvcc.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FR_HOST_DEVICE inline
#endif

#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
#define FR_DEVICE_PASS 1
#else
#define FR_DEVICE_PASS 0
#endif

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FR_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__clang__)
#define FR_UNROLL _Pragma("GCC unroll 10")
#else
#define FR_UNROLL
#endif
