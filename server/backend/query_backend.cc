#include "server/backend/query_backend.h"

#include "server/engine/executor.h"

namespace cohortd {

absl::StatusOr<BoundedStatistics> EmbeddedBackend::Compute(
    const QueryPlan& plan, absl::string_view bounding_key) const {
  if (plan.dataset == nullptr || plan.dataset->name != view_->spec().name) {
    return absl::InternalError("embedded backend: view of another dataset");
  }
  return ComputeBoundedStatistics(plan, *view_, bounding_key);
}

}  // namespace cohortd
