// Minimal header-only test harness for the C++ tests (no gtest: CI has no network for it).
// FR_TEST(name) { ... } registers a test; FR_CHECK* record failures and carry on; a test
// throws SkipTest to skip. run_all() runs every test and returns the number that failed.
#pragma once

#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace fr_check {

struct SkipTest {
  std::string why;
};

struct Registry {
  std::vector<std::pair<std::string, std::function<void()>>> tests;
  int failures = 0;  // failed checks in the running test
  static Registry& get() {
    static Registry r;
    return r;
  }
};

struct Register {
  Register(const char* name, std::function<void()> fn) {
    Registry::get().tests.emplace_back(name, std::move(fn));
  }
};

inline void fail(const char* file, int line, const std::string& what) {
  std::printf("  FAILED %s:%d: %s\n", file, line, what.c_str());
  ++Registry::get().failures;
}

template <class A, class B>
std::string describe(const char* expr, const A& a, const B& b) {
  std::ostringstream os;
  os.precision(17);
  os << expr << " (" << a << " vs " << b << ")";
  return os.str();
}

// Runs every registered test; `label` prefixes the output (e.g. the CPU kernel build).
inline int run_all(const std::string& label = "") {
  int failed = 0;
  for (const auto& [name, fn] : Registry::get().tests) {
    Registry::get().failures = 0;
    const std::string full = label.empty() ? name : label + "/" + name;
    try {
      fn();
    } catch (const SkipTest& s) {
      std::printf("[ SKIP ] %s: %s\n", full.c_str(), s.why.c_str());
      continue;
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    }
    const bool ok = Registry::get().failures == 0;
    std::printf("[ %s ] %s\n", ok ? " OK " : "FAIL", full.c_str());
    failed += ok ? 0 : 1;
  }
  return failed;
}

}  // namespace fr_check

#define FR_CONCAT_(a, b) a##b
#define FR_CONCAT(a, b) FR_CONCAT_(a, b)

#define FR_TEST(name)                                                             \
  static void FR_CONCAT(fr_test_, name)();                                        \
  static const fr_check::Register FR_CONCAT(fr_reg_, name)(#name,                 \
                                                           &FR_CONCAT(fr_test_, name)); \
  static void FR_CONCAT(fr_test_, name)()

#define FR_CHECK(cond) \
  ((cond) ? (void)0 : fr_check::fail(__FILE__, __LINE__, "FR_CHECK(" #cond ")"))

#define FR_CHECK_EQ(a, b)                                                                    \
  do {                                                                                       \
    const auto fr_a_ = (a);                                                                  \
    const auto fr_b_ = (b);                                                                  \
    if (!(fr_a_ == fr_b_))                                                                   \
      fr_check::fail(__FILE__, __LINE__, fr_check::describe(#a " == " #b, fr_a_, fr_b_));    \
  } while (0)

// |a - b| <= tol * max(1, |b|): absolute near zero, relative for large values.
#define FR_CHECK_NEAR(a, b, tol)                                                             \
  do {                                                                                       \
    const double fr_a_ = static_cast<double>(a);                                             \
    const double fr_b_ = static_cast<double>(b);                                             \
    if (!(std::fabs(fr_a_ - fr_b_) <= (tol) * std::fmax(1.0, std::fabs(fr_b_))))            \
      fr_check::fail(__FILE__, __LINE__,                                                     \
                     fr_check::describe(#a " ~= " #b " within " #tol, fr_a_, fr_b_));        \
  } while (0)

// `stmt` must throw Exc whose what() contains `substr`.
#define FR_CHECK_THROWS(stmt, Exc, substr)                                                   \
  do {                                                                                       \
    bool fr_thrown_ = false;                                                                 \
    try {                                                                                    \
      stmt;                                                                                  \
    } catch (const Exc& fr_e_) {                                                             \
      fr_thrown_ = true;                                                                     \
      if (std::string(fr_e_.what()).find(substr) == std::string::npos)                       \
        fr_check::fail(__FILE__, __LINE__,                                                   \
                       std::string(#Exc " message lacks '") + (substr) + "': " + fr_e_.what()); \
    }                                                                                        \
    if (!fr_thrown_) fr_check::fail(__FILE__, __LINE__, #stmt " did not throw " #Exc);       \
  } while (0)

#define FR_SKIP(why) throw fr_check::SkipTest{why}
