// The portable build of the CPU kernels (every op). Listed first among the sources so that the
// linker keeps this file's copies of shared inline functions (the ISA files compile theirs
// with wider instructions), as PyTorch does for its own kernels.
#define CPU_CAPABILITY DEFAULT
#define CPU_CAPABILITY_DEFAULT

#include "cpu/cpu_kernels_table_impl.h"

namespace fused_reparam {
namespace cpu {
const CpuKernels* cpu_kernels_default() { return make_cpu_kernels("default"); }
}  // namespace cpu
}  // namespace fused_reparam
