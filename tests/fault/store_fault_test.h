// The fixture of the store's fault tests (corruption, a missing WAL,
// salvage): a cohortd on a fresh temp dir, not yet started, and the
// acknowledged pushes those tests then damage.
#ifndef COHORTD_TESTS_FAULT_STORE_FAULT_TEST_H_
#define COHORTD_TESTS_FAULT_STORE_FAULT_TEST_H_

#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/fault/fault_support.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {

class StoreFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    server_ = std::make_unique<ServerProcess>(dir_);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Pushes `batches` batches of 500 sessions ("s-0", "s-1", ...; batch b
  // holds sessions 500b to 500b + 499, from batch `first_batch` on) to the
  // running server; each must be acknowledged whole.
  void PushAcknowledged(int batches, int first_batch = 0) {
    auto stub = cohortd::v1::Ingest::NewStub(server_->Channel());
    for (int b = first_batch; b < first_batch + batches; ++b) {
      cohortd::v1::PushResponse response;
      auto context = AuthContext(server_->tokens().ingest);
      ASSERT_TRUE(
          stub->Push(context.get(), SessionBatch("s", b * 500, 500), &response)
              .ok());
      ASSERT_EQ(response.accepted(), 500);
    }
  }

  std::string config() const { return dir_ + "/cohortd.yaml"; }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
};

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_FAULT_STORE_FAULT_TEST_H_
