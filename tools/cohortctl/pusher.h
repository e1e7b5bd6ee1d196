// Pushes batches of observations over several concurrent Ingest.PushStream
// calls and tallies the answers. Used by `cohortctl push` (batches read
// from JSON Lines) and meant for any command that generates observations
// (e.g. a synthetic workload): the source of batches is a function.
#ifndef COHORTD_TOOLS_COHORTCTL_PUSHER_H_
#define COHORTD_TOOLS_COHORTCTL_PUSHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tools/cohortctl/observation_jsonl.h"
#include "tools/cohortctl/push_summary.h"

namespace cohortd::cohortctl {

// Fills `batch` with the next observations (and their input lines), and
// appends any inputs it could not turn into observations to `malformed`.
// Returns false when there is nothing more; called on one thread only.
using NextBatch = std::function<bool(ObservationBatch* batch,
                                     std::vector<MalformedLine>* malformed)>;

// How far the source has got, in [0, 1], or negative when unknown. Called
// from the progress thread while NextBatch may be running, so it must be
// safe to call concurrently with it (e.g. read an atomic).
using ProgressFraction = std::function<double()>;

struct PushResult {
  PushSummary summary;
  // The first stream failure; OK if every batch was answered. After a
  // failure no further batch is read or sent.
  grpc::Status error;
  int64_t confirmed = 0;  // observations the server answered for
  absl::Duration elapsed;
};

class Pusher {
 public:
  // Pushes over `channel` (Ingest.PushStream). Each batch's request is
  // sent as its wire bytes (ObservationBatch::wire), so no protobuf
  // message is built or serialized on the way. `streams` >= 1.
  Pusher(std::shared_ptr<grpc::Channel> channel, std::string token,
         int64_t streams);

  // Pushes every batch `next` yields, each stream keeping one batch in
  // flight; at most two batches per stream are read ahead, which bounds
  // memory. If `progress` is not null, redraws a progress line on it
  // (with "\r") four times a second and erases it at the end. Blocks until
  // done; not reentrant.
  PushResult Run(const NextBatch& next, const ProgressFraction& fraction,
                 std::ostream* progress);

 private:
  const std::shared_ptr<grpc::Channel> channel_;
  const std::string token_;
  const int64_t streams_;
};

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_PUSHER_H_
