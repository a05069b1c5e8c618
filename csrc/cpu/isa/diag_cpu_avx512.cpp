// The AVX-512 build of the CPU range kernels, compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512dq (setup.py, CMakeLists.txt) and chosen at run time only on CPUs that have them.
// Built without those flags (another architecture), it is an empty table.
#include "cpu/diag_cpu_kernels.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__)
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#include "cpu/diag_cpu_kernels_impl.h"

const fused_reparam::cpu::DiagKernels* fused_reparam::cpu::diag_kernels_avx512() {
  return make_diag_kernels("avx512");
}
#else
const fused_reparam::cpu::DiagKernels* fused_reparam::cpu::diag_kernels_avx512() {
  return nullptr;
}
#endif
