// The float fits of elementary.h and the scale and squash formulas built on them, on the host
// over dense grids, against double math: log1p on [0, 1], exp / expm1 on x <= 0, softplus,
// and tanh, 1 - tanh^2 and log(1 - tanh^2) of the squash. Needs no torch.
#include <cmath>
#include <cstdio>
#include <limits>

#include "check.h"
#include "fused_reparam/elementary.h"
#include "fused_reparam/scale.h"
#include "fused_reparam/squash.h"

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

int main() { return fr_check::run_all() == 0 ? 0 : 1; }
