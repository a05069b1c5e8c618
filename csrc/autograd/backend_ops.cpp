#include "autograd/backend_ops.h"

#include <string>

namespace fused_reparam {
namespace autograd {
namespace {

template <class Fn>
c10::TypedOperatorHandle<Fn> handle(const std::string& prefix, const char* op) {
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow(("fused_reparam::" + prefix + op).c_str(), "")
      .typed<Fn>();
}

BackendOps make_ops(const std::string& p) {
  return BackendOps{
      handle<DiagSampleFn>(p, "diag_rsample"),
      handle<DiagSampleBackwardFn>(p, "diag_rsample_backward"),
      handle<DiagStatsFn>(p, "diag_rsample_stats"),
      handle<DiagStatsBackwardFn>(p, "diag_rsample_stats_backward"),
      handle<SampleFn>(p, "chol_rsample"),
      handle<SampleBackwardFn>(p, "chol_rsample_backward"),
      handle<StatsFn>(p, "chol_rsample_stats"),
      handle<StatsBackwardFn>(p, "chol_rsample_stats_backward"),
  };
}

}  // namespace

const BackendOps& backend_ops(Backend backend) {
  static const BackendOps compiled = make_ops("");
  static const BackendOps triton = make_ops("triton_");
  return backend == Backend::Triton ? triton : compiled;
}

}  // namespace autograd
}  // namespace fused_reparam
