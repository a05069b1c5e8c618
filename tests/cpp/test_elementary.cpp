// The float fits of elementary.h and the scale and squash formulas built on them, on the host
// over dense grids, against double math: log1p on [0, 1], exp / expm1 on x <= 0, softplus,
// and tanh, 1 - tanh^2 and log(1 - tanh^2) of the squash; and the inline AVX-512 exp, log,
// sincos and softplus of the CPU kernels (where the CPU has AVX-512F). Needs no torch.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "check.h"
#include "fused_reparam/elementary.h"
#include "fused_reparam/scale.h"
#include "fused_reparam/squash.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FR_TEST_AVX512 1
#include "cpu/softplus_avx512.h"
#include "cpu/vec_math_avx512.h"
#else
#define FR_TEST_AVX512 0
#endif

namespace fr = fused_reparam;

namespace {

// |got - want| in units of the float spacing at want.
double ulps(float got, double want) {
  const float w = static_cast<float>(want);
  const double spacing =
      std::nextafter(std::fabs(w), std::numeric_limits<float>::infinity()) - std::fabs(w);
  return std::fabs(double(got) - want) / spacing;
}

// The largest ulps(f(x), g(x)) over n + 1 points spanning [lo, hi].
template <class F, class G>
double worst(double lo, double hi, int n, F f, G g) {
  double w = 0;
  for (int i = 0; i <= n; ++i) {
    const float x = static_cast<float>(lo + (hi - lo) * i / n);
    w = std::fmax(w, ulps(f(x), g(double(x))));
  }
  return w;
}

void check_at_most(double got, double bound, const char* what) {
  std::printf("  %s: %.3f ulp (bound %.2f)\n", what, got, bound);
  FR_CHECK(got <= bound);
}

}  // namespace

FR_TEST(log1p_unit_fit) {
  const double w = worst(0.0, 1.0, 1 << 20, fr::elementary::log1p_unit<float, float>,
                         [](double t) { return std::log1p(t); });
  check_at_most(w, 1.6, "log1p_unit");
}

FR_TEST(exp_expm1_nonpos_fit) {
  auto m_of = [](float x) {
    float e, m;
    fr::elementary::exp_expm1_nonpos<float, float>(x, e, m);
    return m;
  };
  auto e_of = [](float x) {
    float e, m;
    fr::elementary::exp_expm1_nonpos<float, float>(x, e, m);
    return e;
  };
  auto expm1 = [](double x) { return std::expm1(x); };
  check_at_most(worst(-0.7, 0.0, 1 << 20, m_of, expm1), 1.1, "expm1, x in [-0.7, 0]");
  check_at_most(worst(-40.0, -0.7, 1 << 20, m_of, expm1), 1.5, "expm1, x in [-40, -0.7]");
  check_at_most(worst(-80.0, 0.0, 1 << 20, e_of, [](double x) { return std::exp(x); }), 1.0,
                "exp");
}

FR_TEST(softplus_scale) {
  const fr::scale::Scale<float> sc{fr::scale::kSoftplus, 0.0f};
  auto sigma = [&](float s) { return fr::scale::sigma<float, float>(s, sc); };
  auto exact = [](double s) {
    return s > 0 ? s + std::log1p(std::exp(-s)) : std::log1p(std::exp(s));
  };
  check_at_most(worst(-80.0, 40.0, 1 << 20, sigma, exact), 2.0, "softplus");
}

FR_TEST(squash_tanh_terms) {
  auto terms = [](float u) { return fr::squash::tanh_terms<float, float, true>(u); };
  check_at_most(worst(-12.0, 12.0, 1 << 20, [&](float u) { return terms(u).tanh; },
                      [](double u) { return std::tanh(u); }),
                3.5, "tanh");
  check_at_most(worst(-40.0, 40.0, 1 << 20, [&](float u) { return terms(u).dtanh; },
                      [](double u) { return 1.0 / (std::cosh(u) * std::cosh(u)); }),
                6.0, "1 - tanh^2");
  check_at_most(worst(-40.0, 0.0, 1 << 20, [&](float u) { return terms(u).tanh_plus_one; },
                      [](double u) { return 2.0 / (1.0 + std::exp(-2.0 * u)); }),
                4.0, "1 + tanh, u < 0");
  // log(1 - tanh^2) is a large negative number for large |u|: within a relative 4e-7.
  double w = 0;
  for (int i = 0; i <= (1 << 20); ++i) {
    const float u = static_cast<float>(-40.0 + 80.0 * i / (1 << 20));
    const double want = 2.0 * (std::log(2.0) - std::fabs(double(u)) -
                               std::log1p(std::exp(-2.0 * std::fabs(double(u)))));
    w = std::fmax(w, std::fabs(terms(u).log_dtanh - want) / std::fmax(1.0, std::fabs(want)));
  }
  std::printf("  log(1 - tanh^2): %.3g relative (bound 4e-7)\n", w);
  FR_CHECK(w <= 4e-7);
}

#if FR_TEST_AVX512

namespace {

namespace vm = fr::vec_math_avx512;
#define FR_AVX512_FN __attribute__((target("avx512f,fma")))

// 16 lanes in, 16 out.
using Fn16 = void (*)(const float*, float*);
FR_AVX512_FN void exp16(const float* x, float* y) {
  _mm512_storeu_ps(y, vm::exp(_mm512_loadu_ps(x)));
}
FR_AVX512_FN void log16(const float* x, float* y) {
  _mm512_storeu_ps(y, vm::log(_mm512_loadu_ps(x)));
}
FR_AVX512_FN void sin16(const float* x, float* y) {
  __m512 s, c;
  vm::sincos(_mm512_loadu_ps(x), s, c);
  _mm512_storeu_ps(y, s);
}
FR_AVX512_FN void cos16(const float* x, float* y) {
  __m512 s, c;
  vm::sincos(_mm512_loadu_ps(x), s, c);
  _mm512_storeu_ps(y, c);
}

FR_AVX512_FN void softplus16(const float* x, float* y) {
  _mm512_storeu_ps(y, vm::softplus(_mm512_loadu_ps(x)));
}

void require_avx512() {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("fma")) {
    FR_SKIP("this CPU lacks AVX-512F");
  }
}

// The largest ulps(f(x), g(x)) over the points point(i), i = 0 .. n, 16 at a time.
template <class P, class G>
double worst16(int n, P point, Fn16 f, G g) {
  double w = 0;
  float x[16], y[16];
  for (int i = 0; i <= n; i += 16) {
    for (int j = 0; j < 16; ++j) x[j] = point(std::min(i + j, n));
    f(x, y);
    for (int j = 0; j < 16; ++j) w = std::fmax(w, ulps(y[j], g(double(x[j]))));
  }
  return w;
}

// n + 1 points spanning [lo, hi].
template <class G>
double worst16(double lo, double hi, int n, Fn16 f, G g) {
  return worst16(
      n, [&](int i) { return static_cast<float>(lo + (hi - lo) * i / n); }, f, g);
}

// f(x) for one x (the other lanes repeat it).
float at(Fn16 f, float x) {
  float xs[16], y[16];
  std::fill(xs, xs + 16, x);
  f(xs, y);
  return y[0];
}

}  // namespace

FR_TEST(avx512_exp) {
  require_avx512();
  auto exp = [](double x) { return std::exp(x); };
  check_at_most(worst16(-1.0, 1.0, 1 << 22, exp16, exp), 1.0, "exp, x in [-1, 1]");
  // Down through the subnormal results (-87.3 .. -103.3) to 0, up to FLT_MAX.
  check_at_most(worst16(-104.0, 88.72, 1 << 22, exp16, exp), 1.0, "exp, x in [-104, 88.72]");
  const float inf = std::numeric_limits<float>::infinity();
  FR_CHECK_EQ(at(exp16, 0.0f), 1.0f);
  FR_CHECK_EQ(at(exp16, inf), inf);
  FR_CHECK_EQ(at(exp16, 88.73f), inf);
  FR_CHECK_EQ(at(exp16, -inf), 0.0f);
  FR_CHECK_EQ(at(exp16, -104.0f), 0.0f);
  FR_CHECK_EQ(at(exp16, -103.97f), 0x1p-149f);
  FR_CHECK(std::isnan(at(exp16, std::numeric_limits<float>::quiet_NaN())));
}

FR_TEST(avx512_log) {
  require_avx512();
  auto log = [](double x) { return std::log(x); };
  // Around 1, where e ln2 and log(m) cancel for e = +-1; the Box-Muller's u in [2^-33, 1].
  check_at_most(worst16(0.25, 4.0, 1 << 22, log16, log), 1.0, "log, x in [0.25, 4]");
  check_at_most(worst16(0x1p-33, 1.0, 1 << 22, log16, log), 1.0, "log, x in [2^-33, 1]");
  // 2^12 points in every binade, subnormals included.
  const int per = 1 << 12, binades = 128 + 149;
  auto point = [&](int i) {
    return std::ldexp(1.0f + float(i % per) / per, std::min(i / per - 149, 127));
  };
  check_at_most(worst16(per * binades - 1, point, log16, log), 1.0, "log, x in [2^-149, 2^128)");
  const float inf = std::numeric_limits<float>::infinity();
  FR_CHECK_EQ(at(log16, 1.0f), 0.0f);
  FR_CHECK_EQ(at(log16, 0.0f), -inf);
  FR_CHECK_EQ(at(log16, -0.0f), -inf);
  FR_CHECK_EQ(at(log16, inf), inf);
  FR_CHECK(std::isnan(at(log16, -1.0f)));
  FR_CHECK(std::isnan(at(log16, -0x1p-149f)));
  FR_CHECK(std::isnan(at(log16, -inf)));
  FR_CHECK(std::isnan(at(log16, std::numeric_limits<float>::quiet_NaN())));
}

FR_TEST(avx512_sincos) {
  require_avx512();
  auto sin = [](double x) { return std::sin(x); };
  auto cos = [](double x) { return std::cos(x); };
  // The Box-Muller angles 2 pi u, then the whole range the kernels take inline.
  const double two_pi = 6.28318530717958647692;
  check_at_most(worst16(0.0, two_pi, 1 << 22, sin16, sin), 2.0, "sin, x in [0, 2 pi]");
  check_at_most(worst16(0.0, two_pi, 1 << 22, cos16, cos), 2.0, "cos, x in [0, 2 pi]");
  const double m = vm::kSinCosMax;
  check_at_most(worst16(-m, m, 1 << 22, sin16, sin), 2.0, "sin, |x| <= kSinCosMax");
  check_at_most(worst16(-m, m, 1 << 22, cos16, cos), 2.0, "cos, |x| <= kSinCosMax");
  FR_CHECK_EQ(at(sin16, 0.0f), 0.0f);
  FR_CHECK_EQ(at(cos16, 0.0f), 1.0f);
  FR_CHECK(std::signbit(at(sin16, -0.0f)));
}

FR_TEST(avx512_softplus) {
  require_avx512();
  auto softplus = [](double x) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  };
  // The table's range, then its tail (e - e^2/2 + e^3/3) out to where the result is 0 or x.
  check_at_most(worst16(-8.0, 8.0, 1 << 22, softplus16, softplus), 1.4, "softplus, |x| <= 8");
  check_at_most(worst16(-104.0, 40.0, 1 << 22, softplus16, softplus), 1.4,
                "softplus, x in [-104, 40]");
  // Near 0, 2^12 points in each binade down to 2^-30, on both sides.
  const int per = 1 << 12, binades = 30;
  auto near0 = [&](int i) {
    const float m = std::ldexp(1.0f + float(i % per) / per, i / per % binades - binades);
    return i / (per * binades) == 0 ? m : -m;
  };
  check_at_most(worst16(2 * per * binades - 1, near0, softplus16, softplus), 1.4,
                "softplus, 2^-30 <= |x| < 1");
  const float inf = std::numeric_limits<float>::infinity();
  FR_CHECK_EQ(at(softplus16, inf), inf);
  FR_CHECK_EQ(at(softplus16, -inf), 0.0f);
  FR_CHECK_EQ(at(softplus16, 1e30f), 1e30f);
  FR_CHECK_EQ(at(softplus16, -1e30f), 0.0f);
  FR_CHECK_EQ(at(softplus16, 0.0f), static_cast<float>(std::log(2.0)));
  FR_CHECK(std::isnan(at(softplus16, std::numeric_limits<float>::quiet_NaN())));
  FR_CHECK_EQ(at(softplus16, -0.0f), static_cast<float>(std::log(2.0)));
  FR_CHECK_EQ(at(softplus16, -0x1p-149f), static_cast<float>(std::log(2.0)));
  // Tail, table, zeros, subnormals, NaN and infinities in one vector: each lane is what it
  // is alone (the tail's blend and the index of a NaN or huge lane touch no other lane).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float mixed[16] = {-200.0f, -9.0f,    -8.0f, -7.99f, -0.0f, 0.0f, 0x1p-149f, -0x1p-149f,
                           nan,     inf,      -inf,  3.0f,   8.5f,  -0.3f, 50.0f,   -1e30f};
  float out[16];
  softplus16(mixed, out);
  for (int j = 0; j < 16; ++j) {
    const float alone = at(softplus16, mixed[j]);
    FR_CHECK(std::isnan(alone) ? std::isnan(out[j]) : out[j] == alone);
  }
}

#endif  // FR_TEST_AVX512

int main() { return fr_check::run_all() == 0 ? 0 : 1; }
