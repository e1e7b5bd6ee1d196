// query_load: latency of Query.Aggregate over a running cohortd, for the
// cost of the snapshot design (issue 9): p50/p90/p99 of cache misses (each
// request distinct: a new release, charged) and of cache hits (the same
// request again: served from the release cache and audited).
//
//   query_load --target HOST:PORT [--queries N] [--seal] [--box-plot]
//              [--epsilon E]
//   query_load --target HOST:PORT --first-answer-since UNIX_NANOS
//
// The analyst token comes from $COHORTD_ANALYST_TOKEN; --seal (admin token
// from $COHORTD_ADMIN_TOKEN) seals a snapshot first, so the queries read
// what was pushed. The principal needs a budget for N releases.
// --box-plot asks README's Figure 3 instead: the five default quantiles of
// actions_per_prompt by expertise (issue 12 item 4). Query i asks epsilon
// E + 1e-4 i (E = 0.5 by default): pick another E to repeat a run against
// the same data without hitting the release cache.
//
// --first-answer-since (for bench/query/restart_bench.sh): asks one
// question every 5 ms until it is answered, and prints the time from
// UNIX_NANOS (when the server was started) to that first answer.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

cohortd::v1::AggregateRequest BoxPlotRequest(double epsilon) {
  cohortd::v1::AggregateRequest request;
  request.set_dataset("sessions");
  request.add_group_by("expertise");
  request.set_epsilon(epsilon);
  auto* quantiles = request.add_metrics();
  quantiles->set_kind(cohortd::v1::Metric::QUANTILES);
  quantiles->set_measure("actions_per_prompt");
  return request;
}

cohortd::v1::AggregateRequest Request(double epsilon) {
  // "Verified success rate by occupation" with sessions and accounts, the
  // README's benchmark question.
  cohortd::v1::AggregateRequest request;
  request.set_dataset("sessions");
  request.add_group_by("occupation");
  request.set_epsilon(epsilon);
  request.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
  request.add_metrics()->set_kind(cohortd::v1::Metric::ACCOUNTS);
  auto* rate = request.add_metrics();
  rate->set_kind(cohortd::v1::Metric::RATE);
  rate->set_name("verified");
  rate->mutable_rate_of()->set_dimension("verified_success");
  rate->mutable_rate_of()->add_any_of("true");
  return request;
}

void Report(const char* what, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[static_cast<size_t>(q * (ms.size() - 1))];
  };
  std::printf("%-6s n=%zu  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms\n", what,
              ms.size(), at(0.5), at(0.9), at(0.99));
}

}  // namespace

int main(int argc, char** argv) {
  std::string target;
  int queries = 200;
  bool seal = false;
  bool box_plot = false;
  double base_epsilon = 0.5;
  int64_t first_answer_since = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--target" && i + 1 < argc) {
      target = argv[++i];
    } else if (arg == "--queries" && i + 1 < argc) {
      queries = std::atoi(argv[++i]);
    } else if (arg == "--seal") {
      seal = true;
    } else if (arg == "--box-plot") {
      box_plot = true;
    } else if (arg == "--epsilon" && i + 1 < argc) {
      base_epsilon = std::atof(argv[++i]);
    } else if (arg == "--first-answer-since" && i + 1 < argc) {
      first_answer_since = std::atoll(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: query_load --target HOST:PORT [--queries N] "
                   "[--seal] [--box-plot] [--epsilon E] "
                   "[--first-answer-since NS]\n");
      return 2;
    }
  }
  if (target.empty() || queries < 1 || !(base_epsilon > 0)) {
    std::fprintf(stderr,
                 "query_load: --target, --queries >= 1 and --epsilon > 0 "
                 "needed\n");
    return 2;
  }
  // Reconnect within milliseconds while the server starts (the default
  // backoff waits a second or more after a refused connection).
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 5);
  channel_args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5);
  channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 20);
  auto channel = grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), channel_args);
  auto query = cohortd::v1::Query::NewStub(channel);
  auto call = [&](const cohortd::v1::AggregateRequest& request,
                  cohortd::v1::AggregateResponse* response) {
    grpc::ClientContext context;
    context.AddMetadata("authorization",
                        "Bearer " + Env("COHORTD_ANALYST_TOKEN"));
    return query->Aggregate(&context, request, response);
  };
  if (first_answer_since > 0) {
    for (;;) {
      // A fresh channel per attempt, with its own subchannel: a channel
      // whose connection was refused waits out gRPC's reconnect backoff
      // (1 s, 1.6 s, 2.56 s, ...; the backoff arguments above did not
      // shorten it in gRPC 1.51), which the first answer then measured
      // (5.2-5.4 s) instead of the server's start.
      grpc::ChannelArguments attempt_args = channel_args;
      attempt_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto attempt = cohortd::v1::Query::NewStub(grpc::CreateCustomChannel(
          target, grpc::InsecureChannelCredentials(), attempt_args));
      cohortd::v1::AggregateResponse response;
      grpc::ClientContext context;
      context.AddMetadata("authorization",
                          "Bearer " + Env("COHORTD_ANALYST_TOKEN"));
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(10));
      const grpc::Status s =
          attempt->Aggregate(&context, Request(base_epsilon), &response);
      if (s.ok()) {
        const int64_t now =
            std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
        std::printf(
            "first answer %.3f s after start (from_cache %s, %d "
            "cohorts)\n",
            (now - first_answer_since) / 1e9,
            response.from_cache() ? "true" : "false", response.cohorts_size());
        return 0;
      }
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE) {
        std::fprintf(stderr, "query_load: %s\n", s.error_message().c_str());
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (seal) {
    auto admin = cohortd::v1::Admin::NewStub(channel);
    grpc::ClientContext context;
    context.AddMetadata("authorization",
                        "Bearer " + Env("COHORTD_ADMIN_TOKEN"));
    cohortd::v1::SealSnapshotResponse sealed;
    const grpc::Status s = admin->SealSnapshot(
        &context, cohortd::v1::SealSnapshotRequest(), &sealed);
    if (!s.ok()) {
      std::fprintf(stderr, "query_load: seal: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  std::vector<double> miss, hit;
  int cohorts = 0;
  for (int i = 0; i < queries; ++i) {
    // A distinct epsilon per query: a distinct canonical request.
    const double epsilon = base_epsilon + 1e-4 * i;
    const cohortd::v1::AggregateRequest request =
        box_plot ? BoxPlotRequest(epsilon) : Request(epsilon);
    for (std::vector<double>* out : {&miss, &hit}) {
      cohortd::v1::AggregateResponse response;
      const auto start = std::chrono::steady_clock::now();
      const grpc::Status s = call(request, &response);
      const std::chrono::duration<double, std::milli> took =
          std::chrono::steady_clock::now() - start;
      if (!s.ok()) {
        std::fprintf(stderr, "query_load: query %d: %s\n", i,
                     s.error_message().c_str());
        return 1;
      }
      if (response.from_cache() != (out == &hit)) {
        std::fprintf(stderr, "query_load: query %d: unexpected from_cache\n",
                     i);
        return 1;
      }
      cohorts = response.cohorts_size();
      out->push_back(took.count());
    }
  }
  std::printf("%d cohorts released per query\n", cohorts);
  Report("miss", miss);
  Report("hit", hit);
  return 0;
}
