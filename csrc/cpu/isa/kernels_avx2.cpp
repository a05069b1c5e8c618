// The AVX2+FMA build of the CPU kernels (every op), compiled with -mavx2 -mfma -mf16c (setup.py,
// CMakeLists.txt) and chosen at run time only on CPUs that have them. Built without those
// flags (another architecture), it is an empty table.
#include "cpu/cpu_kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "cpu/cpu_kernels_table_impl.h"

const fused_reparam::cpu::CpuKernels* fused_reparam::cpu::cpu_kernels_avx2() {
  return make_cpu_kernels("avx2");
}
#else
const fused_reparam::cpu::CpuKernels* fused_reparam::cpu::cpu_kernels_avx2() {
  return nullptr;
}
#endif
