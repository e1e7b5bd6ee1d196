// TLS and mutual TLS from the config, with a throwaway CA made by the test
// (openssl CLI): server certificate for 127.0.0.1, one client certificate.
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

cohortd::v1::PushRequest OneObservation() {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  auto* obs = request.add_observations();
  obs->set_session_id("tls-session");
  obs->set_account_id("tls-account");
  obs->mutable_session_start()->set_seconds(1767225600);
  obs->set_source("telemetry");
  return request;
}

class TlsIntegrationTest : public ::testing::Test {
 protected:
  void StartServer(bool require_client_cert) {
    dir_ = MakeTempDir();
    ASSERT_TRUE(MakeTestCertificates(dir_)) << "openssl failed";
    std::string tls = absl::StrCat(
        "  tls:\n    enabled: true\n    cert_file: server.pem\n"
        "    key_file: server.key\n");
    if (require_client_cert) {
      tls += "    client_ca_file: ca.pem\n    require_client_cert: true\n";
    }
    server_ = std::make_unique<ServerProcess>(dir_, tls);
    ASSERT_OK(server_->Start());
  }

  grpc::Status PushWith(const grpc::SslCredentialsOptions& ssl) {
    grpc::ChannelArguments args;
    auto channel = grpc::CreateCustomChannel(
        server_->address(), grpc::SslCredentials(ssl), args);
    auto stub = cohortd::v1::Ingest::NewStub(channel);
    auto context = AuthContext(server_->tokens().ingest);
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(5));
    cohortd::v1::PushResponse response;
    return stub->Push(context.get(), OneObservation(), &response);
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(TlsIntegrationTest, ServerTlsAcceptsClientsTrustingTheCa) {
  StartServer(/*require_client_cert=*/false);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(dir_ + "/ca.pem");
  EXPECT_TRUE(PushWith(ssl).ok());

  // A plaintext client cannot talk to a TLS server.
  auto plain = cohortd::v1::Ingest::NewStub(server_->Channel());
  auto context = AuthContext(server_->tokens().ingest);
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(2));
  cohortd::v1::PushResponse response;
  EXPECT_FALSE(plain->Push(context.get(), OneObservation(), &response).ok());
}

TEST_F(TlsIntegrationTest, MutualTlsRequiresAClientCertificate) {
  StartServer(/*require_client_cert=*/true);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(dir_ + "/ca.pem");
  EXPECT_FALSE(PushWith(ssl).ok());

  ssl.pem_private_key = ReadFile(dir_ + "/client.key");
  ssl.pem_cert_chain = ReadFile(dir_ + "/client.pem");
  const grpc::Status with_cert = PushWith(ssl);
  EXPECT_TRUE(with_cert.ok()) << with_cert.error_message();
}

}  // namespace
}  // namespace cohortd::testing
