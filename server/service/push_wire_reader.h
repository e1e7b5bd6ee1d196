// A hand-written reader of the cohortd.v1.PushRequest wire format (see
// proto/cohortd/v1/cohortd.proto and its lenient twin
// proto/cohortd/internal/ingest_wire.proto) that turns a request's bytes
// straight into ObservationRef views of those bytes: no message, no
// std::string per field, no arena to build and destroy. It is what the
// Ingest service runs on every push, where protobuf's generic parser spent
// about a third of the RPC threads' time (docs/storage.md "Ingest
// throughput").
//
// It accepts exactly the inputs protobuf's parser of
// cohortd.internal.WirePushRequest accepts, with the same values
// (fuzz/push_wire_reader_fuzz.cc checks both on arbitrary bytes):
// string fields are read as bytes (UTF-8 is checked per observation
// afterwards, see ValidateUtf8), the last of a repeated scalar wins, a
// repeated session_start merges, unknown fields and known fields with
// another wire type are skipped (groups included, nested at most 100 deep
// as protobuf's recursion limit allows), and anything else (truncation, a
// zero or end-group tag outside its group, wire types 6 and 7, a varint
// longer than 10 bytes, a length above 2 GiB) fails.
#ifndef COHORTD_SERVER_SERVICE_PUSH_WIRE_READER_H_
#define COHORTD_SERVER_SERVICE_PUSH_WIRE_READER_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/ingest/validator.h"

namespace cohortd {

// Reads one PushRequest at a time; meant to be reused for the requests of
// one stream, so that the observations' label and measure vectors keep
// their capacity and a steady stream allocates nothing per observation.
// Thread-compatible: one reader per thread (or per stream).
class PushWireReader {
 public:
  PushWireReader() = default;
  PushWireReader(const PushWireReader&) = delete;
  PushWireReader& operator=(const PushWireReader&) = delete;

  // Parses `bytes`, replacing what the previous Read held. On success,
  // dataset() and observations() are views into `bytes`, which must
  // outlive them (and stay unchanged) until the next Read. Each
  // observation's labels and measures are in wire order, repeats included
  // (call ObservationRef::SortNames before validating it).
  // Errors: InvalidArgument when `bytes` is not a PushRequest; the message
  // says where ("observation 3: ...", a byte offset) and why. After an
  // error the views are unspecified.
  absl::Status Read(absl::string_view bytes);

  absl::string_view dataset() const { return dataset_; }
  int size() const { return static_cast<int>(size_); }
  // The observations of the last successful Read, in request order.
  absl::Span<ObservationRef> observations() {
    return absl::MakeSpan(storage_.data(), size_);
  }

 private:
  // A cleared ObservationRef for the next observation, reusing storage.
  ObservationRef* NextObservation();

  absl::string_view dataset_;
  std::vector<ObservationRef> storage_;  // the first size_ are live
  size_t size_ = 0;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_PUSH_WIRE_READER_H_
