// Fewer page faults for large fresh outputs: ask Linux for transparent huge pages on the
// 2 MiB-aligned interior of the buffer before it is first touched (as PyTorch's own
// THP_MEM_ALLOC_ENABLE does for every large allocation). Only a hint: the memory and its
// contents are unchanged, and it is a no-op where THP is disabled or the call fails.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fused_reparam {
namespace cpu {

inline void advise_huge_pages(const at::Tensor& fresh) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t bytes = fresh.nbytes();
  if (bytes < 4 * kHuge) return;  // small tensors: not worth a system call
  const uintptr_t p = reinterpret_cast<uintptr_t>(fresh.const_data_ptr());
  const uintptr_t begin = (p + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (p + bytes) & ~(kHuge - 1);
  if (end > begin) {
    (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#else
  (void)fresh;
#endif
}

}  // namespace cpu
}  // namespace fused_reparam
