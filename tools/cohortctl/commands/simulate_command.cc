// `cohortctl simulate`: generates the synthetic population of
// population.h and pushes it through Ingest.PushStream (or writes it as
// JSON Lines for `cohortctl push`), optionally with its ground truth as CSV.
// Sessions are generated batch by batch as the pusher asks for them, so
// memory stays flat whatever --sessions is.
#include <fstream>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/progress_bar.h"
#include "tools/cohortctl/pusher.h"
#include "tools/cohortctl/simulator/population.h"
#include "tools/cohortctl/simulator/simulated_batches.h"

namespace cohortd::cohortctl {
namespace {

constexpr int64_t kMaxStreams = 64;
constexpr int64_t kDefaultBatch = 2000;
constexpr int64_t kDefaultStreams = 4;

absl::Status CheckSimulateFlags(const ParsedFlags& flags) {
  absl::StatusOr<int64_t> sessions = flags.GetInt("sessions", kDefaultSessions);
  if (!sessions.ok()) return sessions.status();
  absl::StatusOr<int64_t> seed = flags.GetInt("seed", 1);
  if (!seed.ok()) return seed.status();
  absl::StatusOr<int64_t> batch = flags.GetInt("batch", kDefaultBatch);
  if (!batch.ok()) return batch.status();
  absl::StatusOr<int64_t> streams = flags.GetInt("streams", kDefaultStreams);
  if (!streams.ok()) return streams.status();
  if (*sessions < kMinSessions || *sessions > kMaxSessions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--sessions must be between ", kMinSessions, " and ", kMaxSessions));
  }
  if (*seed < 0) {
    return absl::InvalidArgumentError("--seed must not be negative");
  }
  if (*batch < kSourcesPerSession || *streams < 1 || *streams > kMaxStreams) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch must be at least ", kSourcesPerSession,
                     " and --streams between 1 and ", kMaxStreams));
  }
  if (flags.Has("push") && flags.Has("jsonl")) {
    return absl::InvalidArgumentError(
        "--push and --jsonl are alternatives: give one");
  }
  return absl::OkStatus();
}

// The truth CSV, if --truth was given: rows are appended as sessions are
// generated.
class TruthWriter {
 public:
  // Opens `path` (none if empty) and writes the header; false on failure.
  bool Open(const std::string& path) {
    if (path.empty()) return true;
    file_.emplace(path, std::ios::binary | std::ios::trunc);
    if (!*file_) return false;
    *file_ << TruthCsvHeader();
    return true;
  }
  bool enabled() const { return file_.has_value(); }
  void Add(const Population& population, const SimSession& session) {
    if (file_) *file_ << TruthCsvRow(population, session);
  }
  // Flushes and closes; false if anything failed to be written.
  bool Close() {
    if (!file_) return true;
    file_->close();
    return !file_->fail();
  }

 private:
  std::optional<std::ofstream> file_;
};

std::string Describe(const Population& population) {
  return absl::StrFormat("%s sessions of %s accounts (seed %d)",
                         WithThousands(population.sessions()),
                         WithThousands(population.accounts()),
                         population.seed());
}

// --jsonl FILE: one Observation per line in the protobuf JSON mapping.
int WriteJsonl(const CommandEnv& env, const Population& population,
               TruthWriter* truth) {
  const std::string& path = env.flags.Get("jsonl");
  std::ofstream file;
  std::ostream* out = env.io.out;
  if (path != "-") {
    file.open(path, std::ios::binary | std::ios::trunc);
    if (!file) {
      *env.io.err << "cohortctl: cannot write " << path << "\n";
      return kExitError;
    }
    out = &file;
  }
  const absl::Time start = absl::Now();
  for (int64_t i = 0; i < population.sessions(); ++i) {
    const SimSession session = population.SessionAt(i);
    *out << ObservationsJsonl(population, session);
    truth->Add(population, session);
  }
  out->flush();
  if (!*out || (file.is_open() && (file.close(), file.fail()))) {
    *env.io.err << "cohortctl: cannot write " << path << "\n";
    return kExitError;
  }
  if (!truth->Close()) {
    *env.io.err << "cohortctl: cannot write " << env.flags.Get("truth") << "\n";
    return kExitError;
  }
  if (path != "-") {
    *env.io.out << absl::StrFormat(
        "%s: %s observations, %s, in %.1f s\n", path,
        WithThousands(population.sessions() * kSourcesPerSession),
        Describe(population), absl::ToDoubleSeconds(absl::Now() - start));
  }
  return kExitOk;
}

// Checks the server's schema before pushing, so that a changed config
// fails with one clear message rather than millions of rejections (the
// ingest role may describe datasets). Returns false, having reported why,
// if the push must not go ahead.
bool CheckServerSchema(const CommandEnv& env,
                       const std::shared_ptr<grpc::Channel>& channel,
                       const std::string& token) {
  auto stub = cohortd::v1::Query::NewStub(channel);
  cohortd::v1::DescribeDatasetRequest request;
  request.set_dataset(env.global.dataset);
  cohortd::v1::DatasetDescription description;
  auto context = MakeContext(token, env.global.timeout);
  const grpc::Status status =
      stub->DescribeDataset(context.get(), request, &description);
  if (!status.ok()) {
    ReportRpcError("describe", status, *env.io.err);
    return false;
  }
  const absl::Status check = CheckSchema(description);
  if (!check.ok()) {
    *env.io.err << "cohortctl: " << check.message() << "\n";
    return false;
  }
  return true;
}

// --push: generates each request's wire bytes on the pusher's reading
// thread while its streams send the earlier ones.
int Push(const CommandEnv& env, const Population& population,
         TruthWriter* truth) {
  std::ostream& err = *env.io.err;
  absl::StatusOr<std::string> token =
      ResolveToken(env.global.token_file, Role::kIngest, env.io.env);
  if (!token.ok()) {
    err << "cohortctl: " << token.status().message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(env.global);
  if (!channel.ok()) {
    err << "cohortctl: " << channel.status().message() << "\n";
    return kExitUsage;
  }
  if (!CheckServerSchema(env, *channel, *token)) return kExitError;

  const int64_t batch_size = *env.flags.GetInt("batch", kDefaultBatch);
  const int64_t streams = *env.flags.GetInt("streams", kDefaultStreams);
  SimulatedBatches batches(&population, env.global.dataset, batch_size);
  SimulatedBatches::SessionCallback add_truth;
  if (truth->enabled()) {
    add_truth = [&](const SimSession& session) {
      truth->Add(population, session);
    };
  }
  const NextBatch next = [&](ObservationBatch* batch,
                             std::vector<MalformedLine>*) {
    return batches.Next(batch, add_truth);
  };
  const ProgressFraction fraction = [&] {
    return static_cast<double>(batches.sessions_written()) /
           population.sessions();
  };
  const bool show_progress = env.io.err_is_tty && !env.flags.Has("quiet");
  Pusher pusher(*channel, *token, streams);
  const PushResult result =
      pusher.Run(next, fraction, show_progress ? &err : nullptr);

  const double seconds = absl::ToDoubleSeconds(result.elapsed);
  const int64_t rate =
      seconds > 0 ? static_cast<int64_t>(result.confirmed / seconds) : 0;
  *env.io.out << absl::StrFormat(
                     "simulated %s: %s observations in %.1f s (%s "
                     "observations/s)\n",
                     Describe(population),
                     WithThousands(batches.observations_written()), seconds,
                     WithThousands(rate))
              << result.summary.Format();
  const bool truth_ok = truth->Close();
  if (!truth_ok) {
    err << "cohortctl: cannot write " << env.flags.Get("truth") << "\n";
  }
  if (!result.error.ok()) {
    return ReportRpcError(absl::StrCat("push stopped after observation ",
                                       batches.observations_written()),
                          result.error, err);
  }
  if (!truth_ok) return kExitError;
  return result.summary.Clean() ? kExitOk : kExitProblem;
}

int RunSimulate(const CommandEnv& env) {
  PopulationOptions options;
  options.sessions = *env.flags.GetInt("sessions", kDefaultSessions);
  options.seed = static_cast<uint64_t>(*env.flags.GetInt("seed", 1));
  absl::StatusOr<Population> population = Population::Create(options);
  if (!population.ok()) {
    *env.io.err << "cohortctl: " << population.status().message() << "\n";
    return kExitUsage;
  }
  TruthWriter truth;
  if (!truth.Open(env.flags.Get("truth"))) {
    *env.io.err << "cohortctl: cannot write " << env.flags.Get("truth") << "\n";
    return kExitError;
  }
  return env.flags.Has("jsonl") ? WriteJsonl(env, *population, &truth)
                                : Push(env, *population, &truth);
}

}  // namespace

Command SimulateCommand() {
  Command command;
  command.name = "simulate";
  command.summary = "generate the study's synthetic population and push it";
  command.description =
      "Generates a seeded, reproducible synthetic population modelled on\n"
      "the study of DOMAIN.md: by default 400,000 sessions from 235,000\n"
      "accounts over 2025-10 to 2026-04, with a heavy tail of power users,\n"
      "~30% unclassified occupations, the work-mode trend, success and\n"
      "abandonment by expertise near the published figures, lognormal\n"
      "actions and words per prompt, a long tail of rare task topics, and\n"
      "tiny cohorts that must never be released (occupation\n"
      "farming_fishing_forestry and topic farm-yield-forecasting: exactly\n"
      "9 accounts each, with many sessions). Each session arrives as 5\n"
      "observations: work_mode_classifier@3, expertise_classifier@2,\n"
      "occupation_classifier@1, outcome_classifier@4 and telemetry.\n"
      "\n"
      "By default (--push) it checks the server's schema (DescribeDataset)\n"
      "against its model, then pushes over --streams concurrent PushStream\n"
      "calls with a progress line on a terminal and prints a summary.\n"
      "Pushing the same --sessions and --seed again changes nothing (every\n"
      "observation is unchanged). With --jsonl FILE ('-': stdout) it writes\n"
      "JSON Lines for `cohortctl push` instead, needing no server or token.\n"
      "--truth FILE writes the ground truth, one CSV row per session\n"
      "(session_id, account_id, month, the other dimensions and the\n"
      "measures in config order).\n"
      "\n"
      "Token (--push only): the ingest role's, as for push. Exits 3 if\n"
      "anything was rejected or left unconfirmed, 1 if the schema differs\n"
      "or a stream failed.\n";
  // No fixed role: --jsonl needs no token, --push resolves the ingest one.
  command.role = std::nullopt;
  command.flags = {
      {"sessions", "N", "sessions to generate (default 400000)"},
      {"seed", "S", "seed of the population (default 1)"},
      {"push", "", "push to the server (the default)"},
      {"jsonl", "FILE", "write JSON Lines instead of pushing ('-': stdout)"},
      {"truth", "FILE", "also write the ground truth as CSV"},
      {"batch", "N", "observations per request (default 2000)"},
      {"streams", "N", "concurrent PushStream calls (default 4)"},
      {"quiet", "", "no progress line"},
  };
  command.check = CheckSimulateFlags;
  command.run = RunSimulate;
  return command;
}

}  // namespace cohortd::cohortctl
