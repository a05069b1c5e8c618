// The AVX-512 build of the CPU kernels (every op), compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512dq (setup.py, CMakeLists.txt) and chosen at run time only on CPUs that have them.
// Built without those flags (another architecture), it is an empty table.
#include "cpu/cpu_kernels.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__)
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#include "cpu/cpu_kernels_table_impl.h"

const fused_reparam::cpu::CpuKernels* fused_reparam::cpu::cpu_kernels_avx512() {
  return make_cpu_kernels("avx512");
}
#else
const fused_reparam::cpu::CpuKernels* fused_reparam::cpu::cpu_kernels_avx512() {
  return nullptr;
}
#endif
