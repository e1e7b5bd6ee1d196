// Reads observations from JSON Lines: one cohortd.v1.Observation per line
// in the protobuf JSON mapping (session_start as RFC 3339, e.g.
// "2026-01-05T09:30:00Z"). A malformed line is reported with its line
// number and skipped, so one bad line never costs the rest of the file.
#ifndef COHORTD_TOOLS_COHORTCTL_OBSERVATION_JSONL_H_
#define COHORTD_TOOLS_COHORTCTL_OBSERVATION_JSONL_H_

#include <cstdint>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cohortd/v1/cohortd.pb.h"
#include "tools/cohortctl/observation_wire.h"

namespace cohortd::cohortctl {

// Parses one line. Unknown fields are an error rather than ignored: a typo
// such as "lables" would otherwise drop the labels silently. Fails with
// INVALID_ARGUMENT carrying the JSON parser's message.
absl::StatusOr<cohortd::v1::Observation> ParseObservationJson(
    absl::string_view line);

// The fast path of ParseObservationJson and AppendObservationJson, about
// 10x quicker than protobuf's JSON parser (and, writing wire bytes, with
// no protobuf map built): a strict reader of the common shape (ASCII strings
// with simple escapes, plain JSON numbers as measures, session_start as
// "YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z", each field once).
// Returns true with *out filled when the line has that shape, and then
// *out is exactly what protobuf's parser gives; returns false for anything
// else (including every malformed line), leaving *out unspecified, and
// the caller falls back to protobuf's parser for the result or the error.
bool FastParseObservationJson(absl::string_view line,
                              cohortd::v1::Observation* out);

// Reused buffers of the JSON-to-wire encoder (defined in the .cc).
struct EncodeScratch;

// Appends `line`, one JSON object as for ParseObservationJson, to `wire`
// (begun by StartPushRequest, observation_wire.h) as
// one `observations` entry of a cohortd.v1.PushRequest in protobuf wire
// format. The common shape (see FastParseObservationJson) goes straight
// from JSON to wire bytes, with no protobuf message or map built; anything
// else goes through protobuf's parser. Either way the bytes parse to the
// Observation ParseObservationJson returns. On error `wire` is unchanged
// and the status is ParseObservationJson's. The second form reuses
// `scratch` (not thread-safe); the first allocates its own.
absl::Status AppendObservationJson(absl::string_view line, std::string* wire);
absl::Status AppendObservationJson(absl::string_view line,
                                   EncodeScratch* scratch, std::string* wire);

// A line that could not be parsed.
struct MalformedLine {
  int64_t line = 0;  // 1-based, in the input
  std::string error;
};

// Observations read for one PushRequest, with the input line of each
// (lines[i] is the line of observation i of the request). The request is
// kept as its wire bytes, ready to send: no protobuf message is built.
struct ObservationBatch {
  std::string wire;  // a serialized cohortd.v1.PushRequest
  std::vector<int64_t> lines;
};

// Reads batches from a stream of JSON Lines. Blank lines are skipped
// silently. Not thread-safe; the stream is borrowed and must outlive the
// reader.
class ObservationReader {
 public:
  explicit ObservationReader(std::istream* in);
  ~ObservationReader();

  // Fills `batch` (its request's dataset set to `dataset`) with up to
  // `max_observations` observations, appending any malformed lines met on
  // the way to `malformed`. Returns false when the input is exhausted and
  // the batch is empty.
  // Observations are encoded straight to `batch->wire`
  // (AppendObservationJson).
  bool ReadBatch(const std::string& dataset, int64_t max_observations,
                 ObservationBatch* batch,
                 std::vector<MalformedLine>* malformed);

  // Bytes consumed so far (for progress against the file size).
  int64_t bytes_read() const { return bytes_read_; }
  int64_t lines_read() const { return line_; }

 private:
  std::istream* in_;
  int64_t line_ = 0;
  int64_t bytes_read_ = 0;
  std::string line_buffer_;
  std::unique_ptr<EncodeScratch> scratch_;
  size_t wire_size_hint_ = 0;  // bytes to reserve for a request
};

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_OBSERVATION_JSONL_H_
