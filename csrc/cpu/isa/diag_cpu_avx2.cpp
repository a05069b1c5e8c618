// The AVX2+FMA build of the CPU range kernels, compiled with -mavx2 -mfma -mf16c (setup.py,
// CMakeLists.txt) and chosen at run time only on CPUs that have them. Built without those
// flags (another architecture), it is an empty table.
#include "cpu/diag_cpu_kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "cpu/diag_cpu_kernels_impl.h"

const fused_reparam::cpu::DiagKernels* fused_reparam::cpu::diag_kernels_avx2() {
  return make_diag_kernels("avx2");
}
#else
const fused_reparam::cpu::DiagKernels* fused_reparam::cpu::diag_kernels_avx2() {
  return nullptr;
}
#endif
