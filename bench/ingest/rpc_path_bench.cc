// CPU per observation of the Ingest RPC threads' own steps (issue 13 item
// 3, docs/storage.md "Ingest throughput"): reading a pushed batch, the
// UTF-8 check, and pseudonymisation, each next to what it replaced.
//
//   build/bench/ingest/rpc_path_bench [--benchmark_filter=REGEX]
//
// Items/s counts observations; CPU time per iteration is one batch of
// 2000 (the ingest_load shape: five observations per session, two labels,
// two measures).
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <string>

#include "benchmark/benchmark.h"
#include "cohortd/internal/ingest_wire.pb.h"
#include "cohortd/v1/cohortd.pb.h"
#include "google/protobuf/arena.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ingest/validator.h"
#include "server/service/push_wire_reader.h"

namespace cohortd {
namespace {

constexpr int kBatch = 2000;

std::string Batch() {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = 0; i < kBatch; ++i) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id("session-" + std::to_string(1000000 + i / 5));
    obs->set_account_id("account-" + std::to_string(30000 + i / 5 % 977));
    obs->mutable_session_start()->set_seconds(1735689600 + i * 37);
    obs->set_source("source-" + std::to_string(i % 5));
    (*obs->mutable_labels())["work_mode"] = "build";
    (*obs->mutable_labels())["task_topic"] = "topic-" + std::to_string(i % 40);
    (*obs->mutable_measures())["prompts"] = i % 17;
    (*obs->mutable_measures())["tokens"] = 100.0 + i;
  }
  return request.SerializeAsString();
}

// What the service did before: parse on an arena, then view each
// observation.
void BM_ReadBatch_ProtobufArena(benchmark::State& state) {
  const std::string bytes = Batch();
  for (auto _ : state) {
    google::protobuf::ArenaOptions options;
    options.start_block_size = bytes.size() + (size_t{64} << 10);
    options.max_block_size = 4 * options.start_block_size;
    google::protobuf::Arena arena(options);
    auto* request = google::protobuf::Arena::CreateMessage<
        cohortd::internal::WirePushRequest>(&arena);
    if (!request->ParseFromString(bytes)) state.SkipWithError("parse");
    std::vector<ObservationRef> refs;
    refs.reserve(request->observations_size());
    for (const auto& wire : request->observations()) {
      if (ValidateUtf8(wire)) state.SkipWithError("utf8");
      ObservationRef& ref = refs.emplace_back();
      ref.session_id = wire.session_id();
      ref.account_id = wire.account_id();
      ref.source = wire.source();
      for (const auto& l : wire.labels()) {
        ref.labels.emplace_back(l.key(), l.value());
      }
      for (const auto& m : wire.measures()) {
        ref.measures.emplace_back(m.key(), m.value());
      }
      ref.SortNames();
    }
    benchmark::DoNotOptimize(refs.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_ReadBatch_ProtobufArena);

// What it does now: one reader reused across a stream's requests.
void BM_ReadBatch_PushWireReader(benchmark::State& state) {
  const std::string bytes = Batch();
  PushWireReader reader;
  for (auto _ : state) {
    if (!reader.Read(bytes).ok()) state.SkipWithError("parse");
    for (ObservationRef& ref : reader.observations()) {
      if (ValidateUtf8(ref)) state.SkipWithError("utf8");
      ref.SortNames();
    }
    benchmark::DoNotOptimize(reader.observations().data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_ReadBatch_PushWireReader);

constexpr char kKey[] = "0123456789abcdef0123456789abcdef";

// The replaced HMAC: a keyed EVP_MAC_CTX duplicated per call.
void BM_Hmac_EvpMacCtxDup(benchmark::State& state) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* keyed = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  EVP_MAC_init(keyed, reinterpret_cast<const unsigned char*>(kKey), 32, params);
  const std::string account = "account-30123";
  for (auto _ : state) {
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed);
    unsigned char out[32];
    size_t len = 0;
    EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(account.data()),
                   account.size());
    EVP_MAC_final(ctx, out, &len, sizeof out);
    EVP_MAC_CTX_free(ctx);
    benchmark::DoNotOptimize(out);
  }
  EVP_MAC_CTX_free(keyed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Hmac_EvpMacCtxDup);

void BM_Hmac_PadStates(benchmark::State& state) {
  auto pseudonymizer = Pseudonymizer::Create(kKey);
  const std::string account = "account-30123";
  for (auto _ : state) {
    benchmark::DoNotOptimize((*pseudonymizer)->Pseudonymize(account));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Hmac_PadStates);

}  // namespace
}  // namespace cohortd

BENCHMARK_MAIN();
