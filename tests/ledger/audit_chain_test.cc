#include "server/ledger/audit_chain.h"

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/crypto/pseudonymizer.h"
#include "tests/common/status_matchers.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

internal::StoredAuditEntry FirstEntry() {
  internal::StoredAuditEntry entry;
  entry.set_sequence(1);
  entry.set_release_id("0123456789abcdef0123456789abcdef");
  entry.set_principal("alice");
  entry.set_dataset("sessions");
  entry.set_canonical_request(R"({"dataset":"sessions"})");
  entry.set_cost_epsilon(0.5);
  entry.set_cost_delta(1e-7);
  entry.set_cost_rho(0.01);
  entry.set_time_unix_seconds(1767225600);  // 2026-01-01T00:00:00Z
  entry.set_time_nanos(123456789);
  entry.set_prev_hash(AuditGenesisHash());
  entry.set_hash(ComputeAuditHash(entry));
  return entry;
}

// The known answer was computed independently (Python hashlib/struct) from
// the encoding in docs/audit.md, so it pins the documented format.
TEST(AuditChainTest, KnownAnswerMatchesTheDocumentedEncoding) {
  const internal::StoredAuditEntry entry = FirstEntry();
  EXPECT_EQ(AuditHashInput(entry).size(), 191u);
  EXPECT_EQ(HexEncode(entry.hash()),
            "95d93a26a0231ad069afe076c44af4836b3ec1eb912c0e80b1727efc6353acf2");
}

// A cache hit (cost zero) appends the tagged "cache_hit" extension; the
// known answer was computed with Python from docs/audit.md.
TEST(AuditChainTest, CacheHitKnownAnswerAndItCannotPassForARelease) {
  internal::StoredAuditEntry hit = FirstEntry();
  hit.set_cost_epsilon(0);
  hit.set_cost_delta(0);
  hit.set_cost_rho(0);
  internal::StoredAuditEntry as_release = hit;
  hit.set_kind(internal::AUDIT_CACHE_HIT);
  EXPECT_EQ(AuditHashInput(hit).size(), 208u);
  EXPECT_EQ(HexEncode(ComputeAuditHash(hit)),
            "e488564980986b960c3bae9eaa8f1c19df74848138bca2bcb5ef90d4375d5731");
  EXPECT_NE(ComputeAuditHash(hit), ComputeAuditHash(as_release));
  // An entry stored before kinds existed parses as a release and hashes as
  // it always did (the known answer above).
  EXPECT_EQ(FirstEntry().kind(), internal::AUDIT_RELEASE);
}

TEST(AuditChainTest, EveryFieldChangesTheHash) {
  const internal::StoredAuditEntry base = FirstEntry();
  const std::string base_hash = ComputeAuditHash(base);
  std::vector<internal::StoredAuditEntry> changed(11, base);
  changed[0].set_sequence(2);
  changed[1].set_release_id("x");
  changed[2].set_principal("bob");
  changed[3].set_dataset("other");
  changed[4].set_canonical_request("{}");
  changed[5].set_cost_epsilon(0.6);
  changed[6].set_cost_delta(2e-7);
  changed[7].set_cost_rho(0.02);
  changed[8].set_time_unix_seconds(1767225601);
  changed[9].set_time_nanos(1);
  changed[10].set_prev_hash(std::string(32, '\x01'));
  for (size_t i = 0; i < changed.size(); ++i) {
    EXPECT_NE(ComputeAuditHash(changed[i]), base_hash) << "field " << i;
  }
}

TEST(AuditChainTest, LengthPrefixesKeepFieldBoundaries) {
  internal::StoredAuditEntry a = FirstEntry();
  internal::StoredAuditEntry b = a;
  a.set_principal("ab");
  a.set_dataset("c");
  b.set_principal("a");
  b.set_dataset("bc");
  EXPECT_NE(ComputeAuditHash(a), ComputeAuditHash(b));
}

TEST(AuditChainTest, CheckLinkAcceptsAGoodEntry) {
  const internal::StoredAuditEntry entry = FirstEntry();
  EXPECT_OK(CheckAuditLink(1, AuditGenesisHash(), 1, entry));
  internal::StoredAuditEntry next = FirstEntry();
  next.set_sequence(2);
  next.set_prev_hash(entry.hash());
  next.set_hash(ComputeAuditHash(next));
  EXPECT_OK(CheckAuditLink(2, entry.hash(), 2, next));
}

TEST(AuditChainTest, CheckLinkNamesTheBrokenCheck) {
  const internal::StoredAuditEntry entry = FirstEntry();
  EXPECT_THAT(
      CheckAuditLink(1, AuditGenesisHash(), 2, entry),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("entry 1: missing")));
  EXPECT_THAT(
      CheckAuditLink(2, AuditGenesisHash(), 2, entry),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("says sequence 1")));
  EXPECT_THAT(CheckAuditLink(1, std::string(32, '\x01'), 1, entry),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("prev_hash")));
  internal::StoredAuditEntry tampered = entry;
  tampered.set_principal("mallory");
  EXPECT_THAT(CheckAuditLink(1, AuditGenesisHash(), 1, tampered),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("does not match its contents")));
}

}  // namespace
}  // namespace cohortd
