// `cohortctl push FILE`: streams JSON Lines of observations to Ingest over
// several concurrent PushStream calls, with a progress line on a terminal
// and a summary of what was accepted, unchanged and rejected.
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/observation_jsonl.h"
#include "tools/cohortctl/progress_bar.h"
#include "tools/cohortctl/push_summary.h"

namespace cohortd::cohortctl {
namespace {

constexpr int64_t kMaxStreams = 64;
// Batches read ahead per stream: enough to keep every stream busy while
// the reader parses, few enough to bound memory on a large file.
constexpr size_t kQueuedBatchesPerStream = 2;
constexpr absl::Duration kProgressInterval = absl::Milliseconds(250);

// Shared state of one push: a bounded queue of parsed batches from the
// reader (the calling thread) to the stream workers, and the tally.
class Pusher {
 public:
  Pusher(cohortd::v1::Ingest::Stub* stub, const std::string& token,
         int64_t streams)
      : stub_(stub), token_(token), streams_(streams) {}

  // Reads `reader` to the end (or until a stream fails) and pushes it.
  // Draws progress on `err` every kProgressInterval if `progress`.
  void Run(ObservationReader* reader, const std::string& dataset,
           int64_t batch_size, int64_t total_bytes, bool progress,
           std::ostream& err) {
    start_ = absl::Now();
    std::vector<std::thread> workers;
    for (int64_t i = 0; i < streams_; ++i) {
      workers.emplace_back([this] { StreamWorker(); });
    }
    std::thread ticker;
    if (progress) {
      ticker = std::thread([&] { DrawProgress(reader, total_bytes, err); });
    }
    std::vector<MalformedLine> malformed;
    ObservationBatch batch;
    while (true) {
      malformed.clear();
      const bool more = reader->ReadBatch(dataset, batch_size, &batch,
                                          &malformed);
      absl::MutexLock lock(&mu_);
      for (const MalformedLine& line : malformed) summary_.AddMalformed(line);
      bytes_read_ = reader->bytes_read();
      if (!more) break;
      mu_.Await(absl::Condition(this, &Pusher::QueueHasRoomOrFailed));
      if (!error_.ok()) {
        summary_.AddUnconfirmed(batch.lines.size());
        break;
      }
      queue_.push_back(std::move(batch));
    }
    {
      absl::MutexLock lock(&mu_);
      input_done_ = true;
      last_line_ = reader->lines_read();
    }
    for (std::thread& worker : workers) worker.join();
    if (ticker.joinable()) {
      {
        absl::MutexLock lock(&mu_);
        finished_ = true;
      }
      ticker.join();
      err << "\r\x1b[K" << std::flush;
    }
    elapsed_ = absl::Now() - start_;
  }

  const PushSummary& summary() const { return summary_; }
  const grpc::Status& error() const { return error_; }
  int64_t last_line() const { return last_line_; }
  absl::Duration elapsed() const { return elapsed_; }
  int64_t confirmed() const { return confirmed_; }

 private:
  bool QueueHasRoomOrFailed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.size() < kQueuedBatchesPerStream * streams_ || !error_.ok();
  }
  bool WorkAvailable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || input_done_ || !error_.ok();
  }
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return finished_;
  }

  // Records the first failure; batches still queued are never sent.
  void Fail(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (error_.ok()) error_ = status;
    for (const ObservationBatch& batch : queue_) {
      summary_.AddUnconfirmed(batch.lines.size());
    }
    queue_.clear();
  }

  // One PushStream, one batch in flight at a time: concurrency comes from
  // the number of streams, which keeps each stream's answers in order.
  void StreamWorker() {
    auto context = MakeContext(token_, absl::InfiniteDuration());
    auto stream = stub_->PushStream(context.get());
    while (true) {
      ObservationBatch batch;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Pusher::WorkAvailable));
        if (!error_.ok() || queue_.empty()) break;
        batch = std::move(queue_.front());
        queue_.pop_front();
      }
      cohortd::v1::PushResponse response;
      if (!stream->Write(batch.request) || !stream->Read(&response)) {
        const grpc::Status status = stream->Finish();
        absl::MutexLock lock(&mu_);
        summary_.AddUnconfirmed(batch.lines.size());
        Fail(status.ok() ? grpc::Status(grpc::StatusCode::UNKNOWN,
                                        "stream closed without an answer")
                         : status);
        return;
      }
      absl::MutexLock lock(&mu_);
      summary_.AddResponse(batch.lines, response);
      confirmed_ += batch.lines.size();
    }
    stream->WritesDone();
    const grpc::Status status = stream->Finish();
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      Fail(status);
    }
  }

  void DrawProgress(const ObservationReader* reader, int64_t total_bytes,
                    std::ostream& err) {
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(this, &Pusher::Finished),
                                 kProgressInterval)) {
      PushProgress progress;
      progress.confirmed = confirmed_;
      progress.rejected = summary_.rejected();
      progress.malformed = summary_.malformed();
      progress.bytes_read = bytes_read_;
      progress.total_bytes = total_bytes;
      progress.elapsed = absl::Now() - start_;
      err << "\r" << RenderProgress(progress) << "\x1b[K" << std::flush;
    }
  }

  cohortd::v1::Ingest::Stub* const stub_;
  const std::string& token_;
  const int64_t streams_;
  absl::Time start_;
  absl::Duration elapsed_;

  absl::Mutex mu_;
  std::deque<ObservationBatch> queue_ ABSL_GUARDED_BY(mu_);
  bool input_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status error_ ABSL_GUARDED_BY(mu_);
  PushSummary summary_ ABSL_GUARDED_BY(mu_);
  int64_t confirmed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t bytes_read_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_line_ = 0;
};

int RunPush(const CommandEnv& env) {
  std::ostream& err = *env.io.err;
  absl::StatusOr<int64_t> batch_size = env.flags.GetInt("batch", 1000);
  absl::StatusOr<int64_t> streams = env.flags.GetInt("streams", 4);
  for (const auto* value : {&batch_size, &streams}) {
    if (!value->ok()) {
      err << "cohortctl: " << value->status().message() << "\n";
      return kExitUsage;
    }
  }
  if (*batch_size < 1 || *streams < 1 || *streams > kMaxStreams) {
    err << "cohortctl: --batch must be at least 1 and --streams between 1 "
        << "and " << kMaxStreams << "\n";
    return kExitUsage;
  }

  const std::string& path = env.flags.positional()[0];
  std::ifstream file;
  std::istream* in = env.io.in;
  int64_t total_bytes = 0;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      err << "cohortctl: cannot open " << path << "\n";
      return kExitError;
    }
    in = &file;
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) {
      total_bytes = static_cast<int64_t>(std::filesystem::file_size(path, ec));
    }
  }

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(env.global);
  if (!channel.ok()) {
    err << "cohortctl: " << channel.status().message() << "\n";
    return kExitUsage;
  }
  auto stub = cohortd::v1::Ingest::NewStub(*channel);
  Pusher pusher(stub.get(), env.token, *streams);
  ObservationReader reader(in);
  pusher.Run(&reader, env.global.dataset, *batch_size, total_bytes,
             env.io.err_is_tty && !env.flags.Has("quiet"), err);

  const double seconds = absl::ToDoubleSeconds(pusher.elapsed());
  *env.io.out << absl::StrFormat(
      "%s: %d lines in %.1f s (%s observations/s)\n",
      path == "-" ? "stdin" : path, pusher.last_line(), seconds,
      WithThousands(seconds > 0 ? static_cast<int64_t>(pusher.confirmed() /
                                                       seconds)
                                : 0))
              << pusher.summary().Format();
  if (!pusher.error().ok()) {
    return ReportRpcError(
        absl::StrCat("push stopped (", pusher.last_line(),
                     " lines read)"),
        pusher.error(), err);
  }
  return pusher.summary().Clean() ? kExitOk : kExitProblem;
}

}  // namespace

Command PushCommand() {
  Command command;
  command.name = "push";
  command.args = "FILE";
  command.num_args = 1;
  command.summary = "push observations from a JSON Lines file ('-': stdin)";
  command.description =
      "Pushes observations to the Ingest service. FILE holds one\n"
      "cohortd.v1.Observation per line in the protobuf JSON mapping, e.g.\n"
      "  {\"sessionId\": \"s1\", \"accountId\": \"a1\",\n"
      "   \"sessionStart\": \"2026-01-05T09:30:00Z\", \"source\": \"telemetry\",\n"
      "   \"labels\": {\"client\": \"cli\"}, \"measures\": {\"prompts\": 4}}\n"
      "(snake_case field names work too). Malformed lines are reported with\n"
      "their line numbers and skipped; the rest is still pushed. Pushing is\n"
      "idempotent per (session_id, source), so a file can be pushed again.\n"
      "\n"
      "Prints a progress line on a terminal (stderr) and a summary: accepted,\n"
      "unchanged, rejected, with rejections grouped by field and reason and\n"
      "the first lines of each. Exits 3 if anything was rejected, malformed\n"
      "or left unconfirmed, 1 if a stream failed.\n";
  command.role = Role::kIngest;
  command.flags = {
      {"batch", "N", "observations per request (default 1000)"},
      {"streams", "N", "concurrent PushStream calls (default 4)"},
      {"quiet", "", "no progress line"},
  };
  command.run = RunPush;
  return command;
}

}  // namespace cohortd::cohortctl
