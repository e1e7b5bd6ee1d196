#include "tools/cohortctl/observation_jsonl.h"

#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace cohortd::cohortctl {
namespace {

// A cursor over one line for FastParseObservationJson. Every method returns
// false on anything outside the fast path's shape.
class FastJson {
 public:
  explicit FastJson(absl::string_view text)
      : p_(text.data()), end_(text.data() + text.size()) {}

  void SkipSpace() {
    while (p_ < end_ &&
           (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) {
      ++p_;
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool AtEnd() {
    SkipSpace();
    return p_ == end_;
  }

  // A string of printable ASCII with the escapes \" \\ \/ \b \f \n \r
  // \t (no \u, no byte >= 0x80, no raw control character).
  bool String(std::string* out) {
    if (!Consume('"')) return false;
    out->clear();
    const char* run = p_;
    while (p_ < end_) {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        out->append(run, p_ - run);
        ++p_;
        return true;
      }
      if (c < 0x20 || c >= 0x80) return false;
      if (c != '\\') {
        ++p_;
        continue;
      }
      out->append(run, p_ - run);
      if (++p_ == end_) return false;
      switch (*p_) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        default:
          return false;
      }
      run = ++p_;
    }
    return false;
  }

  // A JSON number (RFC 8259 grammar) that converts to a finite double.
  bool Number(double* out) {
    SkipSpace();
    const char* start = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    } else {
      return false;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    return absl::SimpleAtod(absl::string_view(start, p_ - start), out) &&
           std::isfinite(*out);
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  const char* p_;
  const char* end_;
};

// "YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z", a real UTC time in
// years 0001-9999.
bool ParseUtcTime(absl::string_view text, google::protobuf::Timestamp* out) {
  auto digits = [&](size_t pos, size_t n, int* value) {
    if (pos + n > text.size()) return false;
    *value = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      *value = *value * 10 + (text[i] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute, second;
  if (text.size() < 20 || !digits(0, 4, &year) || text[4] != '-' ||
      !digits(5, 2, &month) || text[7] != '-' || !digits(8, 2, &day) ||
      text[10] != 'T' || !digits(11, 2, &hour) || text[13] != ':' ||
      !digits(14, 2, &minute) || text[16] != ':' || !digits(17, 2, &second)) {
    return false;
  }
  int nanos = 0;
  size_t pos = 19;
  if (text[pos] == '.') {
    const size_t n = text.size() - pos - 2;  // digits before the 'Z'
    int fraction = 0;
    if ((n != 3 && n != 6 && n != 9) || !digits(pos + 1, n, &fraction)) {
      return false;
    }
    nanos = fraction * (n == 3 ? 1000000 : n == 6 ? 1000 : 1);
    pos += n + 1;
  }
  if (pos + 1 != text.size() || text[pos] != 'Z') return false;
  if (year < 1 || hour > 23 || minute > 59 || second > 59) return false;
  const absl::CivilSecond civil(year, month, day, hour, minute, second);
  // CivilSecond normalises out-of-range fields (Feb 30 -> Mar 2): a
  // normalised date was not a real one.
  if (civil.month() != month || civil.day() != day) return false;
  out->set_seconds(
      absl::ToUnixSeconds(absl::FromCivil(civil, absl::UTCTimeZone())));
  out->set_nanos(nanos);
  return true;
}

}  // namespace

bool FastParseObservationJson(absl::string_view line,
                              cohortd::v1::Observation* out) {
  out->Clear();
  FastJson json(line);
  if (!json.Consume('{')) return false;
  enum : unsigned {
    kSession = 1,
    kAccount = 2,
    kStart = 4,
    kSource = 8,
    kLabels = 16,
    kMeasures = 32
  };
  unsigned seen = 0;
  std::string key;
  std::string value;
  if (json.Consume('}')) return json.AtEnd();
  do {
    if (!json.String(&key) || !json.Consume(':')) return false;
    unsigned field = 0;
    if (key == "session_id" || key == "sessionId") {
      field = kSession;
    } else if (key == "account_id" || key == "accountId") {
      field = kAccount;
    } else if (key == "session_start" || key == "sessionStart") {
      field = kStart;
    } else if (key == "source") {
      field = kSource;
    } else if (key == "labels") {
      field = kLabels;
    } else if (key == "measures") {
      field = kMeasures;
    } else {
      return false;  // protobuf's parser names the unknown field
    }
    if ((seen & field) != 0) return false;
    seen |= field;
    switch (field) {
      case kSession:
        if (!json.String(out->mutable_session_id())) return false;
        break;
      case kAccount:
        if (!json.String(out->mutable_account_id())) return false;
        break;
      case kSource:
        if (!json.String(out->mutable_source())) return false;
        break;
      case kStart:
        if (!json.String(&value) ||
            !ParseUtcTime(value, out->mutable_session_start())) {
          return false;
        }
        break;
      case kLabels: {
        if (!json.Consume('{')) return false;
        if (json.Consume('}')) break;
        auto* labels = out->mutable_labels();
        do {
          if (!json.String(&key) || !json.Consume(':') ||
              !json.String(&value)) {
            return false;
          }
          if (!labels->insert({key, value}).second) return false;
        } while (json.Consume(','));
        if (!json.Consume('}')) return false;
        break;
      }
      case kMeasures: {
        if (!json.Consume('{')) return false;
        if (json.Consume('}')) break;
        auto* measures = out->mutable_measures();
        do {
          double number = 0;
          if (!json.String(&key) || !json.Consume(':') ||
              !json.Number(&number)) {
            return false;
          }
          if (!measures->insert({key, number}).second) return false;
        } while (json.Consume(','));
        if (!json.Consume('}')) return false;
        break;
      }
    }
  } while (json.Consume(','));
  return json.Consume('}') && json.AtEnd();
}

absl::StatusOr<cohortd::v1::Observation> ParseObservationJson(
    absl::string_view line) {
  cohortd::v1::Observation observation;
  if (FastParseObservationJson(line, &observation)) return observation;
  observation.Clear();
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
    cohortd::v1::Observation* observation = batch->request.add_observations();
    if (!FastParseObservationJson(line, observation)) {
      absl::StatusOr<cohortd::v1::Observation> parsed =
          ParseObservationJson(line);
      if (!parsed.ok()) {
        batch->request.mutable_observations()->RemoveLast();
        malformed->push_back({line_, std::string(parsed.status().message())});
        continue;
      }
      *observation = *std::move(parsed);
    }
    batch->lines.push_back(line_);
  }
  return !batch->lines.empty();
}

}  // namespace cohortd::cohortctl
