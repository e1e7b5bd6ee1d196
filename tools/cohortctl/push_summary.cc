#include "tools/cohortctl/push_summary.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cohortd::cohortctl {

std::string ReasonClass(absl::string_view reason) {
  reason = reason.substr(0, reason.find(';'));
  std::string out;
  for (size_t i = 0; i < reason.size(); ++i) {
    const char c = reason[i];
    if (c == '\'' || c == '"') {
      const size_t end = reason.find(c, i + 1);
      if (end != absl::string_view::npos) {
        absl::StrAppend(&out, std::string(1, c), "…", std::string(1, c));
        i = end;
        continue;
      }
    }
    const bool after_word =
        i > 0 && (absl::ascii_isalnum(reason[i - 1]) || reason[i - 1] == '_');
    const bool number_here =
        absl::ascii_isdigit(c) || (c == '-' && i + 1 < reason.size() &&
                                   absl::ascii_isdigit(reason[i + 1]));
    if (number_here && !after_word) {
      // Also swallows exponents and units such as "1e+06" or "60s".
      size_t end = i + 1;
      while (end < reason.size() &&
             (absl::ascii_isalnum(reason[end]) || reason[end] == '.' ||
              reason[end] == '+' || reason[end] == '-')) {
        ++end;
      }
      out += 'N';
      i = end - 1;
      continue;
    }
    out += c;
  }
  return std::string(absl::StripAsciiWhitespace(out));
}

void PushSummary::KeepExample(std::vector<Example>* examples,
                              Example example) const {
  // Batches come back out of order from several streams; keeping the
  // lowest line numbers makes the report independent of that order.
  examples->insert(
      std::upper_bound(examples->begin(), examples->end(), example),
      std::move(example));
  if (static_cast<int>(examples->size()) > max_examples_) examples->pop_back();
}

void PushSummary::AddResponse(const std::vector<int64_t>& lines,
                              const cohortd::v1::PushResponse& response) {
  accepted_ += response.accepted();
  unchanged_ += response.unchanged();
  for (const cohortd::v1::Rejection& rejection : response.rejected()) {
    ++rejected_;
    const int64_t line =
        rejection.index() >= 0 &&
                rejection.index() < static_cast<int64_t>(lines.size())
            ? lines[rejection.index()]
            : 0;
    Group& group =
        rejections_[{rejection.field(), ReasonClass(rejection.reason())}];
    ++group.count;
    KeepExample(&group.examples, {line, absl::StrCat(rejection.field(), ": ",
                                                     rejection.reason())});
  }
}

void PushSummary::AddMalformed(const MalformedLine& malformed) {
  ++malformed_;
  KeepExample(&malformed_examples_, {malformed.line, malformed.error});
}

std::string PushSummary::Format() const {
  std::string out =
      absl::StrFormat("accepted     %d\nunchanged    %d\nrejected     %d\n",
                      accepted_, unchanged_, rejected_);
  if (malformed_ > 0) {
    absl::StrAppendFormat(&out, "malformed    %d lines, not sent\n",
                          malformed_);
  }
  if (unconfirmed_ > 0) {
    absl::StrAppendFormat(
        &out,
        "unconfirmed  %d observations (their stream failed; pushing is "
        "idempotent, so pushing the file again is safe)\n",
        unconfirmed_);
  }
  if (!rejections_.empty()) {
    std::vector<std::pair<std::pair<std::string, std::string>, const Group*>>
        groups;
    for (const auto& [key, group] : rejections_)
      groups.push_back({key, &group});
    std::stable_sort(groups.begin(), groups.end(),
                     [](const auto& a, const auto& b) {
                       return a.second->count > b.second->count;
                     });
    out += "rejections by field and reason:\n";
    for (const auto& [key, group] : groups) {
      absl::StrAppendFormat(&out, "  %d x %s: %s\n", group->count, key.first,
                            key.second);
      for (const Example& example : group->examples) {
        absl::StrAppendFormat(&out, "      line %d: %s\n", example.line,
                              example.text);
      }
    }
  }
  if (malformed_ > 0) {
    out += "malformed lines:\n";
    for (const Example& example : malformed_examples_) {
      absl::StrAppendFormat(&out, "  line %d: %s\n", example.line,
                            example.text);
    }
    if (malformed_ > static_cast<int64_t>(malformed_examples_.size())) {
      absl::StrAppendFormat(
          &out, "  ... and %d more\n",
          malformed_ - static_cast<int64_t>(malformed_examples_.size()));
    }
  }
  return out;
}

}  // namespace cohortd::cohortctl
