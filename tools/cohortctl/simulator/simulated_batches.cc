#include "tools/cohortctl/simulator/simulated_batches.h"

#include <algorithm>
#include <utility>

namespace cohortd::cohortctl {

SimulatedBatches::SimulatedBatches(const Population* population,
                                   std::string dataset, int64_t batch_size)
    : population_(population),
      dataset_(std::move(dataset)),
      sessions_per_batch_(
          std::max<int64_t>(1, batch_size / kSourcesPerSession)) {}

bool SimulatedBatches::Next(ObservationBatch* batch,
                            const SessionCallback& on_session) {
  // The previous request's bytes went to the transport with their buffer:
  // growing a new one by doubling would copy it about twice over.
  batch->wire.reserve(wire_size_hint_);
  StartPushRequest(dataset_, &batch->wire);
  batch->lines.clear();
  const int64_t begin = next_session_.load(std::memory_order_relaxed);
  const int64_t end =
      std::min(population_->sessions(), begin + sessions_per_batch_);
  batch->lines.reserve((end - begin) * kSourcesPerSession);
  for (int64_t i = begin; i < end; ++i) {
    const SimSession session = population_->SessionAt(i);
    AppendObservationsWire(*population_, session, &writer_, &batch->wire);
    for (int k = 0; k < kSourcesPerSession; ++k) {
      batch->lines.push_back(next_line_++);
    }
    if (on_session) on_session(session);
  }
  wire_size_hint_ = std::max(wire_size_hint_, batch->wire.size() * 9 / 8);
  next_session_.store(end, std::memory_order_relaxed);
  return !batch->lines.empty();
}

}  // namespace cohortd::cohortctl
