#include "tools/cohortctl/audit_format.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohortd::cohortctl {
namespace {

using ::testing::HasSubstr;

cohortd::v1::ListAuditResponse OneEntry() {
  cohortd::v1::ListAuditResponse response;
  auto* entry = response.add_entries();
  entry->set_sequence(7);
  entry->set_release_id("rel-7");
  entry->set_principal("dev-analyst");
  entry->set_dataset("sessions");
  entry->set_canonical_request(R"({"groupBy":["expertise"]})");
  entry->mutable_cost()->set_epsilon(0.5);
  entry->mutable_time()->set_seconds(1767225600);
  entry->set_hash(std::string("\x01\x02\xab\xcd\xef\x10\x99\x99", 8));
  response.set_entries_verified(7);
  response.set_total_entries(9);
  return response;
}

TEST(AuditFormatTest, ValidChain) {
  cohortd::v1::ListAuditResponse response = OneEntry();
  response.set_chain_valid(true);
  EXPECT_EQ(FormatAudit(response),
            "#7 2026-01-01T00:00:00Z principal=dev-analyst dataset=sessions "
            "release=rel-7 cost ε=0.5 δ=0 ρ=0 hash=0102abcdef10\n"
            "    request {\"groupBy\":[\"expertise\"]}\n"
            "chain: valid (7 entries verified; 9 in the log)\n");
}

TEST(AuditFormatTest, CacheHitIsMarked) {
  cohortd::v1::ListAuditResponse response = OneEntry();
  response.set_chain_valid(true);
  response.mutable_entries(0)->set_kind(cohortd::v1::AuditEntry::CACHE_HIT);
  response.mutable_entries(0)->mutable_cost()->set_epsilon(0);
  EXPECT_THAT(FormatAudit(response),
              HasSubstr("dataset=sessions cache-hit release=rel-7 cost ε=0 "));
}

TEST(AuditFormatTest, BrokenChainAndEmptyLog) {
  cohortd::v1::ListAuditResponse response = OneEntry();
  response.set_chain_valid(false);
  response.set_chain_error("entry 5: prev_hash does not match entry 4");
  EXPECT_THAT(FormatAudit(response),
              HasSubstr("chain: INVALID: entry 5: prev_hash does not match"));
  cohortd::v1::ListAuditResponse empty;
  empty.set_chain_valid(true);
  EXPECT_THAT(FormatAudit(empty), HasSubstr("no entries\nchain: valid"));
}

TEST(AuditFormatTest, ErasureEntry) {
  cohortd::v1::ListAuditResponse response;
  auto* entry = response.add_entries();
  entry->set_sequence(8);
  entry->set_principal("dev-admin");
  entry->set_dataset("sessions");
  entry->mutable_time()->set_seconds(1767225600);
  entry->mutable_erasure()->set_reason("delete_account");
  entry->mutable_erasure()->set_sessions_deleted(12);
  entry->set_hash(std::string("\x01\x02\xab\xcd\xef\x10\x99\x99", 8));
  response.set_chain_valid(true);
  response.set_entries_verified(8);
  response.set_total_entries(8);
  EXPECT_EQ(FormatAudit(response),
            "#8 2026-01-01T00:00:00Z principal=dev-admin dataset=sessions "
            "ERASURE delete_account sessions_deleted=12 hash=0102abcdef10\n"
            "chain: valid (8 entries verified; 8 in the log)\n");
}

}  // namespace
}  // namespace cohortd::cohortctl
