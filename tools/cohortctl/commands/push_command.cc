// `cohortctl push FILE`: streams JSON Lines of observations to Ingest over
// several concurrent PushStream calls, with a progress line on a terminal
// and a summary of what was accepted, unchanged and rejected.
#include <atomic>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/observation_jsonl.h"
#include "tools/cohortctl/progress_bar.h"
#include "tools/cohortctl/pusher.h"

namespace cohortd::cohortctl {
namespace {

constexpr int64_t kMaxStreams = 64;

absl::Status CheckPushFlags(const ParsedFlags& flags) {
  absl::StatusOr<int64_t> batch_size = flags.GetInt("batch", 1000);
  if (!batch_size.ok()) return batch_size.status();
  absl::StatusOr<int64_t> streams = flags.GetInt("streams", 4);
  if (!streams.ok()) return streams.status();
  if (*batch_size < 1 || *streams < 1 || *streams > kMaxStreams) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch must be at least 1 and --streams between 1 and ",
                     kMaxStreams));
  }
  return absl::OkStatus();
}

int RunPush(const CommandEnv& env) {
  std::ostream& err = *env.io.err;
  const int64_t batch_size = *env.flags.GetInt("batch", 1000);
  const int64_t streams = *env.flags.GetInt("streams", 4);

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
  ObservationReader reader(in);
  // Written by the reading thread, read by the progress thread.
  std::atomic<int64_t> bytes_read{0};
  const NextBatch next = [&](ObservationBatch* batch,
                             std::vector<MalformedLine>* malformed) {
    const bool more =
        reader.ReadBatch(env.global.dataset, batch_size, batch, malformed);
    bytes_read = reader.bytes_read();
    return more;
  };
  const ProgressFraction fraction = [&] {
    return total_bytes > 0 ? static_cast<double>(bytes_read) / total_bytes
                           : -1.0;
  };
  const bool show_progress = env.io.err_is_tty && !env.flags.Has("quiet");
  Pusher pusher(*channel, env.token, streams);
  const PushResult result =
      pusher.Run(next, fraction, show_progress ? &err : nullptr);

  const double seconds = absl::ToDoubleSeconds(result.elapsed);
  const int64_t rate =
      seconds > 0 ? static_cast<int64_t>(result.confirmed / seconds) : 0;
  *env.io.out << absl::StrFormat("%s: %d lines in %.1f s (%s observations/s)\n",
                                 path == "-" ? "stdin" : path,
                                 reader.lines_read(), seconds,
                                 WithThousands(rate))
              << result.summary.Format();
  if (!result.error.ok()) {
    return ReportRpcError(
        absl::StrCat("push stopped after line ", reader.lines_read()),
        result.error, err);
  }
  return result.summary.Clean() ? kExitOk : kExitProblem;
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
      "   \"sessionStart\": \"2026-01-05T09:30:00Z\", \"source\": "
      "\"telemetry\",\n"
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
  command.check = CheckPushFlags;
  command.run = RunPush;
  return command;
}

}  // namespace cohortd::cohortctl
