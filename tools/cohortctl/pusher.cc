#include "tools/cohortctl/pusher.h"

#include <deque>
#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "grpcpp/support/sync_stream.h"
#include "tools/cohortctl/connection.h"
#include "tools/cohortctl/progress_bar.h"

namespace cohortd::cohortctl {
namespace {

// Batches read ahead per stream: enough to keep every stream busy while
// the source produces the next, few enough to bound memory.
constexpr size_t kQueuedBatchesPerStream = 2;
constexpr absl::Duration kProgressInterval = absl::Milliseconds(250);
constexpr char kPushStreamMethod[] = "/cohortd.v1.Ingest/PushStream";

// The state one Run shares between the source (the calling thread), the
// stream workers and the progress thread: a bounded queue of batches and
// the tally.
class PushRun {
 public:
  PushRun(const std::shared_ptr<grpc::Channel>& channel,
          const std::string& token, int64_t streams)
      : channel_(channel.get()),
        push_stream_(kPushStreamMethod,
                     grpc::internal::RpcMethod::BIDI_STREAMING, channel),
        token_(token),
        streams_(streams) {}

  PushResult Run(const NextBatch& next, const ProgressFraction& fraction,
                 std::ostream* progress) {
    start_ = absl::Now();
    std::vector<std::thread> workers;
    for (int64_t i = 0; i < streams_; ++i) {
      workers.emplace_back([this] { StreamWorker(); });
    }
    std::thread ticker;
    if (progress != nullptr) {
      ticker = std::thread([&] { DrawProgress(fraction, *progress); });
    }
    ReadAll(next);
    for (std::thread& worker : workers) worker.join();
    if (ticker.joinable()) {
      {
        absl::MutexLock lock(&mu_);
        finished_ = true;
      }
      ticker.join();
      *progress << "\r\x1b[K" << std::flush;
    }
    absl::MutexLock lock(&mu_);
    result_.elapsed = absl::Now() - start_;
    return std::move(result_);
  }

 private:
  void ReadAll(const NextBatch& next) {
    std::vector<MalformedLine> malformed;
    ObservationBatch batch;
    while (true) {
      malformed.clear();
      const bool more = next(&batch, &malformed);
      absl::MutexLock lock(&mu_);
      for (const MalformedLine& line : malformed) {
        result_.summary.AddMalformed(line);
      }
      if (!more) break;
      mu_.Await(absl::Condition(this, &PushRun::QueueHasRoomOrFailed));
      if (!result_.error.ok()) {
        result_.summary.AddUnconfirmed(batch.lines.size());
        break;
      }
      queue_.push_back(std::move(batch));
    }
    absl::MutexLock lock(&mu_);
    input_done_ = true;
  }

  bool QueueHasRoomOrFailed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.size() < kQueuedBatchesPerStream * streams_ ||
           !result_.error.ok();
  }
  bool WorkAvailable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || input_done_ || !result_.error.ok();
  }
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_; }

  // Records the first failure; batches still queued are never sent.
  void Fail(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (result_.error.ok()) result_.error = status;
    for (const ObservationBatch& batch : queue_) {
      result_.summary.AddUnconfirmed(batch.lines.size());
    }
    queue_.clear();
  }

  // One PushStream with one batch in flight: concurrency comes from the
  // number of streams, and each answer is matched to its batch by order.
  void StreamWorker() {
    auto context = MakeContext(token_, absl::InfiniteDuration());
    // As the generated stub's PushStream, but writing the request's wire
    // bytes as they are.
    std::unique_ptr<
        grpc::ClientReaderWriter<grpc::ByteBuffer, cohortd::v1::PushResponse>>
        stream(grpc::internal::ClientReaderWriterFactory<
               grpc::ByteBuffer,
               cohortd::v1::PushResponse>::Create(channel_, push_stream_,
                                                  context.get()));
    while (true) {
      ObservationBatch batch;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &PushRun::WorkAvailable));
        if (!result_.error.ok() || queue_.empty()) break;
        batch = std::move(queue_.front());
        queue_.pop_front();
      }
      cohortd::v1::PushResponse response;
      // The slice takes the bytes over: no copy.
      auto* wire = new std::string(std::move(batch.wire));
      grpc::Slice slice(
          wire->data(), wire->size(),
          [](void* bytes) { delete static_cast<std::string*>(bytes); }, wire);
      grpc::ByteBuffer request(&slice, 1);
      if (!stream->Write(request) || !stream->Read(&response)) {
        const grpc::Status status = stream->Finish();
        absl::MutexLock lock(&mu_);
        result_.summary.AddUnconfirmed(batch.lines.size());
        Fail(status.ok() ? grpc::Status(grpc::StatusCode::UNKNOWN,
                                        "stream closed without an answer")
                         : status);
        return;
      }
      absl::MutexLock lock(&mu_);
      result_.summary.AddResponse(batch.lines, response);
      result_.confirmed += batch.lines.size();
    }
    stream->WritesDone();
    const grpc::Status status = stream->Finish();
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      Fail(status);
    }
  }

  void DrawProgress(const ProgressFraction& fraction, std::ostream& out) {
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(this, &PushRun::Finished),
                                 kProgressInterval)) {
      PushProgress progress;
      progress.confirmed = result_.confirmed;
      progress.rejected = result_.summary.rejected();
      progress.malformed = result_.summary.malformed();
      progress.fraction = fraction ? fraction() : -1;
      progress.elapsed = absl::Now() - start_;
      out << "\r" << RenderProgress(progress) << "\x1b[K" << std::flush;
    }
  }

  grpc::Channel* const channel_;
  const grpc::internal::RpcMethod push_stream_;
  const std::string& token_;
  const int64_t streams_;
  absl::Time start_;

  absl::Mutex mu_;
  std::deque<ObservationBatch> queue_ ABSL_GUARDED_BY(mu_);
  bool input_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  PushResult result_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

Pusher::Pusher(std::shared_ptr<grpc::Channel> channel, std::string token,
               int64_t streams)
    : channel_(std::move(channel)),
      token_(std::move(token)),
      streams_(streams) {}

PushResult Pusher::Run(const NextBatch& next, const ProgressFraction& fraction,
                       std::ostream* progress) {
  PushRun run(channel_, token_, streams_);
  return run.Run(next, fraction, progress);
}

}  // namespace cohortd::cohortctl
