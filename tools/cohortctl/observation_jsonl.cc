#include "tools/cohortctl/observation_jsonl.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace cohortd::cohortctl {

absl::StatusOr<cohortd::v1::Observation> ParseObservationJson(
    absl::string_view line) {
  cohortd::v1::Observation observation;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &observation,
      options);
  if (!status.ok()) {
    // Only the first line: the parser goes on to echo the input with a
    // caret, which the line number already locates.
    const auto message = status.message();
    const absl::string_view text(message.data(), message.size());
    return absl::InvalidArgumentError(text.substr(0, text.find('\n')));
  }
  return observation;
}

bool ObservationReader::ReadBatch(const std::string& dataset,
                                  int64_t max_observations,
                                  ObservationBatch* batch,
                                  std::vector<MalformedLine>* malformed) {
  batch->request.Clear();
  batch->request.set_dataset(dataset);
  batch->lines.clear();
  std::string line;
  while (static_cast<int64_t>(batch->lines.size()) < max_observations &&
         std::getline(*in_, line)) {
    ++line_;
    bytes_read_ += line.size() + 1;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    absl::StatusOr<cohortd::v1::Observation> observation =
        ParseObservationJson(line);
    if (!observation.ok()) {
      malformed->push_back(
          {line_, std::string(observation.status().message())});
      continue;
    }
    *batch->request.add_observations() = *std::move(observation);
    batch->lines.push_back(line_);
  }
  return !batch->lines.empty();
}

}  // namespace cohortd::cohortctl
