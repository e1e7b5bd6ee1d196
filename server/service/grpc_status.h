// Conversion of absl::Status to grpc::Status: the one place where the core's
// error codes meet gRPC's (STYLE.md: absl inside, gRPC at the edge).
#ifndef COHORTD_SERVER_SERVICE_GRPC_STATUS_H_
#define COHORTD_SERVER_SERVICE_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cohortd {

// Longest status message sent to a client. Messages travel in an HTTP/2
// header (grpc-message), and clients refuse headers past a few KiB, so a
// message that quotes client input at length would arrive as a transport
// error instead of the precise status; modules already cut quoted names
// short (validator.h EchoName), this is the backstop.
inline constexpr size_t kMaxStatusMessageBytes = 2048;

// absl and gRPC share the canonical code numbering, so the code carries
// over unchanged; a message longer than kMaxStatusMessageBytes is cut
// (before a UTF-8 continuation byte) and ends "... (N bytes omitted)".
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message(status.message());
  if (message.size() > kMaxStatusMessageBytes) {
    size_t cut = kMaxStatusMessageBytes;
    while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) ==
                          0x80) {
      --cut;
    }
    const size_t omitted = message.size() - cut;
    message.resize(cut);
    message += "... (" + std::to_string(omitted) + " bytes omitted)";
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::move(message));
}

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_GRPC_STATUS_H_
