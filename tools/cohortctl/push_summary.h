// The tally of a `cohortctl push`: what the server accepted, found
// unchanged or rejected, which lines were malformed, and what failed to be
// confirmed. Rejections are grouped by field and reason class so that a
// file with 10,000 copies of one mistake reads as one line, with the first
// few examples by input line number.
#ifndef COHORTD_TOOLS_COHORTCTL_PUSH_SUMMARY_H_
#define COHORTD_TOOLS_COHORTCTL_PUSH_SUMMARY_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "cohortd/v1/cohortd.pb.h"
#include "tools/cohortctl/observation_jsonl.h"

namespace cohortd::cohortctl {

// The class of a rejection reason: the reason with quoted values and
// numbers replaced by placeholders, up to its first ';' (after which the
// server lists allowed values). "'buidl' is not an allowed value; allowed:
// build, fix" becomes "'…' is not an allowed value".
std::string ReasonClass(absl::string_view reason);

// Not thread-safe: callers on several streams serialise access.
class PushSummary {
 public:
  // `max_examples`: how many example lines to keep per class and of
  // malformed lines.
  explicit PushSummary(int max_examples = 3) : max_examples_(max_examples) {}

  // Records the server's answer to a batch whose observations came from
  // input `lines` (Rejection.index indexes into it; an index out of range
  // is reported as line 0 rather than trusted).
  void AddResponse(const std::vector<int64_t>& lines,
                   const cohortd::v1::PushResponse& response);
  void AddMalformed(const MalformedLine& malformed);
  // Observations sent whose outcome is unknown because their stream broke.
  void AddUnconfirmed(int64_t count) { unconfirmed_ += count; }

  int64_t accepted() const { return accepted_; }
  int64_t unchanged() const { return unchanged_; }
  int64_t rejected() const { return rejected_; }
  int64_t malformed() const { return malformed_; }
  int64_t unconfirmed() const { return unconfirmed_; }
  // True when every line was parsed and every observation stored.
  bool Clean() const {
    return rejected_ == 0 && malformed_ == 0 && unconfirmed_ == 0;
  }

  // The multi-line report: counts, then rejection classes (most frequent
  // first) with examples "line N: field: reason", then malformed lines.
  std::string Format() const;

 private:
  struct Example {
    int64_t line;
    std::string text;
    bool operator<(const Example& other) const { return line < other.line; }
  };
  struct Group {
    int64_t count = 0;
    std::vector<Example> examples;  // the lowest line numbers, sorted
  };
  void KeepExample(std::vector<Example>* examples, Example example) const;

  int max_examples_;
  int64_t accepted_ = 0;
  int64_t unchanged_ = 0;
  int64_t rejected_ = 0;
  int64_t malformed_ = 0;
  int64_t unconfirmed_ = 0;
  // (field, reason class) -> group.
  std::map<std::pair<std::string, std::string>, Group> rejections_;
  std::vector<Example> malformed_examples_;
};

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_PUSH_SUMMARY_H_
