// ingest_load: pushes N synthetic observations over M concurrent PushStream
// streams against a running cohortd and prints observations/s and batch
// latency percentiles. Every acknowledged batch is durable (the server
// syncs before answering), so the rate printed is a durable rate.
//
//   ingest_load --target 127.0.0.1:7443 --observations 1000000 --streams 8
//               [--batch 2000] [--sources 5] [--dataset sessions] [--seed 1]
//               [--abuse-sources N] [--probe P]
// --sources K (1 to 5, default 5: the held-out shape of issue 13) is the
// number of observations (one per source) of each session. Requests are
// built and serialized before the clock starts and written as bytes, so
// the rate is the server's, not the load generator's.
// --abuse-sources N adds one stream that pushes N distinct sources to one
// session (batches of --batch), as the abusive client of issue 13 did;
// raise ingest.max_sources_per_session above N to measure the layout
// rather than the cap. --probe P adds one stream that pushes P
// single-observation batches one after the other while the rest runs, and
// prints their latency: what any other client sees meanwhile (it goes on
// until the abuser, if any, is done).
// The ingest token comes from $COHORTD_INGEST_TOKEN or --token-file (a
// file holding the token, or KEY=VALUE lines as in secrets/dev-tokens.env).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

struct Options {
  std::string target = "127.0.0.1:7443";
  std::string dataset = "sessions";
  std::string token_file;
  long observations = 1000000;
  int streams = 8;
  int batch = 2000;
  int sources = 5;
  uint64_t seed = 1;
  long abuse_sources = 0;
  long probe = 0;
};

void Usage() {
  std::fputs(
      "usage: ingest_load [--target HOST:PORT] [--observations N] "
      "[--streams M]\n"
      "                   [--batch B] [--sources K] [--dataset NAME] "
      "[--seed S]\n"
      "                   [--token-file F]\n"
      "                   [--abuse-sources N] [--probe P]\n"
      "Token: $COHORTD_INGEST_TOKEN, or --token-file (the token, or a "
      "COHORTD_INGEST_TOKEN=... line).\n",
      stderr);
}

// SplitMix64: a fast deterministic generator for synthetic *data* (never
// for noise).
struct SplitMix {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int Below(int n) { return static_cast<int>(Next() % n); }
};

const char* const kWorkModes[] = {"build",       "fix",     "test",
                                  "orchestrate", "operate", "understand",
                                  "plan",        "analyze", "write"};
const char* const kExpertise[] = {"novice", "beginner", "intermediate",
                                  "advanced", "expert"};
const char* const kOutcomes[] = {"success", "partial", "failure", "unclear"};

// Observation i of a run: session i/K, one of its K sources, so that
// sessions are merged from several pushes as in production. The five
// sources carry the labels and measures of the held-out shape.
void MakeObservation(long i, int sources, uint64_t seed,
                     cohortd::v1::Observation* obs) {
  SplitMix rng{seed * 1000003 + static_cast<uint64_t>(i)};
  const long session = i / sources;
  obs->set_session_id(absl::StrCat("load-", seed, "-", session));
  obs->set_account_id(absl::StrCat("acct-", seed, "-", session % 235000));
  obs->mutable_session_start()->set_seconds(1759276800 +
                                            (session * 37) % 18000000);
  auto* labels = obs->mutable_labels();
  auto* measures = obs->mutable_measures();
  switch (i % sources) {
    case 0:
      obs->set_source("work_mode_classifier@3");
      (*labels)["work_mode"] = kWorkModes[rng.Below(9)];
      break;
    case 1:
      obs->set_source("expertise_classifier@2");
      (*labels)["expertise"] = kExpertise[rng.Below(5)];
      break;
    case 2:
      obs->set_source("outcome_classifier@4");
      (*labels)["outcome"] = kOutcomes[rng.Below(4)];
      (*labels)["verified_success"] = rng.Below(4) == 0 ? "true" : "false";
      (*measures)["success_signal"] = rng.Below(6);
      break;
    case 3:
      obs->set_source("telemetry");
      (*labels)["client"] = rng.Below(2) == 0 ? "cli" : "desktop";
      (*measures)["actions_per_prompt"] = 1 + rng.Below(40);
      (*measures)["prompts"] = 1 + rng.Below(12);
      (*measures)["lines_added"] = rng.Below(500);
      break;
    default:
      obs->set_source("occupation_classifier@1");
      (*labels)["occupation"] = rng.Below(3) == 0 ? "unclassified" : "sales";
      break;
  }
}

// A PushStream whose requests are written as pre-serialized bytes.
using RawStream =
    grpc::ClientReaderWriter<grpc::ByteBuffer, cohortd::v1::PushResponse>;
std::unique_ptr<RawStream> OpenRawStream(
    const std::shared_ptr<grpc::Channel>& channel,
    grpc::ClientContext* context) {
  static const grpc::internal::RpcMethod method(
      "/cohortd.v1.Ingest/PushStream",
      grpc::internal::RpcMethod::BIDI_STREAMING, channel);
  return std::unique_ptr<RawStream>(
      grpc::internal::ClientReaderWriterFactory<
          grpc::ByteBuffer, cohortd::v1::PushResponse>::Create(channel.get(),
                                                               method,
                                                               context));
}

std::string ReadToken(const Options& options) {
  if (options.token_file.empty()) {
    const char* env = std::getenv("COHORTD_INGEST_TOKEN");
    return env != nullptr ? env : "";
  }
  std::ifstream in(options.token_file);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view view = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(view, "#")) continue;  // a comment
    if (absl::ConsumePrefix(&view, "COHORTD_INGEST_TOKEN=") ||
        view.find('=') == absl::string_view::npos) {
      if (!view.empty()) return std::string(view);
    }
  }
  return "";
}

bool ParseOptions(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help") return false;
    if (i + 1 >= argc) return false;
    const std::string value = argv[++i];
    if (arg == "--target")
      o->target = value;
    else if (arg == "--dataset")
      o->dataset = value;
    else if (arg == "--token-file")
      o->token_file = value;
    else if (arg == "--observations")
      o->observations = std::atol(value.c_str());
    else if (arg == "--streams")
      o->streams = std::atoi(value.c_str());
    else if (arg == "--batch")
      o->batch = std::atoi(value.c_str());
    else if (arg == "--sources")
      o->sources = std::atoi(value.c_str());
    else if (arg == "--seed")
      o->seed = std::strtoull(value.c_str(), nullptr, 10);
    else if (arg == "--abuse-sources")
      o->abuse_sources = std::atol(value.c_str());
    else if (arg == "--probe")
      o->probe = std::atol(value.c_str());
    else
      return false;
  }
  return o->observations >= 0 && o->streams > 0 && o->batch > 0 &&
         o->sources >= 1 && o->sources <= 5 && o->abuse_sources >= 0 &&
         o->probe >= 0 && o->observations + o->abuse_sources + o->probe > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseOptions(argc, argv, &options)) {
    Usage();
    return 2;
  }
  const std::string token = ReadToken(options);
  if (token.empty()) {
    std::fputs(
        "ingest_load: no token ($COHORTD_INGEST_TOKEN or "
        "--token-file)\n",
        stderr);
    return 2;
  }
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(256 << 20);
  auto channel = grpc::CreateCustomChannel(
      options.target, grpc::InsecureChannelCredentials(), args);
  {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status s = health->Check(
        &context, grpc::health::v1::HealthCheckRequest(), &response);
    if (!s.ok() ||
        response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      std::fprintf(stderr, "ingest_load: %s is not serving: %s\n",
                   options.target.c_str(), s.error_message().c_str());
      return 1;
    }
  }

  // Pre-build every request so the measurement is of the server, not of
  // generating data.
  const long batches =
      (options.observations + options.batch - 1) / options.batch;
  std::vector<grpc::ByteBuffer> requests(batches);
  for (long b = 0; b < batches; ++b) {
    cohortd::v1::PushRequest request;
    request.set_dataset(options.dataset);
    const long end =
        std::min(options.observations, (b + 1) * long{options.batch});
    for (long i = b * options.batch; i < end; ++i) {
      MakeObservation(i, options.sources, options.seed,
                      request.add_observations());
    }
    grpc::Slice slice(request.SerializeAsString());
    requests[b] = grpc::ByteBuffer(&slice, 1);
  }

  std::atomic<long> next{0};
  std::atomic<long> accepted{0}, unchanged{0}, rejected{0};
  std::mutex latency_mu;
  std::vector<double> latencies_ms;
  std::atomic<bool> failed{false};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int s = 0; s < options.streams; ++s) {
    workers.emplace_back([&] {
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + token);
      auto stream = OpenRawStream(channel, &context);
      std::vector<double> mine;
      for (long b; (b = next++) < batches && !failed;) {
        const auto t0 = std::chrono::steady_clock::now();
        cohortd::v1::PushResponse response;
        if (!stream->Write(requests[b]) || !stream->Read(&response)) {
          failed = true;
          break;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(
                           std::chrono::steady_clock::now() - t0)
                           .count());
        accepted += response.accepted();
        unchanged += response.unchanged();
        rejected += response.rejected_size();
      }
      stream->WritesDone();
      grpc::Status status = stream->Finish();
      if (!status.ok()) {
        std::fprintf(stderr, "ingest_load: stream failed: %s\n",
                     status.error_message().c_str());
        failed = true;
      }
      std::lock_guard<std::mutex> lock(latency_mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  // The abuser: many distinct sources on one session.
  std::atomic<bool> abuse_done{options.abuse_sources == 0};
  std::atomic<long> abuse_rejected{0};
  double abuse_seconds = 0;
  std::thread abuser;
  if (options.abuse_sources > 0) {
    abuser = std::thread([&] {
      auto stub = cohortd::v1::Ingest::NewStub(channel);
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + token);
      auto stream = stub->PushStream(&context);
      for (long first = 0; first < options.abuse_sources && !failed;
           first += options.batch) {
        cohortd::v1::PushRequest request;
        request.set_dataset(options.dataset);
        const long end =
            std::min(options.abuse_sources, first + long{options.batch});
        for (long k = first; k < end; ++k) {
          auto* obs = request.add_observations();
          obs->set_session_id(absl::StrCat("abuse-", options.seed));
          obs->set_account_id(absl::StrCat("abuser-", options.seed));
          obs->mutable_session_start()->set_seconds(1759276800);
          obs->set_source(absl::StrCat("abuser-source-", k));
          (*obs->mutable_measures())["prompts"] = 1 + k % 12;
        }
        cohortd::v1::PushResponse response;
        if (!stream->Write(request) || !stream->Read(&response)) {
          failed = true;
          break;
        }
        abuse_rejected += response.rejected_size();
      }
      stream->WritesDone();
      grpc::Status status = stream->Finish();
      if (!status.ok()) {
        std::fprintf(stderr, "ingest_load: abuser stream failed: %s\n",
                     status.error_message().c_str());
        failed = true;
      }
      abuse_seconds = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - start)
                          .count();
      abuse_done = true;
    });
  }
  // The probe: single-observation pushes, timed one by one.
  std::vector<double> probe_ms;
  std::thread prober;
  if (options.probe > 0) {
    prober = std::thread([&] {
      auto stub = cohortd::v1::Ingest::NewStub(channel);
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + token);
      auto stream = stub->PushStream(&context);
      // At least P pushes, and on until the abuser is done, so the probe
      // covers the whole abuse.
      for (long p = 0; (p < options.probe || !abuse_done) && !failed; ++p) {
        cohortd::v1::PushRequest request;
        request.set_dataset(options.dataset);
        MakeObservation(p, 1, options.seed + 7777, request.add_observations());
        const auto t0 = std::chrono::steady_clock::now();
        cohortd::v1::PushResponse response;
        if (!stream->Write(request) || !stream->Read(&response)) {
          failed = true;
          break;
        }
        probe_ms.push_back(std::chrono::duration<double, std::milli>(
                               std::chrono::steady_clock::now() - t0)
                               .count());
      }
      stream->WritesDone();
      stream->Finish();
    });
  }
  for (auto& w : workers) w.join();
  // The rate is of the main streams only.
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (abuser.joinable()) abuser.join();
  if (prober.joinable()) prober.join();
  if (failed) return 1;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[std::min(latencies_ms.size() - 1,
                                 static_cast<size_t>(p * latencies_ms.size()))];
  };
  const long total = accepted + unchanged + rejected;
  std::printf(
      "ingest_load: %ld observations (%d per session) in %ld batches of %d "
      "over %d streams in %.2f s\n"
      "  rate        %.0f observations/s (durable)\n"
      "  batch p50   %.1f ms   p99 %.1f ms\n"
      "  accepted %ld  unchanged %ld  rejected %ld\n",
      total, options.sources, batches, options.batch, options.streams, seconds,
      total / seconds, pct(0.50), pct(0.99), accepted.load(), unchanged.load(),
      rejected.load());
  if (options.abuse_sources > 0) {
    std::printf(
        "  abuser      %ld sources to one session in %.2f s, %ld rejected\n",
        options.abuse_sources, abuse_seconds, abuse_rejected.load());
  }
  if (!probe_ms.empty()) {
    std::sort(probe_ms.begin(), probe_ms.end());
    auto at = [&](double p) {
      return probe_ms[std::min(probe_ms.size() - 1,
                               static_cast<size_t>(p * probe_ms.size()))];
    };
    std::printf(
        "  probe       %zu single-observation pushes: p50 %.2f ms  "
        "p99 %.2f ms  max %.2f ms\n",
        probe_ms.size(), at(0.5), at(0.99), probe_ms.back());
  }
  return 0;
}
