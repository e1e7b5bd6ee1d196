// Erasure entries in the audit log: their hash encoding (a known answer
// computed independently from docs/audit.md), and ReleaseJournal::
// CommitErasure keeping one verifiable chain with releases.
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ledger/audit_chain.h"
#include "server/ledger/release_journal.h"
#include "server/storage/mem_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;

// Computed with Python hashlib/struct from the encoding in docs/audit.md:
// entry 1, principal "admin", dataset "sessions", no release, zero cost,
// time 1767225600 s + 0 ns, erasure ("delete_account", 12 sessions).
TEST(AuditErasureTest, KnownAnswerMatchesTheDocumentedEncoding) {
  internal::StoredAuditEntry entry;
  entry.set_sequence(1);
  entry.set_principal("admin");
  entry.set_dataset("sessions");
  entry.set_time_unix_seconds(1767225600);
  entry.mutable_erasure()->set_reason("delete_account");
  entry.mutable_erasure()->set_sessions_deleted(12);
  entry.set_prev_hash(AuditGenesisHash());
  EXPECT_EQ(AuditHashInput(entry).size(), 182u);
  EXPECT_EQ(HexEncode(ComputeAuditHash(entry)),
            "2bedcf308d25fe4b643177586e9fac14e5b41f0334213eeb5f6611a7c1beaa6a");
  // The count and the reason are covered by the hash.
  internal::StoredAuditEntry other = entry;
  other.mutable_erasure()->set_sessions_deleted(11);
  EXPECT_NE(ComputeAuditHash(other), ComputeAuditHash(entry));
  other = entry;
  other.mutable_erasure()->set_reason("retention");
  EXPECT_NE(ComputeAuditHash(other), ComputeAuditHash(entry));
  // An erasure of 0 sessions is not a release entry with the same fields.
  other = entry;
  other.mutable_erasure()->set_sessions_deleted(0);
  internal::StoredAuditEntry plain = entry;
  plain.clear_erasure();
  EXPECT_NE(ComputeAuditHash(other), ComputeAuditHash(plain));
}

// The two tagged extensions stay apart: an erasure cannot pass for a cache
// hit or back, and an erasure entry parses with kind AUDIT_RELEASE (the
// kind main's cache hits added; erasures are told by `erasure`).
TEST(AuditErasureTest, ErasureAndCacheHitExtensionsAreDistinct) {
  internal::StoredAuditEntry erasure;
  erasure.set_sequence(1);
  erasure.set_principal("admin");
  erasure.set_dataset("sessions");
  erasure.set_time_unix_seconds(1767225600);
  erasure.mutable_erasure()->set_reason("delete_account");
  erasure.mutable_erasure()->set_sessions_deleted(12);
  erasure.set_prev_hash(AuditGenesisHash());
  EXPECT_EQ(erasure.kind(), internal::AUDIT_RELEASE);
  internal::StoredAuditEntry hit = erasure;
  hit.clear_erasure();
  hit.set_kind(internal::AUDIT_CACHE_HIT);
  internal::StoredAuditEntry both = erasure;
  both.set_kind(internal::AUDIT_CACHE_HIT);
  EXPECT_NE(ComputeAuditHash(erasure), ComputeAuditHash(hit));
  EXPECT_NE(ComputeAuditHash(both), ComputeAuditHash(erasure));
  EXPECT_NE(ComputeAuditHash(both), ComputeAuditHash(hit));
  // Both tags, cache_hit first (docs/audit.md): 182 + 8 + 9 bytes.
  EXPECT_EQ(AuditHashInput(both).size(), 199u);
  EXPECT_EQ(HexEncode(ComputeAuditHash(erasure)),
            "2bedcf308d25fe4b643177586e9fac14e5b41f0334213eeb5f6611a7c1beaa6a");
}

class CommitErasureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::TestConfig();
    config_.datasets[0].privacy.principal_budget = {1.0, 1e-6};
    config_.datasets[0].privacy.dataset_budget = {2.0, 1e-6};
    Reopen();
  }
  void Reopen() {
    journal_.reset();
    ASSERT_OK_AND_ASSIGN(journal_,
                         ReleaseJournal::Open(&config_, &store_, &clock_));
  }
  absl::Status Erase(int64_t sessions, bool fail_write = false) {
    WriteBatch batch;
    batch.Delete("s/sessions/x");  // stands for the deletion's own ops
    return journal_->CommitErasure(
        "admin", "sessions", "delete_account", sessions, &batch, [&] {
          if (fail_write) return absl::UnavailableError("disk full");
          return store_.Write(batch, /*sync=*/true);
        });
  }

  Config config_;
  MemStore store_;
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  std::unique_ptr<ReleaseJournal> journal_;
};

TEST_F(CommitErasureTest, EntriesChainAndListWithTheirCounts) {
  ASSERT_OK(Erase(3));
  ASSERT_OK(Erase(0));
  ASSERT_OK_AND_ASSIGN(auto listed, journal_->ListAudit(0, 0));
  EXPECT_TRUE(listed.chain_valid()) << listed.chain_error();
  ASSERT_EQ(listed.entries_size(), 2);
  EXPECT_EQ(listed.entries(0).principal(), "admin");
  EXPECT_EQ(listed.entries(0).erasure().reason(), "delete_account");
  EXPECT_EQ(listed.entries(0).erasure().sessions_deleted(), 3);
  EXPECT_TRUE(listed.entries(1).has_erasure());
  EXPECT_EQ(listed.entries(1).erasure().sessions_deleted(), 0);
  EXPECT_TRUE(listed.entries(0).release_id().empty());
  // After a restart the chain is read back and continues.
  Reopen();
  ASSERT_OK(Erase(1));
  ASSERT_OK_AND_ASSIGN(listed, journal_->ListAudit(0, 0));
  EXPECT_TRUE(listed.chain_valid()) << listed.chain_error();
  EXPECT_EQ(listed.total_entries(), 3);
}

TEST_F(CommitErasureTest, FailedWriteLeavesTheChainHeadAlone) {
  ASSERT_OK(Erase(2));
  EXPECT_THAT(Erase(5, /*fail_write=*/true),
              StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_OK(Erase(4));
  ASSERT_OK_AND_ASSIGN(auto listed, journal_->ListAudit(0, 0));
  EXPECT_TRUE(listed.chain_valid()) << listed.chain_error();
  ASSERT_EQ(listed.entries_size(), 2);
  EXPECT_EQ(listed.entries(1).sequence(), 2);
  EXPECT_EQ(listed.entries(1).erasure().sessions_deleted(), 4);
}

TEST_F(CommitErasureTest, UnknownDatasetIsRefused) {
  WriteBatch batch;
  EXPECT_THAT(journal_->CommitErasure("admin", "nope", "delete_account", 1,
                                      &batch, [] { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(batch.empty());
}

}  // namespace
}  // namespace cohortd
