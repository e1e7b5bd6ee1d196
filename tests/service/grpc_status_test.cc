#include "server/service/grpc_status.h"

#include <string>

#include "gtest/gtest.h"

namespace cohortd {
namespace {

TEST(ToGrpcStatusTest, KeepsCodeAndShortMessage) {
  const grpc::Status s =
      ToGrpcStatus(absl::InvalidArgumentError("dataset: unknown 'x'"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "dataset: unknown 'x'");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(ToGrpcStatusTest, CutsLongMessagesAtACharacterBoundary) {
  // 2047 ASCII bytes, then 2-byte characters: the cut at 2048 would split
  // the first of them.
  std::string long_message(kMaxStatusMessageBytes - 1, 'a');
  for (int i = 0; i < 1000; ++i) long_message += "\xC3\xA9";
  const grpc::Status s = ToGrpcStatus(absl::NotFoundError(long_message));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), std::string(kMaxStatusMessageBytes - 1, 'a') +
                                   "... (2000 bytes omitted)");
}

}  // namespace
}  // namespace cohortd
