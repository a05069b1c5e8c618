// What the C++ tests of the CPU ops share: tensors from literals, checks against
// hand-computed values, and running every test once per CPU kernel build (default, avx2,
// avx512; `<test> <build>` runs one; 77 = this CPU lacks it, ctest's skip code).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <vector>

#include "check.h"

namespace cpu_op_test {

inline std::string cpu_kernel_isa(const std::string& force) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fused_reparam::_cpu_kernel_isa", "")
                       .typed<std::string(c10::string_view)>();
  return op.call(force);
}

inline at::Tensor tensor(std::initializer_list<double> v, at::ScalarType t) {
  return at::tensor(std::vector<double>(v), at::TensorOptions().dtype(at::kDouble)).to(t);
}

inline at::Tensor seed_offset(uint64_t seed, uint64_t offset) {
  // int64 bit patterns of the two uint64
  return at::tensor(std::vector<int64_t>{static_cast<int64_t>(seed), static_cast<int64_t>(offset)},
                    at::TensorOptions().dtype(at::kLong));
}

// Checks t (any float dtype) against hand-computed values.
inline void check_values(const at::Tensor& t, std::initializer_list<double> want, double tol) {
  const at::Tensor d = t.to(at::kDouble).contiguous();
  FR_CHECK_EQ(d.numel(), static_cast<int64_t>(want.size()));
  if (d.numel() != static_cast<int64_t>(want.size())) return;
  int64_t i = 0;
  for (double w : want) {
    const double got = d.data_ptr<double>()[i];
    if (!(std::fabs(got - w) <= tol * std::fmax(1.0, std::fabs(w)))) {
      fr_check::fail(__FILE__, __LINE__, "element " + std::to_string(i) + ": " +
                                             fr_check::describe("got vs want", got, w));
    }
    ++i;
  }
}

// Runs the tests under one kernel build; returns 77 (ctest's skip code) if this CPU lacks it.
inline int run_build(const std::string& isa) {
  try {
    cpu_kernel_isa(isa);
  } catch (const c10::Error& e) {
    std::printf("[ SKIP ] build %s: %s\n", isa.c_str(), e.what_without_backtrace());
    return 77;
  }
  const std::string active = cpu_kernel_isa("");
  if (active != isa) {
    std::printf("[ FAIL ] forced %s but %s is active\n", isa.c_str(), active.c_str());
    return 1;
  }
  const int failed = fr_check::run_all(isa);
  cpu_kernel_isa("best");
  return failed == 0 ? 0 : 1;
}

// The body of a test binary's main().
inline int run_main(int argc, char** argv) {
  if (argc > 1) return run_build(argv[1]);
  int rc = 0;
  for (const char* isa : {"default", "avx2", "avx512"}) {
    const int r = run_build(isa);
    if (r != 0 && r != 77) rc = 1;
  }
  return rc;
}

}  // namespace cpu_op_test
