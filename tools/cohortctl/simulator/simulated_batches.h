// The requests of `cohortctl simulate --push`: the population's sessions
// in index order, whole sessions per request, written straight to a
// PushRequest's wire bytes (AppendObservationsWire), so that generating a
// request costs about what reading one from JSON Lines does.
#ifndef COHORTD_TOOLS_COHORTCTL_SIMULATOR_SIMULATED_BATCHES_H_
#define COHORTD_TOOLS_COHORTCTL_SIMULATOR_SIMULATED_BATCHES_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "tools/cohortctl/observation_jsonl.h"
#include "tools/cohortctl/observation_wire.h"
#include "tools/cohortctl/simulator/population.h"

namespace cohortd::cohortctl {

class SimulatedBatches {
 public:
  // Called with every session as it is written, in index order.
  using SessionCallback = std::function<void(const SimSession&)>;

  // Batches of `population` (borrowed: it must outlive this) for
  // `dataset`, each of at most `batch_size` observations
  // (>= kSourcesPerSession, so that every batch holds a whole session).
  SimulatedBatches(const Population* population, std::string dataset,
                   int64_t batch_size);

  // Sets `batch` to the next request: as many whole sessions as fit in
  // the batch size. batch->lines[i] is the 1-based number of observation i
  // among all observations, which is its line in the file `simulate
  // --jsonl` writes for the same population. Calls `on_session` (if set)
  // for each session written. Returns false, with an empty batch, once
  // every session has been written. Not thread-safe: one caller at a time.
  bool Next(ObservationBatch* batch, const SessionCallback& on_session);

  // Sessions written so far. Safe to call from any thread, also while
  // Next runs (e.g. for a progress line).
  int64_t sessions_written() const {
    return next_session_.load(std::memory_order_relaxed);
  }
  // Observations written so far (the last line number). Not safe
  // concurrently with Next.
  int64_t observations_written() const { return next_line_ - 1; }

 private:
  const Population* const population_;
  const std::string dataset_;
  const int64_t sessions_per_batch_;
  std::atomic<int64_t> next_session_{0};
  int64_t next_line_ = 1;
  size_t wire_size_hint_ = 0;  // bytes to reserve for a request
  ObservationWireWriter writer_;
};

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_SIMULATOR_SIMULATED_BATCHES_H_
