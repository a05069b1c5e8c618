// Portability macros for code compiled by both the host compiler and nvcc.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FR_HOST_DEVICE inline
#endif

// Always inlined, also on the host: for helpers outside the per-ISA namespaces that the CPU
// kernels of every instruction set call, so no build runs another build's out-of-line copy
// (the linker keeps one copy of an inline function, whichever ISA compiled it).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define FR_ALWAYS_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define FR_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FR_ALWAYS_INLINE inline
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
