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
      {handle<SampleFn>(p, "diag_rsample"), handle<SampleFn>(p, "chol_rsample")},
      {handle<SampleBackwardFn>(p, "diag_rsample_backward"),
       handle<SampleBackwardFn>(p, "chol_rsample_backward")},
      {handle<StatsFn>(p, "diag_rsample_stats"), handle<StatsFn>(p, "chol_rsample_stats")},
      {handle<StatsBackwardFn>(p, "diag_rsample_stats_backward"),
       handle<StatsBackwardFn>(p, "chol_rsample_stats_backward")},
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
