#include "tools/cohortctl/simulator/simulated_batches.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tools/cohortctl/observation_jsonl.h"
#include "tools/cohortctl/simulator/population.h"

namespace cohortd::cohortctl {
namespace {

using ::google::protobuf::util::MessageDifferencer;

Population MakePopulation(int64_t sessions, uint64_t seed) {
  absl::StatusOr<Population> population =
      Population::Create({.sessions = sessions, .seed = seed});
  EXPECT_TRUE(population.ok()) << population.status();
  return *std::move(population);
}

// The lines `cohortctl simulate --jsonl` writes for `population`, parsed.
std::vector<cohortd::v1::Observation> JsonlObservations(
    const Population& population) {
  std::vector<cohortd::v1::Observation> all;
  for (int64_t i = 0; i < population.sessions(); ++i) {
    const std::string jsonl =
        ObservationsJsonl(population, population.SessionAt(i));
    for (absl::string_view line : absl::StrSplit(jsonl, '\n')) {
      if (line.empty()) continue;
      absl::StatusOr<cohortd::v1::Observation> parsed =
          ParseObservationJson(line);
      EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << line;
      all.push_back(parsed.ok() ? *parsed : cohortd::v1::Observation());
    }
  }
  return all;
}

// The pushed requests decode, in order, to exactly the observations of the
// JSON Lines file of the same population (what `cohortctl push` would
// send), each numbered by its line in that file, whole sessions per
// request.
TEST(SimulatedBatchesTest, SameObservationsAsTheJsonLinesFile) {
  for (uint64_t seed : {1, 7}) {
    const Population population = MakePopulation(1500, seed);
    const std::vector<cohortd::v1::Observation> expected =
        JsonlObservations(population);
    ASSERT_EQ(expected.size(), 1500u * kSourcesPerSession);

    // 703 is not a multiple of five: batches round down to whole sessions.
    SimulatedBatches batches(&population, "sessions", 703);
    ObservationBatch batch;
    std::vector<int64_t> sessions_seen;
    const SimulatedBatches::SessionCallback on_session =
        [&](const SimSession& session) {
          sessions_seen.push_back(session.index);
        };
    size_t next = 0;
    int requests = 0;
    while (batches.Next(&batch, on_session)) {
      ++requests;
      cohortd::v1::PushRequest request;
      ASSERT_TRUE(request.ParseFromString(batch.wire));
      EXPECT_EQ(request.dataset(), "sessions");
      ASSERT_EQ(request.observations_size(),
                static_cast<int>(batch.lines.size()));
      EXPECT_LE(request.observations_size(), 700);
      EXPECT_EQ(request.observations_size() % kSourcesPerSession, 0);
      for (int i = 0; i < request.observations_size(); ++i, ++next) {
        ASSERT_LT(next, expected.size());
        EXPECT_EQ(batch.lines[i], static_cast<int64_t>(next) + 1);
        EXPECT_TRUE(
            MessageDifferencer::Equals(request.observations(i), expected[next]))
            << "seed " << seed << " observation " << next + 1 << ":\n"
            << request.observations(i).DebugString() << "expected\n"
            << expected[next].DebugString();
      }
      EXPECT_EQ(batches.observations_written(), static_cast<int64_t>(next));
      EXPECT_EQ(batches.sessions_written(),
                static_cast<int64_t>(next) / kSourcesPerSession);
    }
    EXPECT_EQ(next, expected.size());
    EXPECT_EQ(requests, (1500 + 139) / 140);  // 140 sessions per request
    EXPECT_TRUE(batch.lines.empty());
    ASSERT_EQ(sessions_seen.size(), 1500u);
    for (int64_t i = 0; i < 1500; ++i) ASSERT_EQ(sessions_seen[i], i);
    // Exhausted: stays so.
    EXPECT_FALSE(batches.Next(&batch, nullptr));
  }
}

// Stronger still: the requests are byte for byte those `cohortctl push`
// builds from that file with the same batch size, so the server cannot
// tell the two apart (the simulator writes fields in the file's key
// order, which is field-number order).
TEST(SimulatedBatchesTest, SameBytesAsPushOfTheJsonLinesFile) {
  const Population population = MakePopulation(1200, 2);
  std::string jsonl;
  for (int64_t i = 0; i < population.sessions(); ++i) {
    jsonl += ObservationsJsonl(population, population.SessionAt(i));
  }
  std::istringstream in(jsonl);
  ObservationReader reader(&in);
  SimulatedBatches batches(&population, "sessions", 1000);
  ObservationBatch pushed, simulated;
  std::vector<MalformedLine> malformed;
  int requests = 0;
  while (reader.ReadBatch("sessions", 1000, &pushed, &malformed)) {
    ASSERT_TRUE(batches.Next(&simulated, nullptr));
    EXPECT_EQ(simulated.wire, pushed.wire) << "request " << requests;
    EXPECT_EQ(simulated.lines, pushed.lines) << "request " << requests;
    ++requests;
  }
  EXPECT_TRUE(malformed.empty());
  EXPECT_EQ(requests, 6);
  EXPECT_FALSE(batches.Next(&simulated, nullptr));
}

}  // namespace
}  // namespace cohortd::cohortctl
